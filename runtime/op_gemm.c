/* Grouped GEMM op: constraints, the tile-config heuristic, launch. */
#include "error.h"
#include "op_common.h"
#include "op_specs.h"

#include <stdio.h>
#include <string.h>

/* Tile configs of templates/gemm.cu, largest first (the tie-break order).
 * Warp tiles stay at or under 64x64 (bf16) and 32x64 (e4m3, which keeps a
 * second accumulator for the promotion) to fit the register file. */
static const mf_gemm_config bf16_configs[] = {
    {128, 128, 2, 2, 3}, {128, 64, 2, 2, 4}, {64, 128, 2, 2, 4},
    {64, 64, 2, 2, 4},   {32, 128, 1, 4, 4}, {64, 32, 2, 1, 4},
};
static const mf_gemm_config e4m3_configs[] = {
    {128, 128, 4, 2, 3}, {128, 64, 4, 1, 4}, {64, 128, 2, 2, 4},
    {64, 64, 2, 2, 4},   {32, 128, 1, 4, 4}, {64, 32, 2, 1, 4},
};
#define N_CONFIGS 6

enum { SMEM_PER_SM = 228 * 1024, ROW_BYTES = 128, MAX_GRID_Y = 65535 };

static const mf_gemm_config *configs_for(mf_dtype dtype)
{
    return dtype == MF_DTYPE_E4M3 ? e4m3_configs : bf16_configs;
}

mf_status mf_gemm_configs(mf_dtype dtype, mf_gemm_config *out, int max, int *count)
{
    if (!out || !count || max < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_configs: null argument");
    if (dtype != MF_DTYPE_BF16 && dtype != MF_DTYPE_E4M3)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_configs: dtype %d", (int)dtype);
    *count = max < N_CONFIGS ? max : N_CONFIGS;
    memcpy(out, configs_for(dtype), sizeof(mf_gemm_config) * (size_t)*count);
    return MF_OK;
}

static unsigned stage_bytes(mf_dtype dtype, const mf_gemm_config *c)
{
    unsigned scales = dtype == MF_DTYPE_E4M3 ? (unsigned)c->bm * 4 + 16 : 0;
    return (unsigned)(c->bm + c->bn) * ROW_BYTES + scales;
}

static unsigned smem_bytes(mf_dtype dtype, mf_layout layout, const mf_gemm_config *c, int experts)
{
    unsigned prefix = layout == MF_LAYOUT_MASKED ? (unsigned)(experts + 1) * 4 : 0;
    return (unsigned)c->stages * stage_bytes(dtype, c) + prefix;
}

/* Resident blocks per SM: shared memory, and at most two (the large warp
 * tiles use most of the register file). */
static int blocks_per_sm(mf_dtype dtype, const mf_gemm_config *c)
{
    int by_smem = SMEM_PER_SM / (int)(smem_bytes(dtype, MF_LAYOUT_CONTIGUOUS, c, 0) + 1024);
    return by_smem < 1 ? 1 : by_smem > 2 ? 2 : by_smem;
}

/* Score = last-wave utilization x useful rows per tile x arithmetic intensity
 * of the tile relative to 128x128 (bm*bn/(bm+bn) over 64). */
static double config_score(mf_dtype dtype, const mf_gemm_config *c, int m, int n, int groups,
                           int sm_count)
{
    long long m_tiles = (m + c->bm - 1) / c->bm;
    long long tiles = (long long)groups * m_tiles * (n / c->bn);
    long long slots = (long long)sm_count * blocks_per_sm(dtype, c);
    long long waves = (tiles + slots - 1) / slots;
    double utilization = (double)tiles / (double)(waves * slots);
    double useful_rows = (double)m / (double)(m_tiles * c->bm);
    double intensity = (double)c->bm * c->bn / (c->bm + c->bn) / 64.0;
    return utilization * useful_rows * (intensity < 1.0 ? intensity : 1.0);
}

static int config_fits(mf_dtype dtype, mf_layout layout, const mf_gemm_config *c, int n,
                       int m_capacity)
{
    if (n % c->bn)
        return 0;
    if (dtype == MF_DTYPE_E4M3 && 128 % c->bn)
        return 0;
    return layout != MF_LAYOUT_CONTIGUOUS || m_capacity % c->bm == 0;
}

static mf_status choose(mf_dtype dtype, mf_layout layout, int m, int n, int groups, int sm_count,
                        int m_capacity, mf_gemm_config *out)
{
    const mf_gemm_config *list = configs_for(dtype);
    double best = -1.0;
    for (int i = 0; i < N_CONFIGS; i++) {
        if (!config_fits(dtype, layout, &list[i], n, m_capacity))
            continue;
        double score = config_score(dtype, &list[i], m < 1 ? 1 : m, n, groups, sm_count);
        if (score > best + 1e-9) {
            best = score;
            *out = list[i];
        }
    }
    if (best < 0 && layout == MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: no tile config fits N = %d and m_capacity = %d "
                       "(a tile's bn must divide N and its bm m_capacity; N %% 32 == 0 and "
                       "m_capacity %% 128 == 0 always fit)", n, m_capacity);
    if (best < 0)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: no tile config fits N = %d (N %% 32 == 0 needed)",
                       n);
    return MF_OK;
}

