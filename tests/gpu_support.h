/* Helpers for the GPU suite: a context or a clean skip, poisoned buffers. */
#ifndef MF_TEST_GPU_SUPPORT_H
#define MF_TEST_GPU_SUPPORT_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "moeforge.h"

/* Skips the test (not fails) on a machine without a driver or a device. */
static inline mf_context *gpu_context_or_skip(void)
{
    mf_context *ctx = NULL;
    mf_status s = mf_context_create(0, &ctx);
    if (s == MF_ERR_NO_DRIVER || s == MF_ERR_NO_DEVICE)
        cr_skip_test("no GPU here (%s: %s)", mf_status_string(s), mf_last_error());
    cr_assert_eq(s, MF_OK, "mf_context_create: %s", mf_last_error());
    return ctx;
}

#define MF_OK_OR_FAIL(call) cr_assert_eq((call), MF_OK, "%s: %s", #call, mf_last_error())

/* Device buffer of `bytes` filled with `poison`. */
static inline void *gpu_alloc_poisoned(mf_context *ctx, size_t bytes, uint8_t poison)
{
    void *d = NULL;
    MF_OK_OR_FAIL(mf_malloc(ctx, &d, bytes));
    MF_OK_OR_FAIL(mf_memset_d8(ctx, d, poison, bytes));
    return d;
}

static inline void *gpu_upload(mf_context *ctx, const void *host, size_t bytes)
{
    void *d = NULL;
    MF_OK_OR_FAIL(mf_malloc(ctx, &d, bytes ? bytes : 16));
    if (bytes)
        MF_OK_OR_FAIL(mf_memcpy_htod(ctx, d, host, bytes));
    return d;
}

static inline void *host_download(mf_context *ctx, const void *dev, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 1);
    cr_assert(h);
    if (bytes)
        MF_OK_OR_FAIL(mf_memcpy_dtoh(ctx, h, dev, bytes));
    return h;
}

/* Every byte of a device buffer still holds value: a refused call wrote nothing. */
static inline void expect_bytes_untouched(mf_context *ctx, const void *dev, size_t bytes,
                                          uint8_t value)
{
    uint8_t *after = host_download(ctx, dev, bytes);
    for (size_t i = 0; i < bytes; i++)
        cr_assert_eq(after[i], value, "byte %zu changed by a refused call", i);
    free(after);
}

#endif
