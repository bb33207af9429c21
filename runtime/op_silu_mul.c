/* SiLU-and-mul op: validation, specialization choice and launch. */
#include "error.h"
#include "op_common.h"
#include "op_specs.h"

#include <stdbool.h>

enum {
    SILU_BLOCK = 256,
    SILU_VEC = 8,    /* bf16 per 16-byte input access                  */
    FP8_GROUP = 128, /* columns per e4m3 scale                         */
    BLOCKS_PER_SM = 8
};

static bool is_fp8(const mf_silu_mul_args *a)
{
    return a->out_dtype == MF_DTYPE_E4M3;
}

static mf_status validate_kinds(const mf_silu_mul_args *a)
{
    if (a->layout != MF_LAYOUT_MASKED && a->layout != MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_silu_mul: layout = %d is neither masked nor contiguous", (int)a->layout);
    if (a->out_dtype == MF_DTYPE_F32)
        return MF_FAIL(MF_ERR_UNSUPPORTED,
                       "mf_silu_mul: out_dtype = f32 not supported (bf16 or e4m3)");
    if (a->out_dtype != 0 && a->out_dtype != MF_DTYPE_BF16 && a->out_dtype != MF_DTYPE_E4M3)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_silu_mul: out_dtype = %d is not a dtype (0, bf16 or e4m3)",
                       (int)a->out_dtype);
    if (a->ue8m0 && !is_fp8(a))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_silu_mul: ue8m0 = %d needs out_dtype e4m3 (bf16 output has no scales)",
                       a->ue8m0);
    return MF_OK;
}

static mf_status validate_pointers(const mf_silu_mul_args *a)
{
    if (!a->input || !a->output)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: input or output is NULL");
    if (a->layout == MF_LAYOUT_MASKED && !a->masked_m)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: masked_m is NULL (masked layout)");
    if (a->layout == MF_LAYOUT_CONTIGUOUS && !a->m_indices)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_silu_mul: m_indices is NULL (contiguous layout)");
    if (is_fp8(a) && !a->out_scale)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: out_scale is NULL (e4m3 output)");
    return MF_OK;
}

static mf_status validate_sizes(const mf_silu_mul_args *a)
{
    if (a->layout == MF_LAYOUT_MASKED) {
        if (a->experts < 1 || a->experts > 65535)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                           "mf_silu_mul: experts = %d, must be in [1, 65535]", a->experts);
        if (a->max_m < 1)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: max_m = %d, must be >= 1",
                           a->max_m);
    } else if (a->m_capacity < 1) {
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: m_capacity = %d, must be >= 1",
                       a->m_capacity);
    }
    if (a->n < SILU_VEC || a->expected_m < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_silu_mul: n = %d, expected_m = %d (need n >= 8, expected_m >= 0)",
                       a->n, a->expected_m);
    int64_t rows = a->layout == MF_LAYOUT_MASKED ? (int64_t)a->experts * a->max_m : a->m_capacity;
    /* Divided, not multiplied: rows * 2n itself can pass INT64_MAX. */
    if (rows > INT64_MAX / 4 / 2 / a->n)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: tensor size overflows (%lld rows "
                       "of 2 * %d)", (long long)rows, a->n);
    return MF_OK;
}

static mf_status validate_alignment(const mf_silu_mul_args *a)
{
    if (a->n % SILU_VEC)
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_silu_mul: n = %d is not a multiple of 8", a->n);
    if (is_fp8(a) && a->n % FP8_GROUP)
        return MF_FAIL(MF_ERR_MISALIGNED,
                       "mf_silu_mul: n = %d is not a multiple of 128 (e4m3 output)", a->n);
    if (mf_misaligned16(a->input) || mf_misaligned16(a->output))
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_silu_mul: input or output not 16-byte aligned");
    if (is_fp8(a) && ((uintptr_t)a->out_scale & 3))
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_silu_mul: out_scale not 4-byte aligned");
    /* The kernel reads them as int32: a misaligned word is a device fault. */
    const int32_t *rows = a->layout == MF_LAYOUT_MASKED ? a->masked_m : a->m_indices;
    if ((uintptr_t)rows & 3)
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_silu_mul: %s %p not 4-byte aligned",
                       a->layout == MF_LAYOUT_MASKED ? "masked_m" : "m_indices", (const void *)rows);
    return MF_OK;
}

/* Every argument check comes before the context is touched. */
static mf_status validate(const mf_context *ctx, const mf_silu_mul_args *a)
{
    if (!a)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: args is NULL");
    MF_TRY(validate_kinds(a));
    MF_TRY(validate_pointers(a));
    MF_TRY(validate_sizes(a));
    MF_TRY(validate_alignment(a));
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_silu_mul: ctx is NULL");
    if (is_fp8(a))
        MF_TRY(mf_require_fp8(ctx, "mf_silu_mul"));
    return MF_OK;
}

