/* Grouped GEMM op: constraints, the tile-config heuristic, launch. */
#include "error.h"
#include "gemm_sm90.h"
#include "op_common.h"
#include "op_specs.h"

#include <stdio.h>
#include <string.h>

/* Tile configs of templates/gemm.cu, largest first (the tie-break order).
 * Warp tiles stay at or under 64x64 (bf16) and 32x64 (e4m3, which keeps a
 * second accumulator for the promotion) to fit the register file. */
static const mf_gemm_config bf16_portable[] = {
    {128, 128, 2, 2, 3, MF_GEMM_PORTABLE}, {128, 64, 2, 2, 4, MF_GEMM_PORTABLE},
    {64, 128, 2, 2, 4, MF_GEMM_PORTABLE},  {64, 64, 2, 2, 4, MF_GEMM_PORTABLE},
    {32, 128, 1, 4, 4, MF_GEMM_PORTABLE},  {64, 32, 2, 1, 4, MF_GEMM_PORTABLE},
};
static const mf_gemm_config e4m3_portable[] = {
    {128, 128, 4, 2, 3, MF_GEMM_PORTABLE}, {128, 64, 4, 1, 4, MF_GEMM_PORTABLE},
    {64, 128, 2, 2, 4, MF_GEMM_PORTABLE},  {64, 64, 2, 2, 4, MF_GEMM_PORTABLE},
    {32, 128, 1, 4, 4, MF_GEMM_PORTABLE},  {64, 32, 2, 1, 4, MF_GEMM_PORTABLE},
};
/* Tile configs of templates/gemm_sm90.cu (wm = math warpgroups of 64 rows, or
 * in e4m3 64x256 (wm = 2) of half the columns; wn = CTAs of a cluster along N,
 * 2: the pair multicasts A), largest first; stages fill 227 KB of shared memory
 * with the bf16 staging tile. e4m3 promotes each 128-k block through a scratch
 * accumulator, which the registers (232 per thread) must hold next to the
 * tile's. N = 7168 (DeepSeek's hidden size) is 32 bf16 tiles of 224: two
 * whole waves of 1024 rows where 128-wide tiles leave the last one 40% full.
 * (e4m3 128x112 did the same but ran at 0.90x of 128x128 on H200.)
 * e4m3 192x128 has three math warpgroups: while one promotes its 128-k block,
 * two others keep the tensor cores fed (160 registers each, no spills).
 * e4m3 256x128 gives each of two math warpgroups two 64-row slices, promoted
 * one after the other through one scratch accumulator (2 x 64 + 64
 * registers): each B stage serves twice the rows (masked only: contiguous
 * segments are 128-row aligned). e4m3 tiles of bn >= 192 do the same along
 * N: two column chunks through one scratch (bn / 2 + bn / 4 registers).
 * e4m3 64-row tiles: 64x128 keeps two scratch accumulators, so its next
 * k-block's wgmmas run through the promotion; 64x256 with wm = 2 gives each
 * math warpgroup 64x128 of it the same way (the two split the columns, not
 * the rows), one's wgmmas running while the other promotes.
 * (e4m3 128x224, two waves of N = 7168 x 1024 rows, ran at 0.90-0.97x of
 * 128x256: its chunks straddle weight-scale blocks.) */
static const mf_gemm_config bf16_sm90[] = {
    {128, 256, 2, 1, 3, MF_GEMM_SM90}, {128, 256, 2, 2, 3, MF_GEMM_SM90},
    {128, 224, 2, 1, 3, MF_GEMM_SM90}, {128, 224, 2, 2, 3, MF_GEMM_SM90},
    {128, 192, 2, 1, 4, MF_GEMM_SM90}, {128, 192, 2, 2, 4, MF_GEMM_SM90},
    {128, 128, 2, 1, 5, MF_GEMM_SM90}, {128, 128, 2, 2, 5, MF_GEMM_SM90},
    {64, 256, 1, 1, 4, MF_GEMM_SM90},  {64, 128, 1, 1, 6, MF_GEMM_SM90},
};
static const mf_gemm_config e4m3_sm90[] = {
    {256, 128, 2, 1, 3, MF_GEMM_SM90}, {256, 128, 2, 2, 3, MF_GEMM_SM90},
    {128, 256, 2, 1, 3, MF_GEMM_SM90}, {128, 256, 2, 2, 3, MF_GEMM_SM90},
    {192, 128, 3, 1, 4, MF_GEMM_SM90}, {192, 128, 3, 2, 4, MF_GEMM_SM90},
    {128, 192, 2, 1, 4, MF_GEMM_SM90}, {128, 192, 2, 2, 4, MF_GEMM_SM90},
    {128, 128, 2, 1, 5, MF_GEMM_SM90}, {128, 128, 2, 2, 5, MF_GEMM_SM90},
    {64, 256, 2, 1, 4, MF_GEMM_SM90},  {64, 256, 1, 1, 4, MF_GEMM_SM90},
    {64, 192, 1, 1, 6, MF_GEMM_SM90},  {64, 128, 1, 1, 8, MF_GEMM_SM90},
};
#define COUNT(list) ((int)(sizeof list / sizeof list[0]))

