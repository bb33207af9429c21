/* Finding, loading and launching kernels. */
#include "kernels.h"

#include "disk_cache.h"
#include "error.h"
#include "trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char mf_builtin_archive_start[];
extern const unsigned char mf_builtin_archive_end[];

static mf_archive *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

/* MOEFORGE_BUILTIN=off hides the built-in set, so that a deployment can prove
 * its archive (or cache) serves every kernel it needs. */
static void open_builtin(void)
{
    const char *env = getenv("MOEFORGE_BUILTIN");
    if (env && strcmp(env, "off") == 0) {
        mf_log(MF_LOG_INFO, "built-in kernel set disabled by MOEFORGE_BUILTIN=off");
        return;
    }
    size_t size = (size_t)(mf_builtin_archive_end - mf_builtin_archive_start);
    if (mf_archive_open_memory(mf_builtin_archive_start, size, "built-in kernel set", &builtin) !=
        MF_OK)
        mf_log(MF_LOG_ERROR, "built-in kernel set unusable: %s", mf_last_error());
}

const mf_archive *mf_builtin_archive(void)
{
    pthread_once(&builtin_once, open_builtin);
    return builtin;
}

int mf_device_targets(const mf_device_info *info, char targets[][16], int max)
{
    static const int known[] = {120, 100, 90, 89, 87, 86, 80, 75};
    const int nknown = sizeof known / sizeof known[0];
    int cc = mf_device_cc(info), n = 0;
    if (n < max)
        snprintf(targets[n++], 16, "%s", info->arch);
    for (int i = 0; i < nknown && n < max; i++)
        if (known[i] / 10 == info->cc_major && known[i] <= cc)
            snprintf(targets[n], 16, "sm_%d", known[i]), n += strcmp(targets[n], info->arch) != 0;
    if (strchr(info->arch, 'a') && n < max)
        snprintf(targets[n++], 16, "compute_%da", cc);
    for (int i = 0; i < nknown && n < max; i++)
        if (known[i] <= cc)
            snprintf(targets[n++], 16, "compute_%d", known[i]);
    return n;
}

static mf_status load_module(mf_context *ctx, const char *spec, const void *image, int is_ptx,
                             const char *entry, const char *origin, mf_kernel **out)
{
    char log[4096] = "";
    CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[] = {log, (void *)(uintptr_t)sizeof log};
    mf_kernel *k = calloc(1, sizeof *k);
    if (!k)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "loading %s: no host memory", spec);
    snprintf(k->spec, sizeof k->spec, "%s", spec);
    snprintf(k->entry, sizeof k->entry, "%s", entry);
    CUresult r = ctx->drv->cuModuleLoadDataEx(&k->module, image, 2, opts, vals);
    if (r != CUDA_SUCCESS) {
        free(k);
        mf_status s = mf_cuda_fail_at(__FILE__, __LINE__, "cuModuleLoadDataEx", r);
        return MF_FAIL(s, "loading %s from %s (%s): %s %s", spec, origin, is_ptx ? "PTX" : "cubin",
                       mf_last_error(), log);
    }
    r = ctx->drv->cuModuleGetFunction(&k->function, k->module, entry);
    if (r != CUDA_SUCCESS) {
        ctx->drv->cuModuleUnload(k->module);
        free(k);
        return mf_cuda_fail_at(__FILE__, __LINE__, "cuModuleGetFunction (entry of spec)", r);
    }
    ctx->drv->cuFuncGetAttribute(&k->static_smem, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, k->function);
    atomic_init(&k->dynamic_smem_limit, 48 * 1024 - k->static_smem);
    atomic_init(&k->max_clusters, 0);
    mf_log(MF_LOG_DEBUG, "loaded %s from %s (%s, entry %s)", spec, origin, is_ptx ? "PTX" : "cubin",
           entry);
    *out = k;
    return MF_OK;
}

/* Looks for spec in one archive, trying each target the device can run. */
static mf_status load_from_archive(mf_context *ctx, const mf_archive *a, const char *spec,
                                   const char *origin, mf_kernel **out)
{
    char targets[16][16];
    int n = mf_device_targets(&ctx->info, targets, 16);
    for (int i = 0; i < n; i++) {
        mf_archive_entry e;
        mf_status s = mf_archive_find(a, spec, targets[i], &e);
        if (s == MF_ERR_KERNEL_NOT_FOUND)
            continue;
        MF_TRY(s);
        return load_module(ctx, spec, e.data, e.is_ptx, e.entry, origin, out);
    }
    return MF_ERR_KERNEL_NOT_FOUND;
}

