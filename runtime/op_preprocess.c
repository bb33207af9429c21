/* Preprocess op: validation, workspace layout, the one-launch plan and the
 * chunked one (rank, scan, scatter and for e4m3 scales; masked with at most
 * PRE_SUM_CHUNKS chunks of slots skips the scan). */
#include "error.h"
#include "op_common.h"
#include "op_specs.h"

#include <stdio.h>
#include <string.h>

enum {
    PRE_BLOCK = 256,
    PRE_CHUNK = MF_PREPROCESS_FUSED_SLOTS, /* slots ranked by one block */
    PRE_RANK_WIDE_EXPERTS = 256, /* up to this many, rank with PRE_CHUNK threads */
    PRE_MAX_TOPK = 32,
    PRE_MAX_EXPERTS = 1024,
    PRE_DEFAULT_ALIGN = 128,
    PRE_SUM_CHUNKS = 32, /* masked, up to this many chunks: no scan (one count per lane) */
    PRE_MAX_GRID_Y = 65535,
    PRE_SCALE_TILE = 32, /* rows per block of the scales stage: one per lane */
    /* Loads in flight per scan thread (templates/preprocess.cu MF_SCAN_BATCH)
     * with 256 and with 1024 threads. */
    PRE_SCAN_BATCH = 32,
    PRE_SCAN_BATCH_WIDE = 16
};

/* Kernel parameter structs: the same members, in the same order, as
 * mf_routing and mf_outputs in templates/preprocess.cu. */
typedef struct routing_param {
    const int32_t *topk_ids;
    int slots, topk, experts;
} routing_param;

typedef struct outputs_param {
    const void *hidden;
    int hidden_size;
    void *a;
    float *a_scale;
    int32_t *src2dst;
    int32_t *masked_m;
    int max_m;
    int32_t *m_indices;
    int m_capacity;
    int align;
    int32_t *error_flags;
} outputs_param;

/* The scales staging of the chunked e4m3 path (templates/preprocess.cu). */
typedef struct scale_staging_param {
    float *token_scale;
    int32_t *row_token;
} scale_staging_param;

/* Workspace of the chunked path, each part 256-byte aligned; e4m3 adds the
 * token scales [T, H / 128] and the token of every row of a. */
typedef struct workspace_layout {
    size_t local_rank, hist, totals, seg, token_scale, row_token, total;
} workspace_layout;

static size_t round256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

/* Rows of a: experts * max_m (masked) or m_capacity (contiguous). */
static size_t rows_of_a(const mf_preprocess_args *a)
{
    return a->layout == MF_LAYOUT_MASKED ? (size_t)a->experts * (size_t)a->max_m
                                         : (size_t)a->m_capacity;
}

/* Chunks of PRE_CHUNK slots: blocks of the rank stage, rows of its histogram. */
static int64_t chunks_of(int64_t slots)
{
    return (slots + PRE_CHUNK - 1) / PRE_CHUNK;
}

static workspace_layout plan_workspace(const mf_preprocess_args *a)
{
    workspace_layout w = {0};
    int64_t slots = (int64_t)a->tokens * a->topk;
    if (slots <= PRE_CHUNK)
        return w;
    int64_t chunks = chunks_of(slots);
    w.hist = round256((size_t)slots * 4);
    w.totals = w.hist + round256((size_t)(chunks * a->experts) * 4);
    w.seg = w.totals + round256((size_t)a->experts * 4);
    w.token_scale = w.seg + round256((size_t)(a->experts + 1) * 4);
    w.row_token = w.token_scale;
    w.total = w.row_token;
    if (a->a_dtype != MF_DTYPE_E4M3)
        return w; /* no staged scales */
    w.row_token += round256((size_t)a->tokens * (size_t)(a->hidden_size / 128) * 4);
    w.total = w.row_token + round256(rows_of_a(a) * 4);
    return w;
}

