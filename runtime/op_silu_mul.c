/* SiLU-and-mul op: validation, specialization choice and launch. */
#include "error.h"
#include "kernels.h"

#include <stdio.h>

enum { SILU_BLOCK = 256, SILU_VEC = 8 /* bf16 per 16-byte access */, BLOCKS_PER_SM = 8 };

static int misaligned(const void *p)
{
    return ((uintptr_t)p & 15) != 0;
}

static mf_status validate(const mf_context *ctx, const mf_silu_mul_args *a)
{
    if (!a)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: args is NULL");
    if (a->layout != MF_LAYOUT_MASKED)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "mf_silu_mul: layout %d not supported (masked only)",
                       (int)a->layout);
    if (!a->input || !a->output || !a->masked_m)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: input, output or masked_m is NULL");
    if (a->experts < 1 || a->experts > 65535)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: experts = %d, must be in [1, 65535]",
                       a->experts);
    if (a->max_m < 1 || a->n < SILU_VEC || a->expected_m < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_silu_mul: max_m = %d, n = %d, expected_m = %d (need max_m >= 1, "
                       "n >= 8, expected_m >= 0)", a->max_m, a->n, a->expected_m);
    if (a->n % SILU_VEC)
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_silu_mul: n = %d is not a multiple of 8", a->n);
    if (misaligned(a->input) || misaligned(a->output))
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_silu_mul: input or output not 16-byte aligned");
    if ((int64_t)a->experts * a->max_m * 2 * a->n > INT64_MAX / 4)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: tensor size overflows");
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: ctx is NULL");
    return MF_OK;
}

/* More independent 16-byte loads per thread hide latency when rows are many. */
static int choose_unroll(int64_t vectors_per_expert)
{
    return vectors_per_expert >= 8 * SILU_BLOCK ? 4 : 1;
}

/* Blocks along x per expert: enough for the hinted rows, but no more than about
 * two waves over all experts; a grid-stride loop covers larger actual counts. */
static unsigned choose_grid_x(const mf_context *ctx, const mf_silu_mul_args *a, int unroll)
{
    int64_t rows = a->expected_m ? a->expected_m : a->max_m;
    int64_t vectors = rows * (a->n / SILU_VEC);
    int64_t needed = (vectors + SILU_BLOCK * unroll - 1) / (SILU_BLOCK * unroll);
    int64_t cap = (int64_t)ctx->info.sm_count * BLOCKS_PER_SM * 2 / a->experts;
    if (needed > cap)
        needed = cap;
    return needed < 1 ? 1 : (unsigned)needed;
}

mf_status mf_silu_mul(mf_context *ctx, const mf_silu_mul_args *args, mf_stream stream)
{
    MF_TRY(validate(ctx, args));
    int64_t hint_rows = args->expected_m ? args->expected_m : args->max_m;
    int unroll = choose_unroll(hint_rows * (args->n / SILU_VEC));
    char spec[MF_SPEC_TEXT_MAX];
    snprintf(spec, sizeof spec, "silu_mul:block=%d,dtype=bf16,layout=masked,unroll=%d",
             SILU_BLOCK, unroll);
    mf_kernel *k;
    MF_TRY(mf_kernel_get(ctx, spec, &k));
    unsigned grid_x = choose_grid_x(ctx, args, unroll);
    mf_log(MF_LOG_DEBUG, "silu_mul: %s grid %ux%d for E=%d max_m=%d n=%d expected_m=%d", spec,
           grid_x, args->experts, args->experts, args->max_m, args->n, args->expected_m);
    const void *input = args->input;
    void *output = args->output;
    const int32_t *masked_m = args->masked_m;
    int max_m = args->max_m, n = args->n;
    void *params[] = {&input, &output, &masked_m, &max_m, &n};
    return mf_kernel_launch(ctx, k, grid_x, (unsigned)args->experts, 1, SILU_BLOCK, 0, stream,
                            params);
}
