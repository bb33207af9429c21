/* CPU suite: parallel warmup (hits skipped, built-in set skipped, failures
 * collected, progress only on a terminal) and deployment archives (round
 * trip, truncated, tampered, other version, other arch). The tests at the end
 * need a GPU and skip without one: an archive served with no JIT and one of
 * another arch refused, and layer forwards at every token count of a warmed
 * model that find every kernel in a cache (zero misses). */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "cache.h"
#include "error.h"
#include "file_support.h"
#include "model.h"
#include "moeforge_gen.h"
#include "pack.h"
#include "warmup.h"

#define OK_OR_FAIL(call) cr_assert_eq((call), MF_OK, "%s: %s", #call, mf_last_error())

/* Not in the built-in set; NVRTC compiles each in ~0.1 s. */
static const char *const quick_specs[] = {
    "silu_mul:block=64,dtype=bf16,layout=masked,unroll=2",
    "silu_mul:block=96,dtype=bf16,layout=masked,unroll=2",
    "silu_mul:block=128,dtype=bf16,layout=contiguous,unroll=2",
    "silu_mul:block=160,dtype=bf16,layout=contiguous,unroll=2",
};
#define QUICK_COUNT (sizeof quick_specs / sizeof quick_specs[0])
#define BUILTIN_SPEC "silu_mul:block=256,dtype=bf16,layout=masked,unroll=4"

static const char *const sm90a[] = {"sm_90a"};
static const char *const sm90a_and_ptx[] = {"sm_90a", "compute_90a"};

static char dirs[8][64];
static int dir_count;