mf_status mf_gemm_choose(mf_dtype dtype, mf_layout layout, int m, int n, int k, int groups,
                         int sm_count, mf_gemm_config *out)
{
    if (!out || groups < 1 || sm_count < 1 || n < 1 || k < 1)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: out NULL or a size < 1");
    if (dtype != MF_DTYPE_BF16 && dtype != MF_DTYPE_E4M3)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: dtype %d", (int)dtype);
    /* Any other value would silently be scored as masked. */
    if (layout != MF_LAYOUT_MASKED && layout != MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: layout %d unknown", (int)layout);
    /* contiguous: m is the average rows per group; capacities are 128-aligned */
    return choose(dtype, layout, m, n, groups, sm_count, 128, out);
}

static mf_status check_shape(const mf_gemm_args *a)
{
    int fp8 = a->dtype == MF_DTYPE_E4M3;
    if (a->dtype != MF_DTYPE_BF16 && !fp8)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm: dtype %d is not bf16 or e4m3", (int)a->dtype);
    if (a->experts < 1 || a->n < 1 || a->k < 1)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm: experts = %d, n = %d, k = %d must be >= 1",
                       a->experts, a->n, a->k);
    if (a->n % 32)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: N = %d is not a multiple of 32", a->n);
    if (a->k % (fp8 ? 128 : 64))
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: K = %d is not a multiple of %d (%s)", a->k,
                       fp8 ? 128 : 64, fp8 ? "the e4m3 scale block" : "128 bytes of bf16");
    /* Divided, not multiplied: experts * n * k itself can pass INT64_MAX. */
    if ((int64_t)a->experts * a->n > INT64_MAX / 4 / a->k)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm: B size overflows (experts = %d, n = %d, "
                       "k = %d)", a->experts, a->n, a->k);
    /* The kernel counts K's bytes (k * element size) in int32. */
    if ((int64_t)a->k * (fp8 ? 1 : 2) > INT32_MAX)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm: K = %d is %lld bytes per row, past the "
                       "kernel's int32 index math", a->k, (long long)a->k * (fp8 ? 1 : 2));
    return MF_OK;
}

static mf_status check_layout(const mf_gemm_args *a)
{
    int fp8 = a->dtype == MF_DTYPE_E4M3;
    if (a->layout == MF_LAYOUT_MASKED) {
        if (!a->masked_m || a->max_m < 1 || a->expected_m < 0)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm (masked): masked_m NULL, max_m = %d or "
                           "expected_m = %d", a->max_m, a->expected_m);
        /* Rows (and the kernel's tile prefix) are int32, as preprocess's src2dst. */
        if ((int64_t)a->experts * a->max_m > INT32_MAX)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm (masked): experts * max_m = %lld rows "
                           "overflow int32", (long long)a->experts * a->max_m);
        if (fp8 && a->max_m % 4)
            return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm (masked, e4m3): max_m = %d is not a multiple "
                           "of 4 (16-byte scale rows)", a->max_m);
        return MF_OK;
    }
    if (a->layout != MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm: layout %d unknown", (int)a->layout);
    if (!a->m_indices || a->m_capacity < 1 || a->m_capacity % 32)
        return MF_FAIL(a->m_capacity % 32 ? MF_ERR_UNSUPPORTED : MF_ERR_INVALID_ARGUMENT,
                       "gemm (contiguous): m_indices NULL or m_capacity = %d (a positive "
                       "multiple of 32; 128 always works)", a->m_capacity);
    return MF_OK;
}

static mf_status validate(const mf_context *ctx, const mf_gemm_args *a)
{
    if (!a)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm: args is NULL");
    MF_TRY(check_shape(a));
    MF_TRY(check_layout(a));
    int fp8 = a->dtype == MF_DTYPE_E4M3;
    if (!a->a || !a->b || !a->d || (fp8 && (!a->a_scale || !a->b_scale)))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm: a, b, d%s is NULL",
                       fp8 ? ", a_scale or b_scale" : "");
    if (mf_misaligned16(a->a) || mf_misaligned16(a->b) || mf_misaligned16(a->d) ||
        (((uintptr_t)a->a_scale | (uintptr_t)a->b_scale) & 3))
        return MF_FAIL(MF_ERR_MISALIGNED, "gemm: a, b or d not 16-byte aligned, or a scale "
                       "array not 4-byte aligned");
    /* Read as int32 by the kernel: a misaligned word is a device fault. */
    const int32_t *rows = a->layout == MF_LAYOUT_MASKED ? a->masked_m : a->m_indices;
    if ((uintptr_t)rows & 3)
        return MF_FAIL(MF_ERR_MISALIGNED, "gemm: %s %p not 4-byte aligned",
                       a->layout == MF_LAYOUT_MASKED ? "masked_m" : "m_indices", (const void *)rows);
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm: ctx is NULL");
    if (fp8 && ctx->info.cc_major * 10 + ctx->info.cc_minor < 89)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: e4m3 needs sm_89 or newer, device is %s",
                       ctx->info.arch);
    return MF_OK;
}