static mf_status load_from_provider(mf_context *ctx, const char *spec, mf_kernel **out)
{
    mf_kernel_image image;
    memset(&image, 0, sizeof image);
    MF_TRY(ctx->provider.compile(ctx->provider.user, spec, ctx->info.arch, &image));
    mf_status s = load_module(ctx, spec, image.data, image.is_ptx, image.entry, "JIT", out);
    if (ctx->provider.release)
        ctx->provider.release(ctx->provider.user, &image);
    return s;
}

/* Walks the lookup chain; the caller holds load_lock and the CUDA context. */
static mf_status load_kernel(mf_context *ctx, const char *spec, mf_kernel **out)
{
    const mf_archive *b = mf_builtin_archive();
    mf_status s = b ? load_from_archive(ctx, b, spec, "built-in set", out) : MF_ERR_KERNEL_NOT_FOUND;
    for (int i = ctx->archive_count - 1; s == MF_ERR_KERNEL_NOT_FOUND && i >= 0; i--)
        s = load_from_archive(ctx, ctx->archives[i], spec, "archive", out);
    const mf_archive *cached;
    if (s == MF_ERR_KERNEL_NOT_FOUND && mf_disk_cache_find(ctx, spec, &cached) == MF_OK)
        s = load_from_archive(ctx, cached, spec, "disk cache", out);
    if (s == MF_ERR_KERNEL_NOT_FOUND && ctx->provider.compile)
        s = load_from_provider(ctx, spec, out);
    if (s == MF_ERR_KERNEL_NOT_FOUND)
        return MF_FAIL(s, "kernel '%s' for %s is in no kernel set and no JIT is installed", spec,
                       ctx->info.arch);
    return s;
}

mf_status mf_kernel_get(mf_context *ctx, const char *spec, mf_kernel **out)
{
    *out = mf_kernel_table_find(&ctx->kernels, spec);
    if (*out)
        return MF_OK;
    pthread_mutex_lock(&ctx->load_lock);
    mf_status s = MF_OK;
    *out = mf_kernel_table_find(&ctx->kernels, spec);
    if (!*out && (s = mf_context_push(ctx)) == MF_OK) {
        s = load_kernel(ctx, spec, out);
        if (s == MF_OK && (s = mf_kernel_table_insert(&ctx->kernels, *out)) != MF_OK) {
            ctx->drv->cuModuleUnload((*out)->module);
            free(*out);
            *out = NULL;
        }
        mf_context_pop(ctx);
    }
    pthread_mutex_unlock(&ctx->load_lock);
    return s;
}

mf_status mf_kernel_prepare(mf_context *ctx, const char *spec)
{
    if (!ctx || !spec)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_kernel_prepare: null argument");
    mf_spec parsed;
    char canonical[MF_SPEC_TEXT_MAX];
    MF_TRY(mf_spec_parse(spec, &parsed));
    MF_TRY(mf_spec_format(&parsed, canonical, sizeof canonical));
    mf_kernel *k;
    return mf_kernel_get(ctx, canonical, &k);
}

static mf_status allow_dynamic_smem(mf_context *ctx, mf_kernel *k, unsigned smem_bytes)
{
    if ((int)smem_bytes <= atomic_load(&k->dynamic_smem_limit))
        return MF_OK;
    if ((int)smem_bytes + k->static_smem > ctx->info.max_smem_per_block_optin)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "%s needs %u + %d bytes of shared memory, device "
                       "allows %d", k->spec, smem_bytes, k->static_smem,
                       ctx->info.max_smem_per_block_optin);
    CU_CHECK(ctx->drv->cuFuncSetAttribute(k->function,
                                          CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                          (int)smem_bytes));
    atomic_store(&k->dynamic_smem_limit, (int)smem_bytes);
    return MF_OK;
}

