/* Context creation: primary context, device properties, architecture name. */
#include "context.h"

#include "disk_cache.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mf_status mf_device_count(int *count)
{
    if (!count)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_device_count: count is NULL");
    *count = 0;
    const mf_driver *drv;
    mf_status s = mf_driver_get(&drv);
    if (s == MF_ERR_NO_DEVICE)
        return MF_OK;
    MF_TRY(s);
    CU_CHECK(drv->cuDeviceGetCount(count));
    return MF_OK;
}

/* Hopper and Blackwell datacenter parts get their arch-specific ("a") feature set. */
static void arch_name(int major, int minor, char *buf, size_t size)
{
    int arch_specific = (major == 9 && minor == 0) || (major == 10 && minor == 0);
    snprintf(buf, size, "sm_%d%d%s", major, minor, arch_specific ? "a" : "");
}

static mf_status read_device_info(mf_context *ctx)
{
    const mf_driver *drv = ctx->drv;
    mf_device_info *info = &ctx->info;
    struct { int *dst; CUdevice_attribute attr; } attrs[] = {
        {&info->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR},
        {&info->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR},
        {&info->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT},
        {&info->max_smem_per_block_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN},
        {&info->l2_bytes, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        CU_CHECK(drv->cuDeviceGetAttribute(attrs[i].dst, attrs[i].attr, ctx->device));
    CU_CHECK(drv->cuDeviceGetName(info->name, sizeof info->name, ctx->device));
    CU_CHECK(drv->cuDriverGetVersion(&info->driver_version));
    arch_name(info->cc_major, info->cc_minor, info->arch, sizeof info->arch);
    return MF_OK;
}

static mf_status open_device(mf_context *ctx, int ordinal)
{
    MF_TRY(mf_driver_get(&ctx->drv));
    int count = 0;
    CU_CHECK(ctx->drv->cuDeviceGetCount(&count));
    if (ordinal < 0 || ordinal >= count)
        return MF_FAIL(MF_ERR_NO_DEVICE, "device %d requested, %d present", ordinal, count);
    CU_CHECK(ctx->drv->cuDeviceGet(&ctx->device, ordinal));
    CU_CHECK(ctx->drv->cuDevicePrimaryCtxRetain(&ctx->cu, ctx->device));
    ctx->info.ordinal = ordinal;
    return read_device_info(ctx);
}

mf_status mf_context_create(int ordinal, mf_context **out)
{
    if (!out || ordinal < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_context_create: out is NULL or ordinal %d < 0",
                       ordinal);
    *out = NULL;
    mf_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "mf_context_create: no host memory");
    mf_status s = open_device(ctx, ordinal);
    if (s == MF_OK)
        s = mf_kernel_table_init(&ctx->kernels);
    if (s != MF_OK) {
        if (ctx->cu)
            ctx->drv->cuDevicePrimaryCtxRelease(ctx->device);
        free(ctx);
        return s;
    }
    pthread_mutex_init(&ctx->load_lock, NULL);
    mf_log(MF_LOG_INFO, "context on device %d: %s (%s, %d SMs)", ordinal, ctx->info.name,
           ctx->info.arch, ctx->info.sm_count);
    *out = ctx;
    return MF_OK;
}

static void unload_module(void *user, CUmodule module)
{
    mf_context *ctx = user;
    ctx->drv->cuModuleUnload(module);
}

void mf_context_destroy(mf_context *ctx)
{
    if (!ctx)
        return;
    if (mf_context_push(ctx) == MF_OK) {
        mf_kernel_table_clear(&ctx->kernels, unload_module, ctx);
        mf_context_pop(ctx);
    }
    mf_kernel_table_destroy(&ctx->kernels);
    for (int i = 0; i < ctx->archive_count; i++)
        mf_archive_close(ctx->archives[i]);
    mf_disk_cache_close(ctx->disk_cache);
    pthread_mutex_destroy(&ctx->load_lock);
    ctx->drv->cuDevicePrimaryCtxRelease(ctx->device);
    free(ctx);
}

mf_status mf_context_info(const mf_context *ctx, mf_device_info *out)
{
    if (!ctx || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_context_info: null argument");
    *out = ctx->info;
    return MF_OK;
}

mf_status mf_context_push(mf_context *ctx)
{
    CU_CHECK(ctx->drv->cuCtxPushCurrent(ctx->cu));
    return MF_OK;
}

void mf_context_pop(mf_context *ctx)
{
    CUcontext popped;
    ctx->drv->cuCtxPopCurrent(&popped);
}

mf_status mf_require_fp8(const mf_context *ctx, const char *what)
{
    if (mf_device_cc(&ctx->info) >= 89)
        return MF_OK;
    return MF_FAIL(MF_ERR_UNSUPPORTED, "%s: e4m3 needs sm_89 or newer, device is %s", what,
                   ctx->info.arch);
}
