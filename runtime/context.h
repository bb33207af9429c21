/* The context: one device's primary CUDA context, its properties and its kernels. */
#ifndef MF_CONTEXT_H
#define MF_CONTEXT_H

#include <pthread.h>

#include "archive.h"
#include "driver.h"
#include "kernel_table.h"

#define MF_MAX_ARCHIVES 16

struct mf_context {
    const mf_driver *drv;
    CUdevice device;
    CUcontext cu;
    mf_device_info info;
    mf_kernel_table kernels;      /* has its own lock: the launch path reads it      */
    pthread_mutex_t load_lock;    /* one miss is resolved at a time per context      */
    mf_archive *archives[MF_MAX_ARCHIVES]; /* guarded by load_lock                    */
    int archive_count;
    mf_kernel_provider provider;  /* guarded by load_lock; compile == NULL: none     */
    struct mf_disk_cache *disk_cache; /* guarded by load_lock; NULL until first miss */
};

/* Compute capability as one number: 90 for sm_90. */
static inline int mf_device_cc(const mf_device_info *info)
{
    return info->cc_major * 10 + info->cc_minor;
}

/* e4m3 conversions need sm_89 or newer: MF_OK there, else UNSUPPORTED naming
 * `what` (the op) and the device. */
mf_status mf_require_fp8(const mf_context *ctx, const char *what);

/* Makes ctx's CUDA context current on this thread for the duration of a call. */
mf_status mf_context_push(mf_context *ctx);
void mf_context_pop(mf_context *ctx);

#endif