enum { SMEM_PER_SM = 228 * 1024, MAX_GRID_Y = 65535, SM90_CC = 90 };

typedef struct config_list {
    const mf_gemm_config *items;
    int count;
} config_list;

static config_list family_configs(mf_dtype dtype, mf_gemm_family family)
{
    int fp8 = dtype == MF_DTYPE_E4M3;
    if (family == MF_GEMM_SM90)
        return fp8 ? (config_list){e4m3_sm90, COUNT(e4m3_sm90)}
                   : (config_list){bf16_sm90, COUNT(bf16_sm90)};
    return fp8 ? (config_list){e4m3_portable, COUNT(e4m3_portable)}
               : (config_list){bf16_portable, COUNT(bf16_portable)};
}

mf_status mf_gemm_configs(mf_dtype dtype, mf_gemm_config *out, int max, int *count)
{
    if (!out || !count || max < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_configs: null argument");
    if (dtype != MF_DTYPE_BF16 && dtype != MF_DTYPE_E4M3)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_configs: dtype %d", (int)dtype);
    *count = 0;
    for (int f = MF_GEMM_PORTABLE; f <= MF_GEMM_SM90; f++) {
        config_list list = family_configs(dtype, (mf_gemm_family)f);
        for (int i = 0; i < list.count && *count < max; i++)
            out[(*count)++] = list.items[i];
    }
    return MF_OK;
}

static unsigned stage_bytes(mf_dtype dtype, const mf_gemm_config *c)
{
    unsigned scales = dtype == MF_DTYPE_E4M3 ? (unsigned)c->bm * 4 + 16 : 0;
    return (unsigned)(c->bm + c->bn) * MF_GEMM_ROW_BYTES + scales;
}

static unsigned smem_bytes(mf_dtype dtype, mf_layout layout, const mf_gemm_config *c, int experts)
{
    if (c->family == MF_GEMM_SM90)
        return mf_gemm_sm90_smem(dtype, layout, c, experts);
    unsigned prefix = layout == MF_LAYOUT_MASKED ? (unsigned)(experts + 1) * 4 : 0;
    return (unsigned)c->stages * stage_bytes(dtype, c) + prefix;
}

/* Resident blocks per SM: the sm90 family is persistent with one; portable
 * ones by shared memory, at most two (their warp tiles fill the registers). */
static int blocks_per_sm(mf_dtype dtype, const mf_gemm_config *c)
{
    if (c->family == MF_GEMM_SM90)
        return 1;
    int by_smem = SMEM_PER_SM / (int)(smem_bytes(dtype, MF_LAYOUT_CONTIGUOUS, c, 0) + 1024);
    return by_smem < 1 ? 1 : by_smem > 2 ? 2 : by_smem;
}

/* How close a tile runs to the family's best, from its arithmetic intensity
 * I = bm*bn/(bm+bn): portable tiles saturate at 128x128 (I = 64); wgmma tiles
 * follow I / (I + c), normalized to 128x256: bf16 c = 12, fitted to the H200
 * sweep of 8 x 512 x 4096 x 7168 (128x128 at 0.96 and 64x256 at 0.93 of
 * 128x256); e4m3 c = 50, fitted to 4 x 8192 x 4096 x 7168 (128x128 at 0.89
 * and 192x128 at 0.97 of 256x128): each B or A stage's reuse also spreads
 * the promotion's fixed cost.
 * e4m3 with one math warpgroup ran at 0.74 of two in that sweep: nothing
 * else issues wgmmas while its only warpgroup promotes. Clusters of two (A
 * multicast) ran at 0.88-1.03 (mean 0.96) of the same tile alone over six
 * H200 sweeps: L2 was not what bounded these tiles, and the pair waits for
 * its slower CTA at every stage. */
static double tile_efficiency(mf_dtype dtype, const mf_gemm_config *c)
{
    double intensity = (double)c->bm * c->bn / (c->bm + c->bn);
    if (c->family == MF_GEMM_SM90) {
        const double best = 256.0 * 128 / 384, knee = dtype == MF_DTYPE_E4M3 ? 50.0 : 12.0;
        double lone_promoter = dtype == MF_DTYPE_E4M3 && c->wm == 1 ? 0.74 : 1.0;
        double paired = c->wn > 1 ? 0.96 : 1.0;
        return intensity / (intensity + knee) / (best / (best + knee)) * lone_promoter * paired;
    }
    return intensity < 64.0 ? intensity / 64.0 : 1.0;
}

/* What the choice depends on: m is the rows per expert it scores for (below 1
 * scored as 1), m_capacity what contiguous tiles must divide. */
typedef struct gemm_problem {
    mf_dtype dtype;
    mf_layout layout;
    int m, n, experts, m_capacity;
} gemm_problem;

/* Score = last-wave utilization x useful rows per tile x tile efficiency. */
static double config_score(const gemm_problem *p, const mf_gemm_config *c, int sm_count)
{
    int m = p->m < 1 ? 1 : p->m;
    long long m_tiles = (m + c->bm - 1) / c->bm;
    long long tiles = (long long)p->experts * m_tiles * (p->n / c->bn);
    long long slots = (long long)sm_count * blocks_per_sm(p->dtype, c);
    long long waves = (tiles + slots - 1) / slots;
    double utilization = (double)tiles / (double)(waves * slots);
    double useful_rows = (double)m / (double)(m_tiles * c->bm);
    return utilization * useful_rows * tile_efficiency(p->dtype, c);
}

static int config_fits(const gemm_problem *p, const mf_gemm_config *c)
{
    if (p->n % c->bn)
        return 0;
    if (c->family == MF_GEMM_SM90) {
        /* A cluster's CTAs take neighbouring n-tiles of one m-tile. */
        if ((p->n / c->bn) % c->wn)
            return 0;
        /* TMA coordinates of B rows (expert * N + n0) are int32. */
        if ((int64_t)p->experts * p->n > INT32_MAX ||
            smem_bytes(p->dtype, p->layout, c, p->experts) > MF_SM90_SMEM_LIMIT)
            return 0;
        /* A contiguous tile must not straddle two 128-aligned segments. */
        return p->layout != MF_LAYOUT_CONTIGUOUS || (c->bm <= 128 && p->m_capacity % c->bm == 0);
    }
    if (p->dtype == MF_DTYPE_E4M3 && 128 % c->bn)
        return 0;
    return p->layout != MF_LAYOUT_CONTIGUOUS || p->m_capacity % c->bm == 0;
}

/* The best-scoring config of one family that fits; 0 when none does. */
static int choose_in(const gemm_problem *p, mf_gemm_family family, int sm_count,
                     mf_gemm_config *out)
{
    config_list list = family_configs(p->dtype, family);
    double best = -1.0;
    for (int i = 0; i < list.count; i++) {
        if (!config_fits(p, &list.items[i]))
            continue;
        double score = config_score(p, &list.items[i], sm_count);
        if (score > best + 1e-9) {
            best = score;
            *out = list.items[i];
        }
    }
    return best >= 0;
}

/* The sm90 family on compute capability 9.0 when one of its configs fits,
 * else the portable one. */
static mf_status choose(const gemm_problem *p, int sm_count, int cc, mf_gemm_config *out)
{
    if (cc == SM90_CC && choose_in(p, MF_GEMM_SM90, sm_count, out))
        return MF_OK;
    if (choose_in(p, MF_GEMM_PORTABLE, sm_count, out))
        return MF_OK;
    if (p->layout == MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: no tile config fits N = %d and m_capacity = %d "
                       "(a tile's bn must divide N and its bm m_capacity; N %% 32 == 0 and "
                       "m_capacity %% 128 == 0 always fit)", p->n, p->m_capacity);
    return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: no tile config fits N = %d (N %% 32 == 0 needed)",
                   p->n);
}