/* Input vectors one grid.y slice covers: an expert's hinted rows (masked), or
 * every row (contiguous: which rows are valid is only known on the device). */
static int64_t vectors_per_slice(const mf_silu_mul_args *a)
{
    int64_t rows = a->layout == MF_LAYOUT_CONTIGUOUS ? a->m_capacity
                   : a->expected_m                  ? a->expected_m
                                                    : a->max_m;
    return rows * (a->n / SILU_VEC);
}

/* Threads of the largest grid: about two waves of BLOCKS_PER_SM blocks per SM. */
static int64_t max_grid_threads(int sm_count)
{
    return (int64_t)sm_count * BLOCKS_PER_SM * 2 * SILU_BLOCK;
}

/* Vectors per thread and iteration, as measured on H200: more independent
 * loads hide latency once every thread has several vectors, but the pipelined
 * kernels (contiguous, e4m3) hold two iterations' loads in registers. Masked
 * bf16 is best at 4, masked e4m3 at 2, contiguous bf16 at 2 once a full grid
 * gives each thread several vectors, contiguous e4m3 at 1. */
static int choose_unroll(int sm_count, const mf_silu_mul_args *a, int64_t vectors)
{
    if (a->layout == MF_LAYOUT_CONTIGUOUS)
        return !is_fp8(a) && vectors >= 4 * max_grid_threads(sm_count) ? 2 : 1;
    if (vectors < 8 * SILU_BLOCK)
        return 1;
    return is_fp8(a) ? 2 : 4;
}

/* Blocks along x per slice: enough for the hinted vectors, but no more than
 * about two waves over all slices; a grid-stride loop covers larger actual counts. */
static unsigned choose_grid_x(const mf_context *ctx, int64_t vectors, int slices, int unroll)
{
    int64_t needed = (vectors + SILU_BLOCK * unroll - 1) / (SILU_BLOCK * unroll);
    int64_t cap = max_grid_threads(ctx->info.sm_count) / SILU_BLOCK / slices;
    if (needed > cap)
        needed = cap;
    return needed < 1 ? 1 : (unsigned)needed;
}

/* silu_mul:block=256,dtype=bf16|e4m3,layout=masked|contiguous,unroll=1|2|4 */
mf_status mf_silu_mul_spec(const mf_silu_mul_args *a, int sm_count, mf_spec *spec)
{
    *spec = (mf_spec){.family = "silu_mul"};
    MF_TRY(mf_spec_set_int(spec, "block", SILU_BLOCK));
    MF_TRY(mf_spec_set(spec, "dtype", is_fp8(a) ? "e4m3" : "bf16"));
    MF_TRY(mf_spec_set(spec, "layout", a->layout == MF_LAYOUT_MASKED ? "masked" : "contiguous"));
    return mf_spec_set_int(spec, "unroll", choose_unroll(sm_count, a, vectors_per_slice(a)));
}

mf_status mf_silu_mul(mf_context *ctx, const mf_silu_mul_args *args, mf_stream stream)
{
    MF_TRY(validate(ctx, args));
    const bool masked = args->layout == MF_LAYOUT_MASKED;
    const int slices = masked ? args->experts : 1;
    const int64_t vectors = vectors_per_slice(args);
    const int unroll = choose_unroll(ctx->info.sm_count, args, vectors);
    mf_spec spec;
    MF_TRY(mf_silu_mul_spec(args, ctx->info.sm_count, &spec));
    mf_kernel *k;
    MF_TRY(mf_op_kernel(ctx, &spec, &k));
    const unsigned grid_x = choose_grid_x(ctx, vectors, slices, unroll);
    if (mf_log_enabled(MF_LOG_DEBUG)) {
        char text[MF_SPEC_TEXT_MAX];
        MF_TRY(mf_spec_format(&spec, text, sizeof text));
        mf_log(MF_LOG_DEBUG, "silu_mul: %s grid %ux%d, rows %d, n=%d, expected_m=%d", text,
               grid_x, slices, masked ? args->max_m : args->m_capacity, args->n,
               args->expected_m);
    }

    const void *input = args->input;
    void *output = args->output;
    float *out_scale = args->out_scale;
    int ue8m0 = args->ue8m0 != 0;
    const int32_t *row_info = masked ? args->masked_m : args->m_indices;
    int rows = masked ? args->max_m : args->m_capacity, n = args->n;
    void *bf16_params[] = {&input, &output, &row_info, &rows, &n};
    void *fp8_params[] = {&input, &output, &out_scale, &ue8m0, &row_info, &rows, &n};
    return mf_kernel_launch(ctx, k, grid_x, (unsigned)slices, 1, SILU_BLOCK, 0, stream,
                            is_fp8(args) ? fp8_params : bf16_params);
}
