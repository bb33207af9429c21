/* moeforge commands over kernel lists, the cache and archives: warmup, pack,
 * list, clear. */
#include "cli.h"

#include "arch.h"
#include "cache.h"
#include "kernels.h"
#include "model.h"
#include "moeforge_gen.h"
#include "pack.h"
#include "spec.h"
#include "warmup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERNEL_SOURCE_OPTIONS "model preset"

/* ---- kernel lists ------------------------------------------------------------------ */

/* The union over the --arch targets: the GEMM family depends on the arch. */
static int add_model_specs(const cli_args *a, const mf_model *m, mf_status loaded,
                           const char *what, mf_spec_list *out)
{
    if (loaded != MF_OK)
        return cli_failed(what);
    for (int i = 0; i < a->arch_count; i++)
        if (mf_model_kernel_specs(m, mf_arch_cc(a->archs[i]), out) != MF_OK)
            return cli_failed(what);
    return CLI_OK;
}

/* The kernels named by SPEC arguments, --model and --preset: canonical, distinct. */
static int collect_specs(const char *command, const cli_args *a, char **specs, int count,
                         mf_spec_list *out)
{
    mf_model m;
    if (count == 0 && !a->model && !a->preset)
        return cli_usage_error(command, "no kernels: give SPEC..., --model FILE or --preset NAME");
    for (int i = 0; i < count; i++) {
        char canonical[MF_SPEC_TEXT_MAX];
        if (mf_gen_canonical_spec(specs[i], canonical, sizeof canonical) != MF_OK ||
            mf_spec_list_add(out, canonical) != MF_OK)
            return cli_failed(specs[i]);
    }
    if (a->model && add_model_specs(a, &m, mf_model_load_file(a->model, &m), "--model", out))
        return CLI_FAILED;
    if (a->preset && add_model_specs(a, &m, mf_model_load_preset(a->preset, &m), "--preset", out))
        return CLI_FAILED;
    return CLI_OK;
}

/* Each --arch, then its virtual architecture when PTX is wanted. */
static int make_targets(const cli_args *a, int ptx, char names[][16], const char *targets[])
{
    int n = 0;
    for (int i = 0; i < a->arch_count; i++) {
        snprintf(names[n], 16, "%s", a->archs[i]);
        targets[n] = names[n], n++;
        if (ptx && strncmp(a->archs[i], "sm_", 3) == 0) {
            snprintf(names[n], 16, "compute_%s", a->archs[i] + 3);
            targets[n] = names[n], n++;
        }
    }
    return n;
}

static void report_failures(const mf_warmup_report *r)
{
    for (size_t i = 0; i < r->failed; i++)
        fprintf(stderr, "moeforge: %s (%s): %s: %s\n", r->failures[i].spec,
                r->failures[i].target, mf_status_string(r->failures[i].status),
                r->failures[i].message);
}

/* The exit code of a warmup (or the warmup of a pack) that returned s. */
static int warmup_outcome(const char *what, mf_status s, const mf_warmup_report *r,
                          size_t kernels, int target_count)
{
    if (s != MF_OK && !r->failed)
        return cli_failed(what);
    report_failures(r);
    printf("%s: %zu kernels for %d target%s: %zu compiled, %zu cached, %zu built in, %zu failed "
           "in %.2f s on %d thread%s\n", what, kernels, target_count, target_count > 1 ? "s" : "",
           r->compiled, r->hits, r->builtin, r->failed, r->seconds, r->threads,
           r->threads > 1 ? "s" : "");
    return r->failed ? CLI_KERNELS_FAILED : CLI_OK;
}

static mf_warmup_options warmup_options(const cli_args *a, const char *const *targets, int count)
{
    mf_warmup_options o = {targets, count, a->threads,
                           a->quiet ? MF_PROGRESS_OFF : MF_PROGRESS_AUTO, a->include_builtin};
    return o;
}

static void print_cache_location(const mf_cache *cache)
{
    const char *dir = mf_cache_directory(cache);
    printf("cache: %s%s\n", dir ? dir : "in memory only",
           dir && !mf_cache_persistent(cache) ? " (read-only: new kernels kept in memory)" : "");
}

