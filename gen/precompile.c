/* One call from a model description to a deployment archive: enumerate the
 * kernels its forward passes use, compile what the cache lacks in parallel,
 * pack them all. */
#include "moeforge_gen.h"

#include "arch.h"
#include "error.h"
#include "model.h"
#include "pack.h"

#include <stdio.h>
#include <string.h>

static mf_status load_model(const char *model, mf_model *out)
{
    size_t n = strlen(model);
    int is_file = strchr(model, '/') || (n > 4 && strcmp(model + n - 4, ".lua") == 0);
    return is_file ? mf_model_load_file(model, out) : mf_model_load_preset(model, out);
}

static mf_status pack_specs(const mf_spec_list *specs, const char *arch, const char *ptx_target,
                            int threads, const char *archive_path)
{
    const char *targets[] = {arch, ptx_target};
    mf_warmup_options options = {targets, 2, threads, MF_PROGRESS_AUTO, 1};
    mf_cache *cache;
    MF_TRY(mf_cache_open(NULL, &cache));
    mf_warmup_report report;
    mf_status s = mf_pack(cache, (const char *const *)specs->items, specs->count, &options,
                          archive_path, &report);
    for (size_t i = 0; i < report.failed; i++)
        mf_log(MF_LOG_ERROR, "%s for %s: %s", report.failures[i].spec, report.failures[i].target,
               report.failures[i].message);
    mf_log(MF_LOG_INFO, "precompile: %zu tasks, %zu compiled, %zu cached, %.1f s on %d threads",
           report.tasks, report.compiled, report.hits, report.seconds, report.threads);
    mf_warmup_report_free(&report);
    mf_cache_close(cache);
    return s;
}

mf_status mf_gen_precompile(const char *model, const char *arch, int threads,
                            const char *archive_path, size_t *kernels)
{
    if (!model || !arch || !archive_path || threads < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gen_precompile: null argument or threads < 0");
    char ptx_target[16];
    MF_TRY(mf_arch_check(arch, ptx_target));
    mf_model m;
    MF_TRY(load_model(model, &m));
    mf_spec_list specs = {0};
    mf_status s = mf_model_kernel_specs(&m, mf_arch_cc(arch), &specs);
    if (s == MF_OK)
        s = pack_specs(&specs, arch, ptx_target, threads, archive_path);
    if (s == MF_OK && kernels)
        *kernels = specs.count;
    mf_spec_list_free(&specs);
    return s;
}
