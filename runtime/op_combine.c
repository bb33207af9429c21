/* Combine op: validation, specialization choice and launch. */
#include "error.h"
#include "op_common.h"
#include "op_specs.h"

#include <stdio.h>

enum {
    COMBINE_BLOCK = 256,
    COMBINE_VEC = 8,           /* bf16 per 16-byte access                         */
    COMBINE_MAX_TOPK = 32,
    RESIDENT_THREADS = 768,    /* per SM; templates/combine.cu's register budget   */
    LOADS_IN_FLIGHT = 8,       /* gathered 16-byte loads a thread issues at once   */
    MAX_KCHUNK = 8,
    MAX_UNROLL = 4             /* 4 columns x 8 fp32 sums fill the register budget */
};

static mf_status validate(const mf_context *ctx, const mf_combine_args *a)
{
    if (!a)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_combine: args is NULL");
    if (!a->d || !a->src2dst || !a->topk_weights || !a->out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_combine: d, src2dst, topk_weights or out is NULL");
    if (mf_misaligned16(a->d) || mf_misaligned16(a->out))
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_combine: d or out not 16-byte aligned");
    /* int32/fp32 loads and the flag word's atomicOr fault on a misaligned word. */
    if (((uintptr_t)a->src2dst | (uintptr_t)a->topk_weights | (uintptr_t)a->error_flags) & 3)
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_combine: src2dst, topk_weights or error_flags not "
                       "4-byte aligned");
    if (a->hidden_size < COMBINE_VEC)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_combine: hidden_size = %d, must be >= 8",
                       a->hidden_size);
    if (a->hidden_size % COMBINE_VEC)
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_combine: hidden_size = %d is not a multiple of 8",
                       a->hidden_size);
    if (a->topk < 1 || a->topk > COMBINE_MAX_TOPK)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_combine: topk = %d, must be in [1, 32]",
                       a->topk);
    if (a->tokens < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_combine: tokens = %d, must be >= 0",
                       a->tokens);
    if (a->tokens > 0 && a->d_rows < 1)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "mf_combine: d_rows = %lld, must be >= 1 when tokens > 0",
                       (long long)a->d_rows);
    if (a->d_rows > INT64_MAX / 2 / a->hidden_size)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_combine: d_rows = %lld overflows d's size",
                       (long long)a->d_rows);
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_combine: ctx is NULL");
    return MF_OK;
}