mf_status mf_kernel_launch(mf_context *ctx, mf_kernel *k, unsigned grid_x, unsigned grid_y,
                           unsigned grid_z, unsigned block_x, unsigned smem_bytes,
                           mf_stream stream, void **args)
{
    MF_TRY(mf_context_push(ctx));
    mf_status s = allow_dynamic_smem(ctx, k, smem_bytes);
    CUlaunchAttribute overlap = {.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
                                 .value.programmaticStreamSerializationAllowed = 1};
    CUlaunchConfig config = {
        .gridDimX = grid_x, .gridDimY = grid_y, .gridDimZ = grid_z,
        .blockDimX = block_x, .blockDimY = 1, .blockDimZ = 1,
        .sharedMemBytes = smem_bytes, .hStream = (CUstream)stream,
        .attrs = &overlap, .numAttrs = ctx->info.cc_major >= 9 ? 1 : 0,
    };
    CUresult r = s == MF_OK ? ctx->drv->cuLaunchKernelEx(&config, k->function, args, NULL)
                            : CUDA_SUCCESS;
    mf_context_pop(ctx);
    if (r != CUDA_SUCCESS)
        return mf_cuda_fail_at(__FILE__, __LINE__, "cuLaunchKernelEx", r);
    return s;
}

mf_status mf_kernel_max_clusters(mf_context *ctx, mf_kernel *k, unsigned cluster,
                                 unsigned block_x, unsigned smem_bytes, int *out)
{
    int known = atomic_load(&k->max_clusters);
    if (known > 0) {
        *out = known;
        return MF_OK;
    }
    MF_TRY(mf_context_push(ctx));
    mf_status s = allow_dynamic_smem(ctx, k, smem_bytes);
    CUlaunchConfig config = {.gridDimX = cluster, .gridDimY = 1, .gridDimZ = 1,
                             .blockDimX = block_x, .blockDimY = 1, .blockDimZ = 1,
                             .sharedMemBytes = smem_bytes};
    int clusters = 0;
    CUresult r = s == MF_OK ? ctx->drv->cuOccupancyMaxActiveClusters(&clusters, k->function, &config)
                            : CUDA_SUCCESS;
    mf_context_pop(ctx);
    if (r != CUDA_SUCCESS)
        return mf_cuda_fail_at(__FILE__, __LINE__, "cuOccupancyMaxActiveClusters", r);
    MF_TRY(s);
    if (clusters < 1)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "%s: no cluster of %u blocks of %u threads and %u bytes"
                       " of shared memory fits on the device", k->spec, cluster, block_x, smem_bytes);
    mf_log(MF_LOG_DEBUG, "%s: %d clusters of %u blocks resident at once", k->spec, clusters,
           cluster);
    atomic_store(&k->max_clusters, clusters);
    *out = clusters;
    return MF_OK;
}

mf_status mf_context_open_archive(mf_context *ctx, const char *path)
{
    if (!ctx || !path)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_context_open_archive: null argument");
    mf_archive *a;
    MF_TRY(mf_trust_file(path));
    MF_TRY(mf_archive_open_file(path, &a));
    char targets[16][16];
    int n = mf_device_targets(&ctx->info, targets, 16), usable = 0;
    for (int i = 0; i < n && !usable; i++)
        usable = mf_archive_has_target(a, targets[i]);
    mf_status s = MF_OK;
    pthread_mutex_lock(&ctx->load_lock);
    if (!usable)
        s = MF_FAIL(MF_ERR_ARCH_MISMATCH, "archive %s holds no code that runs on %s", path,
                    ctx->info.arch);
    else if (ctx->archive_count == MF_MAX_ARCHIVES)
        s = MF_FAIL(MF_ERR_UNSUPPORTED, "more than %d archives opened on one context",
                    MF_MAX_ARCHIVES);
    else
        ctx->archives[ctx->archive_count++] = a;
    pthread_mutex_unlock(&ctx->load_lock);
    if (s != MF_OK)
        mf_archive_close(a);
    return s;
}

mf_status mf_context_set_provider(mf_context *ctx, const mf_kernel_provider *provider)
{
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_context_set_provider: ctx is NULL");
    if (provider && !provider->compile)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_context_set_provider: compile is NULL");
    pthread_mutex_lock(&ctx->load_lock);
    if (provider)
        ctx->provider = *provider;
    else
        memset(&ctx->provider, 0, sizeof ctx->provider);
    pthread_mutex_unlock(&ctx->load_lock);
    return MF_OK;
}