/* Contiguous launches one block row per bm rows along grid y, which CUDA
 * caps at 65535: past it the launch itself would fail with a driver error. */
static mf_status check_grid(const mf_gemm_args *a, const mf_gemm_config *c)
{
    if (a->layout == MF_LAYOUT_CONTIGUOUS && a->m_capacity / c->bm > MAX_GRID_Y)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm (contiguous): m_capacity = %d is %d tiles of bm = "
                       "%d rows, more than the %d of a grid's y dimension", a->m_capacity,
                       a->m_capacity / c->bm, c->bm, MAX_GRID_Y);
    return MF_OK;
}

mf_status mf_gemm_pick(const mf_gemm_args *a, int sm_count, mf_gemm_config *c)
{
    if (!a->config) {
        int m = a->layout == MF_LAYOUT_MASKED ? (a->expected_m ? a->expected_m : a->max_m)
                                              : a->m_capacity / a->experts;
        MF_TRY(choose(a->dtype, a->layout, m, a->n, a->experts, sm_count, a->m_capacity, c));
        return check_grid(a, c);
    }
    const mf_gemm_config *list = configs_for(a->dtype);
    for (int i = 0; i < N_CONFIGS; i++)
        if (!memcmp(&list[i], a->config, sizeof *c)) {
            *c = list[i];
            if (!config_fits(a->dtype, a->layout, c, a->n, a->m_capacity))
                return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: config bm=%d bn=%d does not divide N = %d"
                               " or m_capacity = %d", c->bm, c->bn, a->n, a->m_capacity);
            return check_grid(a, c);
        }
    return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: config bm=%d bn=%d wm=%d wn=%d stages=%d is not one "
                   "of the family's (mf_gemm_configs)", a->config->bm, a->config->bn,
                   a->config->wm, a->config->wn, a->config->stages);
}

mf_status mf_gemm_spec(mf_dtype dtype, mf_layout layout, const mf_gemm_config *c, mf_spec *spec)
{
    *spec = (mf_spec){.family = "gemm"};
    MF_TRY(mf_spec_set(spec, "dtype", dtype == MF_DTYPE_E4M3 ? "e4m3" : "bf16"));
    MF_TRY(mf_spec_set(spec, "layout", layout == MF_LAYOUT_MASKED ? "masked" : "contiguous"));
    MF_TRY(mf_spec_set_int(spec, "bm", c->bm));
    MF_TRY(mf_spec_set_int(spec, "bn", c->bn));
    MF_TRY(mf_spec_set_int(spec, "wm", c->wm));
    MF_TRY(mf_spec_set_int(spec, "wn", c->wn));
    return mf_spec_set_int(spec, "stages", c->stages);
}

static mf_status gemm_kernel(mf_context *ctx, const mf_gemm_args *a, const mf_gemm_config *c,
                             mf_kernel **k)
{
    mf_spec spec;
    MF_TRY(mf_gemm_spec(a->dtype, a->layout, c, &spec));
    return mf_op_kernel(ctx, &spec, k);
}

/* Kernel parameters: the same members, in order, as mf_gemm_params in templates/gemm.cu. */
typedef struct gemm_param {
    const void *a;
    const float *a_scale;
    const void *b;
    const float *b_scale;
    void *d;
    const int32_t *masked_m;
    const int32_t *m_indices;
    int experts, n, k, max_m, m_capacity;
} gemm_param;

mf_status mf_gemm(mf_context *ctx, const mf_gemm_args *args, mf_stream stream)
{
    MF_TRY(validate(ctx, args));
    mf_gemm_config c;
    MF_TRY(mf_gemm_pick(args, ctx->info.sm_count, &c));
    mf_kernel *k;
    MF_TRY(gemm_kernel(ctx, args, &c, &k));
    gemm_param p = {args->a, args->a_scale, args->b, args->b_scale, args->d, args->masked_m,
                    args->m_indices, args->experts, args->n, args->k, args->max_m,
                    args->m_capacity};
    void *params[] = {&p};
    unsigned threads = (unsigned)(32 * c.wm * c.wn);
    unsigned smem = smem_bytes(args->dtype, args->layout, &c, args->experts);
    unsigned n_tiles = (unsigned)(args->n / c.bn);
    if (args->layout == MF_LAYOUT_CONTIGUOUS)
        return mf_kernel_launch(ctx, k, n_tiles, (unsigned)(args->m_capacity / c.bm), 1, threads,
                                smem, stream, params);
    int64_t m = args->expected_m ? args->expected_m : args->max_m;
    int64_t tiles = (int64_t)args->experts * ((m + c.bm - 1) / c.bm) * n_tiles;
    int64_t resident = (int64_t)ctx->info.sm_count * blocks_per_sm(args->dtype, &c);
    unsigned grid = (unsigned)(tiles < resident ? (tiles < 1 ? 1 : tiles) : resident);
    return mf_kernel_launch(ctx, k, grid, 1, 1, threads, smem, stream, params);
}