static int pow2_ceil(int64_t x)
{
    int p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

static int log2_exact(int pow2)
{
    int l = 0;
    while ((1 << l) < pow2)
        l++;
    return l;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* About LOADS_IN_FLIGHT gathered loads per thread, all issued before any is
 * summed: kchunk = K rounded up to a power of two, at most 8 (a larger K runs
 * in chunks of 8), unroll = 8 / kchunk columns, at most 4. K = 1 -> (1, 4),
 * K = 2 -> (2, 4), K = 3..4 -> (4, 2), K >= 5 -> (8, 1). */
typedef struct combine_shape {
    int kchunk, unroll;
} combine_shape;

static combine_shape choose_shape(int topk)
{
    int kchunk = pow2_ceil(topk < MAX_KCHUNK ? topk : MAX_KCHUNK);
    int unroll = LOADS_IN_FLIGHT / kchunk;
    return (combine_shape){kchunk, unroll < MAX_UNROLL ? unroll : MAX_UNROLL};
}

mf_status mf_combine_spec(int topk, mf_spec *spec)
{
    combine_shape shape = choose_shape(topk);
    *spec = (mf_spec){.family = "combine"};
    MF_TRY(mf_spec_set_int(spec, "block", COMBINE_BLOCK));
    MF_TRY(mf_spec_set(spec, "dtype", "bf16"));
    MF_TRY(mf_spec_set_int(spec, "kchunk", shape.kchunk));
    return mf_spec_set_int(spec, "unroll", shape.unroll);
}

/* Threads per token (lanes): a power of two in [K, COMBINE_BLOCK] (a group's
 * slot table has one entry per thread), the largest that covers the row in
 * passes of lanes * unroll vectors leaving at most 1/8 of the row's worth of
 * lanes idle in the last pass (H = 7168: 128 lanes, 7 full passes); a
 * block takes COMBINE_BLOCK / lanes consecutive tokens. Rows are cut into
 * column slices (blockIdx.y, whole passes) until there are about
 * SLICE_TARGET_WAVES units (group, slice) per resident block, so that a few
 * tokens spread over the device and the last round of units is a small part of
 * the work. The grid covers the resident blocks once, striding over groups. */
enum { SLICE_TARGET_WAVES = 4 };

typedef struct combine_geometry {
    int lanes_log2, slice_vecs;
    unsigned grid_x, grid_y;
} combine_geometry;

static int64_t pass_waste(int vecs, int lanes, int unroll)
{
    int64_t pass = (int64_t)lanes * unroll;
    return ceil_div(vecs, pass) * pass - vecs;
}

static int choose_lanes(int vecs, int topk, int unroll)
{
    int min_lanes = pow2_ceil(topk);
    int lanes = pow2_ceil(ceil_div(vecs, unroll));
    lanes = lanes < min_lanes ? min_lanes : lanes > COMBINE_BLOCK ? COMBINE_BLOCK : lanes;
    while (lanes / 2 >= min_lanes && pass_waste(vecs, lanes, unroll) * 8 > vecs)
        lanes /= 2;
    return lanes;
}

static combine_geometry choose_geometry(const mf_context *ctx, const mf_combine_args *a,
                                        combine_shape shape)
{
    int vecs = a->hidden_size / COMBINE_VEC;
    int lanes = choose_lanes(vecs, a->topk, shape.unroll);
    int64_t groups = ceil_div(a->tokens, COMBINE_BLOCK / lanes);
    int64_t resident = (int64_t)ctx->info.sm_count * (RESIDENT_THREADS / COMBINE_BLOCK);
    if (resident < 1)
        resident = 1;
    int64_t pass_vecs = (int64_t)lanes * shape.unroll, passes = ceil_div(vecs, pass_vecs);
    int64_t slices = ceil_div(SLICE_TARGET_WAVES * resident, groups);
    if (slices > passes)
        slices = passes;
    int64_t slice_vecs = ceil_div(passes, slices) * pass_vecs;
    int64_t grid_y = ceil_div(vecs, slice_vecs), grid_x = resident / grid_y;
    return (combine_geometry){
        .lanes_log2 = log2_exact(lanes),
        .slice_vecs = (int)slice_vecs,
        .grid_x = (unsigned)(grid_x < 1 ? 1 : grid_x > groups ? groups : grid_x),
        .grid_y = (unsigned)grid_y,
    };
}

mf_status mf_combine(mf_context *ctx, const mf_combine_args *args, mf_stream stream)
{
    MF_TRY(validate(ctx, args));
    if (args->tokens == 0)
        return MF_OK;
    combine_shape shape = choose_shape(args->topk);
    mf_spec spec;
    MF_TRY(mf_combine_spec(args->topk, &spec));
    mf_kernel *k;
    MF_TRY(mf_op_kernel(ctx, &spec, &k));
    combine_geometry g = choose_geometry(ctx, args, shape);
    mf_log(MF_LOG_DEBUG,
           "combine: kchunk=%d unroll=%d grid %ux%u, %d lanes per token, slices of %d "
           "vectors, for T=%d K=%d H=%d", shape.kchunk, shape.unroll, g.grid_x, g.grid_y,
           1 << g.lanes_log2, g.slice_vecs, args->tokens, args->topk, args->hidden_size);
    const void *d = args->d;
    long long d_rows = args->d_rows;
    const int32_t *src2dst = args->src2dst;
    const float *weights = args->topk_weights;
    void *out = args->out;
    int tokens = args->tokens, topk = args->topk, vecs = args->hidden_size / COMBINE_VEC;
    float scale = args->routed_scaling == 0.0f ? 1.0f : args->routed_scaling;
    int32_t *error_flags = args->error_flags;
    void *params[] = {&d, &d_rows, &src2dst, &weights, &out, &tokens, &topk,
                      &vecs, &scale, &error_flags, &g.lanes_log2, &g.slice_vecs};
    return mf_kernel_launch(ctx, k, g.grid_x, g.grid_y, 1, COMBINE_BLOCK, 0, stream, params);
}