static void setup(void)
{
    setenv("MOEFORGE_LOG", "warn", 1);
    unsetenv("MOEFORGE_CACHE"); /* meson's test environment turns it off */
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    for (int i = 0; i < dir_count; i++)
        nftw(dirs[i], remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(warmup, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(pack, .init = setup, .fini = teardown, .timeout = 120);

static char *fresh_dir(void)
{
    cr_assert_lt(dir_count, 8);
    char *d = dirs[dir_count++];
    strcpy(d, "/tmp/mf_warmup_test_XXXXXX");
    cr_assert(mkdtemp(d));
    return d;
}

static mf_cache *fresh_cache(void)
{
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(fresh_dir(), &c));
    return c;
}

static mf_warmup_options options(const char *const *targets, int count, int threads)
{
    mf_warmup_options o = {targets, count, threads, MF_PROGRESS_OFF, 0};
    return o;
}

/* ---- warmup ------------------------------------------------------------------------------ */

Test(warmup, compiles_what_is_missing_then_only_hits)
{
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a, 1, 2);
    mf_warmup_report r;
    OK_OR_FAIL(mf_warmup(c, quick_specs, QUICK_COUNT, &o, &r));
    cr_expect_eq(r.tasks, QUICK_COUNT);
    cr_expect_eq(r.compiled, QUICK_COUNT);
    cr_expect_eq(r.threads, 2);
    cr_expect_gt(r.seconds, 0);
    mf_warmup_report_free(&r);
    OK_OR_FAIL(mf_warmup(c, quick_specs, QUICK_COUNT, &o, &r));
    cr_expect_eq(r.hits, QUICK_COUNT);
    cr_expect_eq(r.compiled, 0);
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

Test(warmup, tasks_are_specs_times_targets)
{
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a_and_ptx, 2, 0);
    mf_warmup_report r;
    OK_OR_FAIL(mf_warmup(c, quick_specs, 2, &o, &r));
    cr_expect_eq(r.tasks, 4);
    cr_expect_eq(r.compiled, 4);
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

Test(warmup, default_threads_are_the_online_cores)
{
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    cr_assert_eq(mf_warmup_default_threads(), cores);
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a, 1, 0);
    mf_warmup_report r;
    OK_OR_FAIL(mf_warmup(c, quick_specs, QUICK_COUNT, &o, &r));
    cr_expect_eq(r.threads, cores < (int)QUICK_COUNT ? cores : (int)QUICK_COUNT);
    mf_warmup_report_free(&r);
    OK_OR_FAIL(mf_warmup(c, NULL, 0, &o, &r)); /* nothing to do is not an error */
    cr_expect_eq(r.tasks, 0);
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

Test(warmup, builtin_kernels_are_skipped_unless_asked_for)
{
    mf_cache *c = fresh_cache();
    const char *specs[] = {BUILTIN_SPEC};
    mf_warmup_options o = options(sm90a, 1, 1);
    mf_warmup_report r;
    OK_OR_FAIL(mf_warmup(c, specs, 1, &o, &r));
    cr_expect_eq(r.builtin, 1);
    cr_expect_eq(r.compiled, 0);
    mf_warmup_report_free(&r);
    o.include_builtin = 1;
    OK_OR_FAIL(mf_warmup(c, specs, 1, &o, &r));
    cr_expect_eq(r.compiled, 1);
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

Test(warmup, failures_are_collected_and_reported_together)
{
    char *templates = fresh_dir();
    write_test_file(templates, "broken.cu", "extern \"C\" __global__ void $(entry)() { nope; }\n");
    setenv("MOEFORGE_TEMPLATE_DIR", templates, 1);
    const char *specs[] = {quick_specs[0], "nosuchfamily:x=1", "broken:v=1", quick_specs[1],
                           "not a spec"};
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a, 1, 2);
    mf_warmup_report r;
    mf_status s = mf_warmup(c, specs, 5, &o, &r);
    cr_assert_neq(s, MF_OK);
    cr_expect(strstr(mf_last_error(), "3 of 5 kernels failed"), "%s", mf_last_error());
    cr_assert_eq(r.failed, 3);
    cr_expect_eq(r.compiled, 2, "the good kernels are cached all the same");
    cr_expect_str_eq(r.failures[0].spec, "nosuchfamily:x=1");
    cr_expect_eq(r.failures[0].status, MF_ERR_TEMPLATE);
    cr_expect_str_eq(r.failures[1].spec, "broken:v=1");
    cr_expect_eq(r.failures[1].status, MF_ERR_COMPILE);
    cr_expect(strstr(r.failures[1].message, "broken.cu(1)"), "%s", r.failures[1].message);
    cr_expect_eq(r.failures[2].status, MF_ERR_SPEC);
    cr_expect_str_eq(r.failures[2].target, "sm_90a");
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

/* Longest expected compile first: sm90 GEMM families, then GEMMs by tile
 * area (e4m3 counted double), then glue kernels, then specs that do not
 * parse; equal estimates in list order. */
Test(warmup, longest_expected_compiles_are_taken_first)
{
    const char *specs[] = {
        "silu_mul:block=64,dtype=bf16,layout=masked,unroll=2",         /* 0 */
        "gemm:bm=64,bn=64,dtype=bf16,layout=contiguous,stages=4",      /* 1 */
        "not a spec",                                                  /* 2 */
        "preprocess:block=128,dtype=bf16",                             /* 3 */
        "gemm:bm=128,bn=128,dtype=bf16,layout=masked,stages=3",        /* 4 */
        "gemm:bm=128,bn=64,dtype=e4m3,layout=masked,stages=4",         /* 5 */
        "gemm_wgmma:bm=64,bn=64,dtype=bf16,layout=contiguous",         /* 6 */
        "gemm:bm=64,bn=64,dtype=bf16,layout=masked,stages=4",          /* 7 */
        "combine:block=128,dtype=bf16,topk=8",                         /* 8 */
    };
    size_t expected[] = {6, 4, 5, 1, 7, 0, 3, 8, 2};
    size_t order[9];
    OK_OR_FAIL(mf_warmup_order(specs, 9, order));
    for (size_t i = 0; i < 9; i++)
        cr_expect_eq(order[i], expected[i], "position %zu: spec %zu, expected %zu", i, order[i],
                     expected[i]);
}

Test(warmup, failures_are_reported_in_the_callers_order_whatever_ran_first)
{
    const char *specs[] = {"nosuchfamily:x=1", "gemm_nosuch:bm=128,bn=128"};
    size_t order[2];
    OK_OR_FAIL(mf_warmup_order(specs, 2, order));
    cr_assert_eq(order[0], 1, "the GEMM family is taken first");
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a, 1, 1);
    mf_warmup_report r;
    cr_assert_neq(mf_warmup(c, specs, 2, &o, &r), MF_OK);
    cr_assert_eq(r.failed, 2);
    cr_expect_str_eq(r.failures[0].spec, specs[0]);
    cr_expect_str_eq(r.failures[1].spec, specs[1]);
    cr_expect(strstr(mf_last_error(), "first nosuchfamily:x=1"), "%s", mf_last_error());
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

/* Runs a warmup with stderr sent to a file (not a terminal); returns what it got. */
static char *warmup_stderr(mf_progress_mode mode)
{
    static char text[8192];
    char path[] = "/tmp/mf_progress_XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    fflush(stderr);
    dup2(fd, 2);
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a, 1, 1);
    o.progress = mode;
    mf_warmup_report r;
    mf_status s = mf_warmup(c, quick_specs, 2, &o, &r);
    mf_warmup_report_free(&r);
    mf_cache_close(c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    cr_assert_eq(s, MF_OK);
    return text;
}

Test(warmup, progress_only_on_a_terminal)
{
    cr_expect_str_eq(warmup_stderr(MF_PROGRESS_AUTO), "", "progress written to a file");
    char *shown = warmup_stderr(MF_PROGRESS_ON);
    cr_expect(strstr(shown, "\rwarmup 2/2 kernels") && strstr(shown, "kernels/s") &&
              strstr(shown, "ETA"), "%s", shown);
}

/* ---- deployment archives ----------------------------------------------------------------- */

static char *packed_archive(const char *const *targets, int count)
{
    static char path[128];
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(targets, count, 2);
    mf_warmup_report r;
    snprintf(path, sizeof path, "%s/kernels.mfa", fresh_dir());
    const char *specs[] = {quick_specs[0], quick_specs[1], BUILTIN_SPEC};
    OK_OR_FAIL(mf_pack(c, specs, 3, &o, path, &r));
    mf_warmup_report_free(&r);
    mf_cache_close(c);
    return path;
}

Test(pack, round_trip)
{
    char *path = packed_archive(sm90a_and_ptx, 2);
    mf_archive *a;
    OK_OR_FAIL(mf_archive_open_file(path, &a));
    cr_assert_eq(mf_archive_count(a), 6, "3 kernels (a built-in one too) x cubin and PTX");
    cr_expect_str_eq(mf_archive_generator_version(a), MOEFORGE_GENERATOR_VERSION);
    const char *specs[] = {quick_specs[0], quick_specs[1], BUILTIN_SPEC};
    for (int i = 0; i < 3; i++) {
        char canonical[1024];
        mf_archive_entry cubin, ptx;
        OK_OR_FAIL(mf_gen_canonical_spec(specs[i], canonical, sizeof canonical));
        OK_OR_FAIL(mf_archive_find(a, canonical, "sm_90a", &cubin));
        OK_OR_FAIL(mf_archive_find(a, canonical, "compute_90a", &ptx));
        cr_expect(!cubin.is_ptx && memcmp(cubin.data, "\177ELF", 4) == 0);
        cr_expect(ptx.is_ptx && strstr(ptx.data, ptx.entry));
        cr_expect_str_eq(cubin.entry, ptx.entry);
    }
    mf_archive_close(a);
}

Test(pack, archive_of_the_cache)
{
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a, 1, 2);
    mf_warmup_report r;
    OK_OR_FAIL(mf_warmup(c, quick_specs, QUICK_COUNT, &o, &r));
    mf_warmup_report_free(&r);
    char path[128];
    size_t kernels = 0;
    snprintf(path, sizeof path, "%s/all.mfa", fresh_dir());
    OK_OR_FAIL(mf_pack_cache(c, path, &kernels));
    cr_expect_eq(kernels, QUICK_COUNT);
    mf_archive *a;
    OK_OR_FAIL(mf_archive_open_file(path, &a));
    cr_expect_eq(mf_archive_count(a), QUICK_COUNT);
    mf_archive_close(a);
    mf_cache_close(c);
}

Test(pack, failed_kernel_writes_nothing)
{
    mf_cache *c = fresh_cache();
    mf_warmup_options o = options(sm90a, 1, 2);
    mf_warmup_report r;
    char path[128];
    snprintf(path, sizeof path, "%s/none.mfa", fresh_dir());
    const char *specs[] = {quick_specs[0], "nosuchfamily:x=1"};
    cr_assert_eq(mf_pack(c, specs, 2, &o, path, &r), MF_ERR_TEMPLATE);
    cr_expect_eq(r.failed, 1);
    cr_expect_neq(access(path, F_OK), 0, "an archive was written");
    mf_warmup_report_free(&r);
    mf_cache_close(c);
}

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    void *data = malloc(*size);
    cr_assert_eq(fread(data, 1, *size, f), *size);
    fclose(f);
    return data;
}

static mf_status open_bytes(const void *data, size_t size)
{
    mf_archive *a;
    mf_status s = mf_archive_open_memory(data, size, "test", &a);
    mf_archive_close(s == MF_OK ? a : NULL);
    return s;
}

/* Every entry's payload checked, as a runtime's finds do one by one. */
static mf_status find_all(const void *data, size_t size)
{
    mf_archive *a;
    MF_TRY(mf_archive_open_memory(data, size, "test", &a));
    mf_status s = MF_OK;
    for (size_t i = 0; s == MF_OK && i < mf_archive_count(a); i++) {
        mf_archive_entry e;
        mf_archive_entry_at(a, i, &e);
        s = mf_archive_find(a, e.spec, e.target, &e);
    }
    mf_archive_close(a);
    return s;
}

Test(pack, truncated_or_tampered_archive_refused)
{
    size_t size;
    unsigned char *data = read_file(packed_archive(sm90a, 1), &size);
    OK_OR_FAIL(find_all(data, size));
    size_t cuts[] = {0, 8, 100, MF_ARCHIVE_HEADER_SIZE, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        cr_expect_eq(open_bytes(data, cuts[i]), MF_ERR_ARCHIVE, "cut at %zu opened", cuts[i]);
    size_t flips[] = {20, MF_ARCHIVE_HDR_GENERATOR, MF_ARCHIVE_HEADER_SIZE + 3, size - 10};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        data[flips[i]] ^= 1;
        cr_expect_eq(find_all(data, size), MF_ERR_ARCHIVE, "flip at %zu accepted", flips[i]);
        data[flips[i]] ^= 1;
    }
    data[MF_ARCHIVE_HDR_VERSION] += 1;
    cr_expect_eq(open_bytes(data, size), MF_ERR_ARCHIVE_VERSION);
    cr_expect(strstr(mf_last_error(), "format version 2"), "%s", mf_last_error());
    free(data);
}

/* What mf_context_open_archive checks: an archive of sm_80 cubins holds no code
 * a Hopper device runs (its own cubin or PTX); the GPU test below opens one. */
Test(pack, archive_for_another_arch_holds_nothing_for_hopper)
{
    static const char *const sm80[] = {"sm_80"};
    mf_archive *a;
    OK_OR_FAIL(mf_archive_open_file(packed_archive(sm80, 1), &a));
    cr_expect(mf_archive_has_target(a, "sm_80"));
    const char *hopper[] = {"sm_90a", "sm_90", "compute_90a", "compute_90", "compute_80"};
    for (size_t i = 0; i < sizeof hopper / sizeof hopper[0]; i++)
        cr_expect_not(mf_archive_has_target(a, hopper[i]), "%s", hopper[i]);
    mf_archive_close(a);
}

/* ---- with a GPU ----------------------------------------------------------------------------- */

static mf_context *gpu_context_or_skip(void)
{
    mf_context *ctx = NULL;
    mf_status s = mf_context_create(0, &ctx);
    if (s == MF_ERR_NO_DRIVER || s == MF_ERR_NO_DEVICE)
        cr_skip_test("no GPU here (%s)", mf_status_string(s));
    cr_assert_eq(s, MF_OK, "%s", mf_last_error());
    return ctx;
}

/* A provider that only counts: any call is a kernel no cache had. */
static mf_status count_miss(void *user, const char *spec, const char *arch, mf_kernel_image *image)
{
    (void)image;
    ++*(int *)user;
    return MF_FAIL(MF_ERR_KERNEL_NOT_FOUND, "miss: %s for %s", spec, arch);
}

Test(pack, archive_serves_kernels_and_other_arch_is_refused)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_device_info info;
    mf_context_info(ctx, &info);
    const char *mine[] = {info.arch}, *other[] = {strcmp(info.arch, "sm_80") ? "sm_80" : "sm_90a"};
    OK_OR_FAIL(mf_context_open_archive(ctx, packed_archive(mine, 1)));
    int misses = 0;
    mf_kernel_provider counter = {count_miss, NULL, &misses};
    OK_OR_FAIL(mf_context_set_provider(ctx, &counter));
    OK_OR_FAIL(mf_kernel_prepare(ctx, quick_specs[0]));
    cr_expect_eq(misses, 0);
    cr_expect_eq(mf_context_open_archive(ctx, packed_archive(other, 1)), MF_ERR_ARCH_MISMATCH);
    mf_context_destroy(ctx);
}