static mf_status check_sizes(int tokens, int topk, int experts)
{
    if (tokens < 0 || topk < 1 || topk > PRE_MAX_TOPK || experts < 1 || experts > PRE_MAX_EXPERTS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "preprocess: tokens = %d, topk = %d, experts = %d (need tokens >= 0, "
                       "topk in [1, %d], experts in [1, %d])", tokens, topk, experts,
                       PRE_MAX_TOPK, PRE_MAX_EXPERTS);
    if ((int64_t)tokens * topk > INT32_MAX / 2)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess: tokens * topk = %lld too large",
                       (long long)tokens * topk);
    return MF_OK;
}

mf_status mf_contiguous_capacity(int tokens, int topk, int experts, int align, int *rows)
{
    if (!rows)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_contiguous_capacity: rows is NULL");
    MF_TRY(check_sizes(tokens, topk, experts));
    align = align ? align : PRE_DEFAULT_ALIGN;
    if (align < 1 || align > 1024 || (align & (align - 1)))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess: align = %d must be a power of two "
                       "in [1, 1024]", align);
    int64_t worst = (int64_t)tokens * topk + (int64_t)experts * (align - 1);
    worst = (worst + align - 1) / align * align;
    if (worst > INT32_MAX)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess: %lld contiguous rows overflow int32",
                       (long long)worst);
    *rows = (int)worst;
    return MF_OK;
}

int mf_expected_m(int tokens, int topk, int experts)
{
    if (tokens <= 0 || topk <= 0 || experts <= 0)
        return 1;
    int64_t m = ((int64_t)tokens * topk + experts - 1) / experts;
    /* A hint: past int32 it saturates rather than wrapping to 0 or negative. */
    return m < 1 ? 1 : m > INT32_MAX ? INT32_MAX : (int)m;
}

static mf_status check_pointers(const mf_preprocess_args *a, int fp8)
{
    if (!a->topk_ids || !a->hidden || !a->a || !a->src2dst || (fp8 && !a->a_scale))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "preprocess: topk_ids, hidden, a, src2dst%s is NULL", fp8 ? " or a_scale" : "");
    if (a->layout == MF_LAYOUT_MASKED && !a->masked_m)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess (masked): masked_m is NULL");
    if (a->layout == MF_LAYOUT_CONTIGUOUS && !a->m_indices)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess (contiguous): m_indices is NULL");
    if (mf_misaligned16(a->hidden) || mf_misaligned16(a->a))
        return MF_FAIL(MF_ERR_MISALIGNED, "preprocess: hidden or a not 16-byte aligned");
    if (((uintptr_t)a->topk_ids | (uintptr_t)a->src2dst | (uintptr_t)a->a_scale |
         (uintptr_t)a->masked_m | (uintptr_t)a->m_indices | (uintptr_t)a->error_flags) & 3)
        return MF_FAIL(MF_ERR_MISALIGNED, "preprocess: an int32/fp32 array is not 4-byte aligned");
    return MF_OK;
}

static mf_status check_layout(const mf_preprocess_args *a)
{
    if (a->layout == MF_LAYOUT_MASKED) {
        if (a->max_m < 1)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess (masked): max_m = %d < 1",
                           a->max_m);
        if ((int64_t)a->experts * a->max_m > INT32_MAX)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess (masked): experts * max_m = %lld "
                           "rows overflow int32 src2dst", (long long)a->experts * a->max_m);
        return MF_OK;
    }
    if (a->layout != MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess: layout %d unknown", (int)a->layout);
    int needed;
    MF_TRY(mf_contiguous_capacity(a->tokens, a->topk, a->experts, a->align, &needed));
    if (a->m_capacity < needed)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess (contiguous): m_capacity = %d < %d "
                       "rows (worst case T*K + E*(align-1), aligned)", a->m_capacity, needed);
    return MF_OK;
}