mf_status mf_gemm_choose(mf_dtype dtype, mf_layout layout, int m, int n, int k, int groups,
                         int sm_count, int cc, mf_gemm_config *out)
{
    if (!out || groups < 1 || sm_count < 1 || n < 1 || k < 1)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: out NULL or a size < 1");
    if (dtype != MF_DTYPE_BF16 && dtype != MF_DTYPE_E4M3)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: dtype %d", (int)dtype);
    /* Any other value would silently be scored as masked. */
    if (layout != MF_LAYOUT_MASKED && layout != MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: layout %d unknown", (int)layout);
    /* contiguous: m is the average rows per group; capacities are 128-aligned */
    gemm_problem p = {.dtype = dtype, .layout = layout, .m = m, .n = n,
                      .experts = groups, .m_capacity = 128};
    return choose(&p, sm_count, cc, out);
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
    if (a->expected_m < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm: expected_m = %d is negative", a->expected_m);
    if (a->layout == MF_LAYOUT_MASKED) {
        if (!a->masked_m || a->max_m < 1)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "gemm (masked): masked_m NULL or max_m = %d",
                           a->max_m);
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
    return fp8 ? mf_require_fp8(ctx, "gemm") : MF_OK;
}

/* Contiguous launches one block row per bm rows along grid y, which CUDA
 * caps at 65535: past it the launch itself would fail with a driver error. */
static mf_status check_grid(const mf_gemm_args *a, const mf_gemm_config *c)
{
    if (c->family == MF_GEMM_PORTABLE && a->layout == MF_LAYOUT_CONTIGUOUS &&
        a->m_capacity / c->bm > MAX_GRID_Y)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm (contiguous): m_capacity = %d is %d tiles of bm = "
                       "%d rows, more than the %d of a grid's y dimension", a->m_capacity,
                       a->m_capacity / c->bm, c->bm, MAX_GRID_Y);
    return MF_OK;
}

static int same_config(const mf_gemm_config *a, const mf_gemm_config *b)
{
    return a->bm == b->bm && a->bn == b->bn && a->wm == b->wm && a->wn == b->wn &&
           a->stages == b->stages && a->family == b->family;
}

static mf_status check_requested(const mf_gemm_args *a, int cc, mf_gemm_config *c)
{
    config_list list = family_configs(a->dtype, a->config->family);
    gemm_problem p = {.dtype = a->dtype, .layout = a->layout, .m = 1, .n = a->n,
                      .experts = a->experts, .m_capacity = a->m_capacity};
    for (int i = 0; i < list.count; i++) {
        if (!same_config(&list.items[i], a->config))
            continue;
        *c = list.items[i];
        if (c->family == MF_GEMM_SM90 && cc != SM90_CC)
            return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: the sm90 family (TMA + wgmma) runs on "
                           "compute capability 9.0 only, device is %d.%d", cc / 10, cc % 10);
        if (!config_fits(&p, c))
            return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: config bm=%d bn=%d does not divide N = %d"
                           " (into a multiple of wn = %d tiles) or m_capacity = %d, or needs more "
                           "shared memory with E = %d", c->bm, c->bn, a->n, c->wn, a->m_capacity,
                           a->experts);
        return check_grid(a, c);
    }
    return MF_FAIL(MF_ERR_UNSUPPORTED, "gemm: config bm=%d bn=%d wm=%d wn=%d stages=%d family=%d "
                   "is not one of the families' (mf_gemm_configs)", a->config->bm, a->config->bn,
                   a->config->wm, a->config->wn, a->config->stages, (int)a->config->family);
}