static void *device_zeros(mf_context *ctx, size_t bytes)
{
    void *d = NULL;
    OK_OR_FAIL(mf_malloc(ctx, &d, bytes));
    OK_OR_FAIL(mf_memset_d8(ctx, d, 0, bytes));
    return d;
}

/* Routing for up to `tokens` tokens: token t goes to experts t, t+1, ... (mod E). */
static void *device_routing(mf_context *ctx, const mf_model *m, int tokens, void **weights)
{
    size_t slots = (size_t)tokens * (size_t)m->topk;
    int32_t *ids = malloc(slots * sizeof *ids);
    float *w = malloc(slots * sizeof *w);
    for (size_t s = 0; s < slots; s++) {
        ids[s] = (int32_t)((s / (size_t)m->topk + s % (size_t)m->topk) % (size_t)m->experts);
        w[s] = 1.0f / (float)m->topk;
    }
    void *d_ids = device_zeros(ctx, slots * sizeof *ids);
    *weights = device_zeros(ctx, slots * sizeof *w);
    OK_OR_FAIL(mf_memcpy_htod(ctx, d_ids, ids, slots * sizeof *ids));
    OK_OR_FAIL(mf_memcpy_htod(ctx, *weights, w, slots * sizeof *w));
    free(ids);
    free(w);
    return d_ids;
}