/* The one-launch path also fills m_indices, in grid y slices of T * PRE_BLOCK
 * * 4 rows (plan_slices): a capacity far past the worst case would need more
 * slices than CUDA's 65535 and fail at launch. */
static mf_status check_fill_grid(const mf_preprocess_args *a)
{
    int64_t slots = (int64_t)a->tokens * a->topk;
    if (a->layout != MF_LAYOUT_CONTIGUOUS || a->tokens == 0 || slots > PRE_CHUNK)
        return MF_OK;
    int64_t rows_per_slice = (int64_t)a->tokens * PRE_BLOCK * 4;
    int64_t most = rows_per_slice * PRE_MAX_GRID_Y;
    if (a->m_capacity > most)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "preprocess (contiguous): m_capacity = %d rows for %d "
                       "tokens, at most %lld (65535 slices of %lld rows)", a->m_capacity,
                       a->tokens, (long long)most, (long long)rows_per_slice);
    return MF_OK;
}

/* What the sizes, dtype and layout must satisfy, pointers aside. */
static mf_status check_shape(const mf_preprocess_args *a)
{
    MF_TRY(check_sizes(a->tokens, a->topk, a->experts));
    if (a->a_dtype != MF_DTYPE_BF16 && a->a_dtype != MF_DTYPE_E4M3)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess: a_dtype %d is not bf16 or e4m3",
                       (int)a->a_dtype);
    int fp8 = a->a_dtype == MF_DTYPE_E4M3;
    if (a->ue8m0 && !fp8)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess: ue8m0 scales need a_dtype e4m3");
    if (a->hidden_size < 8 || a->hidden_size % (fp8 ? 128 : 8))
        return MF_FAIL(a->hidden_size < 8 ? MF_ERR_INVALID_ARGUMENT : MF_ERR_MISALIGNED,
                       "preprocess: hidden_size = %d must be a positive multiple of %d",
                       a->hidden_size, fp8 ? 128 : 8);
    return check_layout(a);
}

mf_status mf_preprocess_workspace_size(const mf_preprocess_args *args, size_t *bytes)
{
    if (!args || !bytes)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_preprocess_workspace_size: args or bytes is "
                       "NULL");
    MF_TRY(check_shape(args));
    *bytes = plan_workspace(args).total;
    return MF_OK;
}

static mf_status validate(const mf_context *ctx, const mf_preprocess_args *a)
{
    if (!a)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_preprocess: args is NULL");
    MF_TRY(check_shape(a));
    int fp8 = a->a_dtype == MF_DTYPE_E4M3;
    MF_TRY(check_pointers(a, fp8));
    MF_TRY(check_fill_grid(a));
    size_t needed = plan_workspace(a).total;
    if (needed && (!a->workspace || a->workspace_size < needed))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "preprocess: workspace %p of %zu bytes, need %zu "
                       "bytes 16-byte aligned (mf_preprocess_workspace_size)", a->workspace,
                       a->workspace_size, needed);
    if (needed && mf_misaligned16(a->workspace))
        return MF_FAIL(MF_ERR_MISALIGNED, "preprocess: workspace %p not 16-byte aligned",
                       a->workspace);
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_preprocess: ctx is NULL");
    /* The e4m3 conversions (cvt.*.e4m3x2) exist from sm_89 on: say so instead
     * of failing later at kernel lookup or compile. */
    if (fp8)
        MF_TRY(mf_require_fp8(ctx, "preprocess"));
    return MF_OK;
}

/* Parts per expert of the scan, each a range of chunks: PRE_CHUNK / E (with
 * PRE_CHUNK threads) only where one thread per expert would walk 3 or more
 * batches of loads and each part's range is one batch (Qwen3 at T = 16384,
 * 128 chunks over 128 experts: 4.3 us on the H200, 8.8 us with one thread
 * per expert); else 1: with fewer chunks the parts' barrier and shared-memory
 * pass cost more than they save (examples/NOTES.md). */