mf_status mf_gemm_pick(const mf_gemm_args *a, int sm_count, int cc, mf_gemm_config *c)
{
    if (a->config)
        return check_requested(a, cc, c);
    /* Contiguous segments are padded: with the hint, a decode batch of 64
     * rows per 128-row segment gets 64-row tiles (the padding tiles skip). */
    int m = a->expected_m                    ? a->expected_m
            : a->layout == MF_LAYOUT_MASKED ? a->max_m
                                             : a->m_capacity / a->experts;
    gemm_problem p = {.dtype = a->dtype, .layout = a->layout, .m = m, .n = a->n,
                      .experts = a->experts, .m_capacity = a->m_capacity};
    MF_TRY(choose(&p, sm_count, cc, c));
    return check_grid(a, c);
}

mf_status mf_gemm_spec(mf_dtype dtype, mf_layout layout, const mf_gemm_config *c, mf_spec *spec)
{
    int sm90 = c->family == MF_GEMM_SM90;
    *spec = (mf_spec){0};
    snprintf(spec->family, sizeof spec->family, "%s", sm90 ? "gemm_sm90" : "gemm");
    MF_TRY(mf_spec_set(spec, "dtype", dtype == MF_DTYPE_E4M3 ? "e4m3" : "bf16"));
    MF_TRY(mf_spec_set(spec, "layout", layout == MF_LAYOUT_MASKED ? "masked" : "contiguous"));
    MF_TRY(mf_spec_set_int(spec, "bm", c->bm));
    MF_TRY(mf_spec_set_int(spec, "bn", c->bn));
    MF_TRY(mf_spec_set_int(spec, "stages", c->stages));
    if (sm90) {
        MF_TRY(mf_spec_set_int(spec, "cluster", c->wn));
        return mf_spec_set_int(spec, "wg", c->wm);
    }
    MF_TRY(mf_spec_set_int(spec, "wm", c->wm));
    return mf_spec_set_int(spec, "wn", c->wn);
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
    MF_TRY(mf_gemm_pick(args, ctx->info.sm_count, mf_device_cc(&ctx->info), &c));
    mf_kernel *k;
    MF_TRY(gemm_kernel(ctx, args, &c, &k));
    if (c.family == MF_GEMM_SM90)
        return mf_gemm_sm90_launch(ctx, args, &c, k, stream);
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