/* Forwards of every token count of the model's range for one dtype and layout. */
static void forward_every_token_count(mf_context *ctx, const mf_model *m, mf_dtype dtype,
                                      mf_layout layout)
{
    size_t elem = dtype == MF_DTYPE_E4M3 ? 1 : 2, h = (size_t)m->hidden,
           n = (size_t)m->intermediate, e = (size_t)m->experts, t = (size_t)m->tokens_max;
    mf_layer_desc desc = {.hidden = m->hidden, .intermediate = m->intermediate,
                          .experts = m->experts, .topk = m->topk, .dtype = dtype,
                          .layout = layout, .max_tokens = m->tokens_max,
                          .w13 = device_zeros(ctx, e * 2 * n * h * elem),
                          .w13_scale = device_zeros(ctx, e * (2 * n / 128) * (h / 128) * 4),
                          .w2 = device_zeros(ctx, e * h * n * elem),
                          .w2_scale = device_zeros(ctx, e * (h / 128) * (n / 128) * 4)};
    mf_layer *layer;
    OK_OR_FAIL(mf_layer_create(ctx, &desc, &layer));
    mf_layer_io io = {.hidden = device_zeros(ctx, t * h * 2), .out = device_zeros(ctx, t * h * 2)};
    void *weights;
    io.topk_ids = device_routing(ctx, m, m->tokens_max, &weights);
    io.topk_weights = weights;
    OK_OR_FAIL(mf_layer_workspace_size(layer, &io.workspace_size));
    io.workspace = device_zeros(ctx, io.workspace_size);
    for (io.tokens = m->tokens_min; io.tokens <= m->tokens_max; io.tokens++)
        cr_assert_eq(mf_layer_forward(layer, &io, NULL), MF_OK, "T=%d: %s", io.tokens,
                     mf_last_error());
    OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    void *buffers[] = {(void *)desc.w13, (void *)desc.w13_scale, (void *)desc.w2,
                       (void *)desc.w2_scale, (void *)io.hidden, io.out, (void *)io.topk_ids,
                       weights, io.workspace};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        mf_free(ctx, buffers[i]);
    mf_layer_destroy(layer);
}