static int scan_parts(int experts, int64_t slots)
{
    int64_t chunks = chunks_of(slots), parts = PRE_CHUNK / experts;
    int wide = parts >= 2 && chunks > 2 * PRE_SCAN_BATCH &&
               (chunks + parts - 1) / parts <= PRE_SCAN_BATCH_WIDE;
    return wide ? (int)parts : 1;
}

int mf_preprocess_scans(mf_layout layout, int64_t slots)
{
    return layout != MF_LAYOUT_MASKED || chunks_of(slots) > PRE_SUM_CHUNKS;
}

/* Threads of a stage's blocks. rank: one per slot of its chunk (one round of
 * ranking instead of four) while the per-warp counts, (warps + 1) * E ints of
 * shared memory, stay within 33 KiB. */
static int stage_block(const char *stage, int experts, int64_t slots)
{
    if (strcmp(stage, "scan") == 0)
        return scan_parts(experts, slots) > 1 ? PRE_CHUNK : PRE_BLOCK;
    return strcmp(stage, "rank") == 0 && experts <= PRE_RANK_WIDE_EXPERTS ? PRE_CHUNK : PRE_BLOCK;
}

/* Spec of one stage; copying stages carry the dtype, all but rank the layout. */
mf_status mf_preprocess_spec(mf_layout layout, mf_dtype a_dtype, int ue8m0, int experts,
                             int64_t slots, const char *stage, mf_spec *spec)
{
    *spec = (mf_spec){.family = "preprocess"};
    MF_TRY(mf_spec_set(spec, "stage", stage));
    MF_TRY(mf_spec_set_int(spec, "block", stage_block(stage, experts, slots)));
    if (strcmp(stage, "rank") != 0)
        MF_TRY(mf_spec_set(spec, "layout", layout == MF_LAYOUT_MASKED ? "masked" : "contiguous"));
    if (strcmp(stage, "fused") == 0 || strcmp(stage, "scatter") == 0) {
        MF_TRY(mf_spec_set(spec, "dtype", a_dtype == MF_DTYPE_E4M3 ? "e4m3" : "bf16"));
        MF_TRY(mf_spec_set_int(spec, "ue8m0", ue8m0 ? 1 : 0));
    }
    if (strcmp(stage, "scatter") == 0 && !mf_preprocess_scans(layout, slots))
        MF_TRY(mf_spec_set(spec, "prefix", "sum"));
    return MF_OK;
}

static mf_status stage_kernel(mf_context *ctx, const mf_preprocess_args *a, const char *stage,
                              mf_kernel **k)
{
    mf_spec spec;
    MF_TRY(mf_preprocess_spec(a->layout, a->a_dtype, a->ue8m0, a->experts,
                              (int64_t)a->tokens * a->topk, stage, &spec));
    return mf_op_kernel(ctx, &spec, k);
}

/* Contiguous: the segment starts (E + 1 ints) and one sum per warp. */
static unsigned segment_smem(const mf_preprocess_args *a, int block)
{
    return a->layout == MF_LAYOUT_CONTIGUOUS ? (unsigned)(a->experts + 1 + block / 32) * 4 : 0;
}

/* Few tokens: cut each row into slices (whole 128-column groups) so that about
 * two blocks per SM copy, each slice at most one pass of the block's threads.
 * Contiguous: enough extra slices that each thread fills at most 4 m_indices. */
static void plan_slices(const mf_context *ctx, const mf_preprocess_args *a, int *slices,
                        int *vectors_per_slice)
{
    int nvec = a->hidden_size / 8;
    int want = (2 * ctx->info.sm_count + a->tokens - 1) / a->tokens;
    int most = (nvec + PRE_BLOCK - 1) / PRE_BLOCK;
    int n = want < most ? want : most;
    n = n < 1 ? 1 : n;
    int per = (nvec + n - 1) / n;
    *vectors_per_slice = (per + 15) / 16 * 16;
    *slices = (nvec + *vectors_per_slice - 1) / *vectors_per_slice;
    if (a->layout == MF_LAYOUT_CONTIGUOUS) {
        int64_t rows_per_slice = (int64_t)a->tokens * PRE_BLOCK * 4;
        int fill = (int)((a->m_capacity + rows_per_slice - 1) / rows_per_slice);
        *slices = fill > *slices ? fill : *slices;
    }
}