int cli_warmup(int argc, char **argv)
{
    cli_args a;
    mf_spec_list specs = {0};
    mf_cache *cache = NULL;
    char names[2 * CLI_MAX_ARCHS][16];
    const char *targets[2 * CLI_MAX_ARCHS];
    int rc = cli_parse("warmup", argc, argv,
                       "arch ptx threads include-builtin quiet " KERNEL_SOURCE_OPTIONS, &a);
    if (rc == CLI_OK)
        rc = collect_specs("warmup", &a, a.positional, a.positional_count, &specs);
    if (rc == CLI_OK && mf_cache_open(NULL, &cache) != MF_OK)
        rc = cli_failed("cache");
    if (rc == CLI_OK) {
        print_cache_location(cache);
        mf_warmup_options o = warmup_options(&a, targets, make_targets(&a, a.ptx, names, targets));
        mf_warmup_report r;
        mf_status s = mf_warmup(cache, (const char *const *)specs.items, specs.count, &o, &r);
        rc = warmup_outcome("warmup", s, &r, specs.count, o.target_count);
        mf_warmup_report_free(&r);
    }
    mf_cache_close(cache);
    mf_spec_list_free(&specs);
    free(a.positional);
    return rc;
}

/* ---- pack ------------------------------------------------------------------------- */

static int pack_listed(const cli_args *a, const char *path, char **specs, int count,
                       mf_cache *cache)
{
    mf_spec_list list = {0};
    char names[2 * CLI_MAX_ARCHS][16];
    const char *targets[2 * CLI_MAX_ARCHS];
    int rc = collect_specs("pack", a, specs, count, &list);
    if (rc == CLI_OK) {
        mf_warmup_options o = warmup_options(a, targets, make_targets(a, !a->no_ptx, names, targets));
        mf_warmup_report r;
        mf_status s = mf_pack(cache, (const char *const *)list.items, list.count, &o, path, &r);
        rc = warmup_outcome("pack", s, &r, list.count, o.target_count);
        mf_warmup_report_free(&r);
    }
    mf_spec_list_free(&list);
    return rc;
}

/* Reads the archive back as the runtime will. */
static int report_archive(const char *path)
{
    mf_archive *a;
    if (mf_archive_open_file(path, &a) != MF_OK)
        return cli_failed(path);
    printf("packed %zu entries (kernels x targets) into %s\n", mf_archive_count(a), path);
    mf_archive_close(a);
    return CLI_OK;
}

int cli_pack(int argc, char **argv)
{
    cli_args a;
    mf_cache *cache = NULL;
    int rc = cli_parse("pack", argc, argv,
                       "arch no-ptx threads quiet from-cache " KERNEL_SOURCE_OPTIONS, &a);
    if (rc == CLI_OK && (a.positional_count < 1 ||
                         (a.from_cache && (a.positional_count > 1 || a.model || a.preset))))
        rc = cli_usage_error("pack", "OUT.mfa, then SPEC..., --model, --preset or --from-cache");
    if (rc == CLI_OK && mf_cache_open(NULL, &cache) != MF_OK)
        rc = cli_failed("cache");
    if (rc == CLI_OK && a.from_cache)
        rc = mf_pack_cache(cache, a.positional[0], NULL) == MF_OK ? CLI_OK : cli_failed("pack");
    else if (rc == CLI_OK)
        rc = pack_listed(&a, a.positional[0], a.positional + 1, a.positional_count - 1, cache);
    if (rc == CLI_OK)
        rc = report_archive(a.positional[0]);
    mf_cache_close(cache);
    free(a.positional);
    return rc;
}

/* ---- list and clear ----------------------------------------------------------------- */