/* After a warmup from a model, a layer forward at every token count of its
 * range, with JIT replaced by a counter, finds every kernel: zero misses. */
Test(warmup, warmed_model_runs_every_token_count_without_a_miss, .timeout = 900)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_device_info info;
    mf_context_info(ctx, &info);
    char *dir = fresh_dir();
    setenv("MOEFORGE_CACHE_DIR", dir, 1); /* read by the context on its first miss */
    mf_model m = {.name = "small", .hidden = 512, .intermediate = 256, .experts = 16, .topk = 4,
                  .dtypes = {MF_DTYPE_BF16, MF_DTYPE_E4M3}, .dtype_count = 2,
                  .layouts = {MF_LAYOUT_MASKED, MF_LAYOUT_CONTIGUOUS}, .layout_count = 2,
                  .tokens_min = 1, .tokens_max = 1024, .sm_count = info.sm_count};
    mf_spec_list specs = {0};
    OK_OR_FAIL(mf_model_kernel_specs(&m, 90, &specs));
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    const char *targets[] = {info.arch};
    mf_warmup_options o = options(targets, 1, 0);
    mf_warmup_report r;
    OK_OR_FAIL(mf_warmup(c, (const char *const *)specs.items, specs.count, &o, &r));
    mf_warmup_report_free(&r);
    int misses = 0;
    mf_kernel_provider counter = {count_miss, NULL, &misses};
    OK_OR_FAIL(mf_context_set_provider(ctx, &counter));
    for (int d = 0; d < m.dtype_count; d++)
        for (int l = 0; l < m.layout_count; l++)
            forward_every_token_count(ctx, &m, m.dtypes[d], m.layouts[l]);
    cr_expect_eq(misses, 0, "%d kernels were in no cache", misses);
    mf_cache_close(c);
    mf_spec_list_free(&specs);
    mf_context_destroy(ctx);
}