static mf_status launch_fused(mf_context *ctx, const mf_preprocess_args *a, routing_param *r,
                              outputs_param *o, mf_stream stream)
{
    mf_kernel *k;
    MF_TRY(stage_kernel(ctx, a, "fused", &k));
    unsigned smem = (unsigned)a->experts * 4 + segment_smem(a, PRE_BLOCK);
    int slices, vectors_per_slice;
    plan_slices(ctx, a, &slices, &vectors_per_slice);
    void *params[] = {r, o, &vectors_per_slice};
    return mf_kernel_launch(ctx, k, (unsigned)a->tokens, (unsigned)slices, 1, PRE_BLOCK, smem,
                            stream, params);
}

/* Warps of the scales stage sharing a tile of PRE_SCALE_TILE rows: enough
 * that each loads at most 8 of the row's H / 128 scales at once (a power of
 * two, at most the block's warps). */
static int scales_warps_per_tile(int hidden_size)
{
    int groups = hidden_size / 128, warps = 1;
    while (warps < PRE_BLOCK / 32 && warps * 8 < groups)
        warps *= 2;
    return warps;
}

/* Consecutive groups per warp of a tile: a multiple of 4 where the token
 * scale rows allow 16-byte loads (H / 128 a multiple of 4). */
static int scales_span(int hidden_size, int warps_per_tile)
{
    int groups = hidden_size / 128;
    int span = (groups + warps_per_tile - 1) / warps_per_tile;
    return groups % 4 ? span : (span + 3) / 4 * 4;
}

/* Blocks of the scales stage per expert (masked) or in all (contiguous):
 * tiles for about twice the expected rows per expert, grid-strided past
 * that (skewed routing). */
static unsigned scales_row_blocks(const mf_preprocess_args *a, int warps_per_tile)
{
    int64_t rows = a->layout == MF_LAYOUT_MASKED
                       ? 2 * (int64_t)mf_expected_m(a->tokens, a->topk, a->experts)
                       : (int64_t)a->m_capacity;
    int64_t most = a->layout == MF_LAYOUT_MASKED ? a->max_m : a->m_capacity;
    int64_t block_rows = (int64_t)PRE_SCALE_TILE * (PRE_BLOCK / 32 / warps_per_tile);
    rows = rows < most ? rows : most;
    return (unsigned)((rows + block_rows - 1) / block_rows);
}

/* e4m3: a_scale from the scatter's staged token scales (after the scatter). */
static mf_status launch_scales(mf_context *ctx, const mf_preprocess_args *a,
                               scale_staging_param *staging, outputs_param *o, mf_stream stream)
{
    mf_kernel *k;
    MF_TRY(stage_kernel(ctx, a, "scales", &k));
    int warps_per_tile = scales_warps_per_tile(a->hidden_size);
    int span = scales_span(a->hidden_size, warps_per_tile);
    void *params[] = {staging, o, &warps_per_tile, &span};
    unsigned experts = a->layout == MF_LAYOUT_MASKED ? (unsigned)a->experts : 1;
    return mf_kernel_launch(ctx, k, scales_row_blocks(a, warps_per_tile), experts, 1, PRE_BLOCK,
                            0, stream, params);
}

/* Tokens per scatter block: rows of at most 256 vectors (H <= 2048) four, of
 * at most 512 two, longer ones one, so that a block's chain of lookups (ids,
 * ranks, prefixes) is shared by about 1024 vectors of copying. At most the
 * template's MF_SCATTER_TOKENS. */