static int list_archive(const char *path)
{
    mf_archive *opened = NULL;
    const mf_archive *a = mf_builtin_archive();
    if (path && mf_archive_open_file(path, &opened) != MF_OK)
        return cli_failed(path);
    if (opened)
        a = opened;
    if (!a)
        return cli_failed("built-in kernel set");
    size_t total = 0;
    for (size_t i = 0; i < mf_archive_count(a); i++) {
        mf_archive_entry e;
        mf_archive_entry_at(a, i, &e);
        printf("%-64s %-12s %-5s %8zu B  %s\n", e.spec, e.target, e.is_ptx ? "PTX" : "cubin",
               e.size, e.entry);
        total += e.size;
    }
    printf("%zu entries, %zu bytes, generator %s\n", mf_archive_count(a), total,
           mf_archive_generator_version(a));
    mf_archive_close(opened);
    return CLI_OK;
}

typedef struct cache_totals {
    size_t kernels, bytes;
} cache_totals;

static void print_cached_item(void *user, const mf_cache_item *item)
{
    cache_totals *t = user;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&item->last_used));
    printf("%-64s %-12s %8zu B  used %s  key %.12s\n", item->spec, item->target, item->size, when,
           item->content_key);
    t->kernels++;
    t->bytes += item->file_bytes;
}

static int list_cache(void)
{
    mf_cache *cache;
    cache_totals t = {0, 0};
    if (mf_cache_open(NULL, &cache) != MF_OK)
        return cli_failed("cache");
    int rc = mf_cache_list(cache, print_cached_item, &t) == MF_OK ? CLI_OK : cli_failed("cache");
    if (rc == CLI_OK)
        printf("%zu kernels, %zu bytes (bound %llu)\n", t.kernels, t.bytes,
               (unsigned long long)mf_cache_max_bytes());
    print_cache_location(cache);
    mf_cache_close(cache);
    return rc;
}

static int list_presets(void)
{
    char names[MF_MODEL_MAX_PRESETS][MF_MODEL_NAME_MAX];
    size_t n = mf_model_preset_names(names, MF_MODEL_MAX_PRESETS);
    for (size_t i = 0; i < n; i++) {
        mf_model m;
        if (mf_model_load_preset(names[i], &m) != MF_OK)
            return cli_failed(names[i]);
        printf("%-20s H=%-5d N=%-5d experts=%-4d topk=%-2d tokens %d..%d\n", m.name, m.hidden,
               m.intermediate, m.experts, m.topk, m.tokens_min, m.tokens_max);
    }
    return CLI_OK;
}

static int list_model(const cli_args *a)
{
    mf_spec_list specs = {0};
    int rc = collect_specs("list", a, NULL, 0, &specs);
    for (size_t i = 0; rc == CLI_OK && i < specs.count; i++)
        printf("%s\n", specs.items[i]);
    mf_spec_list_free(&specs);
    return rc;
}

int cli_list(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("list", argc, argv, "cache presets " KERNEL_SOURCE_OPTIONS, &a);
    int modes = a.cache + a.presets + (a.model || a.preset) + (a.positional_count > 0);
    if (rc == CLI_OK && (modes > 1 || a.positional_count > 1))
        rc = cli_usage_error("list", "one of ARCHIVE, --cache, --presets, --model, --preset");
    if (rc == CLI_OK)
        rc = a.cache                  ? list_cache()
             : a.presets              ? list_presets()
             : a.model || a.preset    ? list_model(&a)
                                      : list_archive(a.positional_count ? a.positional[0] : NULL);
    free(a.positional);
    return rc;
}

int cli_clear(int argc, char **argv)
{
    cli_args a;
    mf_cache *cache = NULL;
    size_t removed = 0;
    int rc = cli_parse("clear", argc, argv, "cache", &a);
    if (rc == CLI_OK && a.positional_count)
        rc = cli_usage_error("clear", "no arguments expected");
    if (rc == CLI_OK && (mf_cache_open(NULL, &cache) != MF_OK ||
                         mf_cache_clear(cache, &removed) != MF_OK))
        rc = cli_failed("clear");
    if (rc == CLI_OK)
        printf("removed %zu files from %s\n", removed, mf_cache_directory(cache));
    mf_cache_close(cache);
    free(a.positional);
    return rc;
}
