/* Warmup benchmark: prints figures, asserts nothing.
 *
 * For a model preset (default DeepSeek-V3: bf16 and FP8, both layouts,
 * tokens 1..16384) it reports
 *   - the distinct kernels the runtime's heuristics choose over the range,
 *   - cold warmup wall time with 1 thread and with one thread per core,
 *   - a warm warmup (every key recomputed: render + hash, every kernel a hit),
 *   - cache start: the runtime's lookup of every kernel (spec index, content
 *     entry, checksums), and archive start: open the packed archive and find
 *     every kernel, both without a GPU (file system and checksums only);
 *   - with a GPU, mf_kernel_prepare of every kernel from the cache and from
 *     the archive (opening and module loads), context creation shown apart.
 * Kernels of the built-in set are warmed too, so the figures measure the
 * machinery; on a GPU those are loaded from the built-in set first.
 *
 *   build/examples/bench_warmup [PRESET] [ARCH]     (default deepseek-v3 sm_90a)
 */
#define _GNU_SOURCE /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch.h"
#include "cache.h"
#include "model.h"
#include "pack.h"
#include "warmup.h"

#define CHECK(call)                                                                          \
    do {                                                                                     \
        mf_status check_s_ = (call);                                                         \
        if (check_s_ != MF_OK) {                                                             \
            fprintf(stderr, "%s: %s: %s\n", #call, mf_status_string(check_s_),              \
                    mf_last_error());                                                        \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static char *temporary_dir(void)
{
    char *dir = strdup("/tmp/mf_bench_warmup_XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    return dir;
}

/* Cold warmup into a fresh directory; returns wall milliseconds. */
static double cold_warmup(const mf_spec_list *specs, const char *arch, int threads, char **dir)
{
    mf_cache *c;
    const char *targets[] = {arch};
    mf_warmup_options o = {targets, 1, threads, MF_PROGRESS_OFF, 1};
    mf_warmup_report r;
    *dir = temporary_dir();
    CHECK(mf_cache_open(*dir, &c));
    double t0 = now_ms();
    CHECK(mf_warmup(c, (const char *const *)specs->items, specs->count, &o, &r));
    double ms = now_ms() - t0;
    printf("  cold warmup, %2d thread%s  %9.1f ms  (%zu compiled, %.1f kernels/s)\n", r.threads,
           r.threads > 1 ? "s" : " ", ms, r.compiled, (double)r.compiled / (ms * 1e-3));
    mf_warmup_report_free(&r);
    mf_cache_close(c);
    return ms;
}

static void warm_warmup(const mf_spec_list *specs, const char *arch, const char *dir)
{
    mf_cache *c;
    const char *targets[] = {arch};
    mf_warmup_options o = {targets, 1, 0, MF_PROGRESS_OFF, 1};
    mf_warmup_report r;
    CHECK(mf_cache_open(dir, &c));
    double t0 = now_ms();
    CHECK(mf_warmup(c, (const char *const *)specs->items, specs->count, &o, &r));
    printf("  warm warmup (all hits)    %9.1f ms  (%zu hits, keys recomputed)\n", now_ms() - t0,
           r.hits);
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

/* The runtime's side: spec index -> content entry, checksums verified. */
static void cache_lookups(const mf_spec_list *specs, const char *arch, const char *dir)
{
    size_t found = 0;
    double t0 = now_ms();
    for (size_t i = 0; i < specs->count; i++) {
        mf_archive *a;
        if (mf_disk_cache_lookup(dir, specs->items[i], arch, &a) == MF_OK) {
            found++;
            mf_archive_close(a);
        }
    }
    printf("  cache start, no GPU       %9.1f ms  (%zu of %zu found and verified)\n",
           now_ms() - t0, found, specs->count);
}

static void archive_lookups(const mf_spec_list *specs, const char *arch, const char *path)
{
    mf_archive *a;
    size_t found = 0;
    double t0 = now_ms();
    CHECK(mf_archive_open_file(path, &a));
    for (size_t i = 0; i < specs->count; i++) {
        mf_archive_entry e;
        found += mf_archive_find(a, specs->items[i], arch, &e) == MF_OK;
    }
    printf("  archive start, no GPU     %9.1f ms  (%zu of %zu found and verified)\n",
           now_ms() - t0, found, specs->count);
    mf_archive_close(a);
}

/* Context creation plus every kernel prepared, from the cache or an archive. */
static void gpu_start(const mf_spec_list *specs, const char *archive, const char *what)
{
    mf_context *ctx;
    double t0 = now_ms();
    mf_status s = mf_context_create(0, &ctx);
    if (s != MF_OK) {
        printf("  %-25s         -      (%s)\n", what, mf_status_string(s));
        return;
    }
    double t1 = now_ms();
    if (archive)
        CHECK(mf_context_open_archive(ctx, archive));
    for (size_t i = 0; i < specs->count; i++)
        CHECK(mf_kernel_prepare(ctx, specs->items[i]));
    double t2 = now_ms();
    printf("  %-25s %9.1f ms  (%zu kernels opened and loaded; context creation %.1f ms more)\n",
           what, t2 - t1, specs->count, t1 - t0);
    mf_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "deepseek-v3", *arch = argc > 2 ? argv[2] : "sm_90a";
    mf_model m;
    mf_spec_list specs = {0};
    CHECK(mf_model_load_preset(preset, &m));
    double t0 = now_ms();
    CHECK(mf_model_kernel_specs(&m, mf_arch_cc(arch), &specs));
    printf("%s, H=%d N=%d E=%d K=%d, bf16+e4m3, masked+contiguous, tokens %d..%d, %s\n", m.name,
           m.hidden, m.intermediate, m.experts, m.topk, m.tokens_min, m.tokens_max, arch);
    printf("  distinct kernels          %9zu     (enumerated in %.1f ms)\n", specs.count,
           now_ms() - t0);
    char *serial_dir, *parallel_dir, archive[128];
    double serial = cold_warmup(&specs, arch, 1, &serial_dir);
    double parallel = cold_warmup(&specs, arch, 0, &parallel_dir);
    printf("  speedup                   %9.2f x\n", serial / parallel);
    warm_warmup(&specs, arch, parallel_dir);
    cache_lookups(&specs, arch, parallel_dir);
    mf_cache *c;
    CHECK(mf_cache_open(parallel_dir, &c));
    snprintf(archive, sizeof archive, "%s/%s.mfa", serial_dir, m.name);
    t0 = now_ms();
    CHECK(mf_pack_cache(c, archive, NULL));
    printf("  pack the cache            %9.1f ms\n", now_ms() - t0);
    mf_cache_close(c);
    archive_lookups(&specs, arch, archive);
    unsetenv("MOEFORGE_CACHE");
    setenv("MOEFORGE_CACHE_DIR", parallel_dir, 1);
    gpu_start(&specs, NULL, "cache start, GPU");
    unsetenv("MOEFORGE_CACHE_DIR");
    setenv("MOEFORGE_CACHE", "off", 1);
    gpu_start(&specs, archive, "archive start, GPU");
    nftw(serial_dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    nftw(parallel_dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    free(serial_dir);
    free(parallel_dir);
    mf_spec_list_free(&specs);
    return 0;
}