static int scatter_tokens_per_block(int hidden_size)
{
    int vectors = hidden_size / 8;
    return vectors <= PRE_BLOCK ? 4 : vectors <= 2 * PRE_BLOCK ? 2 : 1;
}

/* The scan stage, where the scatter does not sum its prefixes itself. */
static mf_status launch_scan(mf_context *ctx, const mf_preprocess_args *a, routing_param *r,
                             outputs_param *o, int32_t *hist, int32_t *totals, int32_t *seg,
                             mf_stream stream)
{
    mf_kernel *scan;
    MF_TRY(stage_kernel(ctx, a, "scan", &scan));
    int chunks = (int)chunks_of(r->slots), parts = scan_parts(a->experts, r->slots);
    int threads = stage_block("scan", a->experts, r->slots);
    void *params[] = {r, &chunks, &parts, &hist, &totals, &seg, o};
    return mf_kernel_launch(ctx, scan, 1, 1, 1, (unsigned)threads,
                            (unsigned)threads * 4 + segment_smem(a, threads), stream, params);
}

/* rank -> scan (not for masked with few chunks) -> scatter (-> scales). */
static mf_status launch_chunked(mf_context *ctx, const mf_preprocess_args *a, routing_param *r,
                                outputs_param *o, mf_stream stream)
{
    mf_kernel *rank, *scatter;
    MF_TRY(stage_kernel(ctx, a, "rank", &rank));
    MF_TRY(stage_kernel(ctx, a, "scatter", &scatter));
    workspace_layout w = plan_workspace(a);
    char *ws = a->workspace;
    int32_t *local_rank = (int32_t *)(ws + w.local_rank), *hist = (int32_t *)(ws + w.hist);
    int32_t *totals = (int32_t *)(ws + w.totals), *seg = (int32_t *)(ws + w.seg);
    scale_staging_param staging = {(float *)(ws + w.token_scale), (int32_t *)(ws + w.row_token)};

    void *rank_params[] = {r, &local_rank, &hist, &o->error_flags};
    unsigned rank_block = (unsigned)stage_block("rank", a->experts, r->slots);
    MF_TRY(mf_kernel_launch(ctx, rank, (unsigned)chunks_of(r->slots), 1, 1,
                            rank_block, (rank_block / 32 + 1) * (unsigned)a->experts * 4, stream,
                            rank_params));
    if (mf_preprocess_scans(a->layout, r->slots))
        MF_TRY(launch_scan(ctx, a, r, o, hist, totals, seg, stream));
    int per_block = scatter_tokens_per_block(a->hidden_size);
    void *scatter_params[] = {r, &local_rank, &hist, &totals, &seg, o, &staging, &per_block};
    MF_TRY(mf_kernel_launch(ctx, scatter, (unsigned)((a->tokens + per_block - 1) / per_block), 1,
                            1, PRE_BLOCK, 0, stream, scatter_params));
    if (a->a_dtype != MF_DTYPE_E4M3)
        return MF_OK;
    return launch_scales(ctx, a, &staging, o, stream);
}

mf_status mf_preprocess(mf_context *ctx, const mf_preprocess_args *args, mf_stream stream)
{
    MF_TRY(validate(ctx, args));
    if (args->tokens == 0)
        return MF_OK;
    routing_param r = {args->topk_ids, args->tokens * args->topk, args->topk, args->experts};
    outputs_param o = {args->hidden, args->hidden_size, args->a, args->a_scale, args->src2dst,
                       args->masked_m, args->max_m, args->m_indices, args->m_capacity,
                       args->align ? args->align : PRE_DEFAULT_ALIGN, args->error_flags};
    if (r.slots <= PRE_CHUNK)
        return launch_fused(ctx, args, &r, &o, stream);
    return launch_chunked(ctx, args, &r, &o, stream);
}
