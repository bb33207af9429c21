/* Launching the Hopper grouped GEMM: TMA tensor maps for A, B, D (and the e4m3
 * activation scales) encoded on the host and passed by value, one persistent
 * CTA per SM (config wn = 2: clusters of two CTAs that share A tiles, as many
 * as fit at once). */
#include "gemm_sm90.h"

#include "context.h"
#include "error.h"
#include "kernels.h"

#include <string.h>

enum { ALIGN_SLACK = 1024 };

static int is_fp8(mf_dtype dtype)
{
    return dtype == MF_DTYPE_E4M3;
}

unsigned mf_gemm_sm90_smem(mf_dtype dtype, mf_layout layout, const mf_gemm_config *c, int experts)
{
    unsigned stage = (unsigned)(c->bm + c->bn) * MF_GEMM_ROW_BYTES +
                     (is_fp8(dtype) ? (unsigned)c->bm * 4 : 0);
    unsigned staging = (unsigned)(c->bm * c->bn) * 2;
    unsigned barriers = (unsigned)c->stages * 2 * 8;
    unsigned prefix = layout == MF_LAYOUT_MASKED ? (unsigned)(experts + 1) * 4 : 0;
    return ALIGN_SLACK + (unsigned)c->stages * stage + staging + barriers + prefix;
}

/* Kernel parameters: the same members, in order, as mf_sm90_params in
 * templates/gemm_sm90.cu. */
typedef struct sm90_param {
    CUtensorMap tm_a, tm_b, tm_d, tm_sa;
    void *d;
    const float *b_scale;
    const int32_t *masked_m;
    const int32_t *m_indices;
    int experts, n, k, max_m, m_capacity;
} sm90_param;

/* A row-major 2D tensor [outer, inner] read or written in boxes of
 * box_inner x box_outer elements. */
typedef struct tensor_2d {
    const void *base;
    CUtensorMapDataType type;
    size_t element;
    uint64_t inner, outer;
    uint32_t box_inner, box_outer;
    CUtensorMapSwizzle swizzle;
} tensor_2d;

static mf_status encode(const mf_context *ctx, const char *what, const tensor_2d *t, CUtensorMap *map)
{
    cuuint64_t dims[2] = {t->inner, t->outer};
    cuuint64_t strides[1] = {t->inner * t->element};
    cuuint32_t box[2] = {t->box_inner, t->box_outer};
    cuuint32_t element_strides[2] = {1, 1};
    CUresult r = ctx->drv->cuTensorMapEncodeTiled(
        map, t->type, 2, (void *)t->base, dims, strides, box, element_strides,
        CU_TENSOR_MAP_INTERLEAVE_NONE, t->swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return MF_FAIL(MF_ERR_CUDA, "gemm (sm90): cuTensorMapEncodeTiled of %s [%llu, %llu] box "
                       "{%u, %u} failed (%d)", what, (unsigned long long)t->outer,
                       (unsigned long long)t->inner, t->box_outer, t->box_inner, (int)r);
    return MF_OK;
}

static mf_status encode_maps(const mf_context *ctx, const mf_gemm_args *a, const mf_gemm_config *c,
                             sm90_param *p)
{
    int fp8 = is_fp8(a->dtype), masked = a->layout == MF_LAYOUT_MASKED;
    CUtensorMapDataType ab = fp8 ? CU_TENSOR_MAP_DATA_TYPE_UINT8 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    size_t element = fp8 ? 1 : 2;
    uint32_t bk = (uint32_t)(MF_GEMM_ROW_BYTES / element);
    uint64_t rows = masked ? (uint64_t)a->experts * (uint64_t)a->max_m : (uint64_t)a->m_capacity;
    const CUtensorMapSwizzle sw = CU_TENSOR_MAP_SWIZZLE_128B;
    /* Each CTA of a cluster loads its 1/wn of the A tile and multicasts it. */
    tensor_2d ta = {a->a, ab, element, (uint64_t)a->k, rows, bk, (uint32_t)(c->bm / c->wn), sw};
    tensor_2d tb = {a->b, ab, element, (uint64_t)a->k, (uint64_t)a->experts * (uint64_t)a->n, bk,
                    (uint32_t)c->bn, sw};
    /* Each math warpgroup stores its own rows: bm / wm, or all 64 of a tile
     * whose two warpgroups split the columns. */
    uint32_t wg_rows = (uint32_t)(c->bm < 64 * c->wm ? c->bm : c->bm / c->wm);
    tensor_2d td = {a->d, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (uint64_t)a->n, rows, 32, wg_rows,
                    CU_TENSOR_MAP_SWIZZLE_64B};
    memset(p, 0, sizeof *p);
    MF_TRY(encode(ctx, "A", &ta, &p->tm_a));
    MF_TRY(encode(ctx, "B", &tb, &p->tm_b));
    MF_TRY(encode(ctx, "D", &td, &p->tm_d));
    if (!fp8)
        return MF_OK;
    /* MN-major scales: masked [E, K/128, max_m], contiguous [K/128, m_capacity]. */
    uint64_t k_blocks = (uint64_t)(a->k / 128);
    tensor_2d ts = {a->a_scale, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4,
                    masked ? (uint64_t)a->max_m : (uint64_t)a->m_capacity,
                    masked ? (uint64_t)a->experts * k_blocks : k_blocks, (uint32_t)c->bm, 1,
                    CU_TENSOR_MAP_SWIZZLE_NONE};
    return encode(ctx, "a_scale", &ts, &p->tm_sa);
}

/* Tiles the grid could ever see: masked counts every expert at max_m rows. */
static int64_t tile_bound(const mf_gemm_args *a, const mf_gemm_config *c)
{
    int64_t n_tiles = a->n / c->bn;
    if (a->layout == MF_LAYOUT_CONTIGUOUS)
        return (int64_t)(a->m_capacity / c->bm) * n_tiles;
    return (int64_t)a->experts * ((a->max_m + c->bm - 1) / c->bm) * n_tiles;
}

mf_status mf_gemm_sm90_launch(mf_context *ctx, const mf_gemm_args *a, const mf_gemm_config *c,
                              mf_kernel *k, mf_stream stream)
{
    sm90_param p;
    /* The driver encodes tensor maps only with a context current. */
    MF_TRY(mf_context_push(ctx));
    mf_status s = encode_maps(ctx, a, c, &p);
    mf_context_pop(ctx);
    MF_TRY(s);
    p.d = a->d, p.b_scale = a->b_scale, p.masked_m = a->masked_m, p.m_indices = a->m_indices;
    p.experts = a->experts, p.n = a->n, p.k = a->k, p.max_m = a->max_m;
    p.m_capacity = a->m_capacity;
    void *params[] = {&p};
    unsigned threads = (unsigned)(128 * (c->wm + 1));
    unsigned smem = mf_gemm_sm90_smem(a->dtype, a->layout, c, a->experts);
    int slots = ctx->info.sm_count; /* clusters resident at once */
    if (c->wn > 1)
        MF_TRY(mf_kernel_max_clusters(ctx, k, (unsigned)c->wn, threads, smem, &slots));
    int64_t units = tile_bound(a, c) / c->wn; /* a cluster's tiles are one unit */
    unsigned grid = (unsigned)((units < slots ? units : slots) * c->wn);
    return mf_kernel_launch(ctx, k, grid, 1, 1, threads, smem, stream, params);
}
