/* GPU suite: grouped GEMM (masked and contiguous, bf16 and e4m3, every tile
 * config) against the fp64 CPU reference on fresh random data. Outputs are
 * poisoned first: rows that must not be written stay poisoned. */
#include "gemm_ref.h"
#include "gpu_support.h"

#include <math.h>
#include <stdio.h>

enum { POISON = 0xFF, GUARD = 4096, ALIGN = 128 };

typedef struct gemm_case {
    int experts, n, k;
    int contiguous;
    mf_dtype dtype;
    const int *counts; /* rows per expert; NULL: random in [0, max_rows] */
    int max_rows;
    const mf_gemm_config *config; /* NULL: heuristic */
} gemm_case;

/* Host copies of the operands, in the device layouts. */
typedef struct operands {
    int *counts, *first_row; /* first_row: A/D row of each expert's row 0 */
    int rows, max_m, m_capacity;
    int32_t *m_indices;
    void *a, *b;
    float *a_scale, *b_scale;
    size_t a_bytes, b_bytes, a_scale_count, b_scale_count;
} operands;

/* Quantizes 128 floats with one scale (amax / 448) into e4m3 bytes. */
static float quantize_group(const float *x, uint8_t *q)
{
    float amax = 0;
    for (int i = 0; i < 128; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    float scale = quant_scale_ref(amax, 0);
    for (int i = 0; i < 128; i++)
        q[i] = e4m3_from_float(x[i] / scale);
    return scale;
}

static void fill_a(mf_rng *rng, const gemm_case *c, operands *o)
{
    int fp8 = c->dtype == MF_DTYPE_E4M3, kb = c->k / 128;
    o->a_bytes = (size_t)o->rows * c->k * (fp8 ? 1 : 2);
    o->a = malloc(o->a_bytes);
    o->a_scale_count = fp8 ? (size_t)o->rows * kb : 0;
    o->a_scale = calloc(o->a_scale_count + 1, sizeof(float));
    float *row = malloc(sizeof(float) * (size_t)c->k);
    for (int r = 0; r < o->rows; r++) {
        for (int i = 0; i < c->k; i++)
            row[i] = mf_rng_uniform(rng, -1.0f, 1.0f) * (fp8 ? ldexpf(1.0f, (i / 128) % 5 - 2) : 1.0f);
        if (!fp8) {
            for (int i = 0; i < c->k; i++)
                ((bf16_t *)o->a)[(size_t)r * c->k + i] = float_to_bf16(row[i]);
            continue;
        }
        /* MN-major scales: masked [E, K/128, max_m], contiguous [K/128, m_capacity] */
        int e = c->contiguous ? 0 : r / o->max_m, rr = c->contiguous ? r : r % o->max_m;
        long stride = c->contiguous ? o->m_capacity : o->max_m;
        for (int b = 0; b < kb; b++)
            o->a_scale[((size_t)e * kb + b) * stride + rr] =
                quantize_group(row + b * 128, (uint8_t *)o->a + (size_t)r * c->k + b * 128);
    }
    free(row);
}

static void fill_b(mf_rng *rng, const gemm_case *c, operands *o)
{
    int fp8 = c->dtype == MF_DTYPE_E4M3, nb = c->n / 128, kb = c->k / 128;
    size_t elems = (size_t)c->experts * c->n * c->k;
    o->b_bytes = elems * (fp8 ? 1 : 2);
    o->b = malloc(o->b_bytes);
    o->b_scale_count = fp8 ? (size_t)c->experts * nb * kb : 0;
    o->b_scale = calloc(o->b_scale_count + 1, sizeof(float));
    float *x = malloc(sizeof(float) * elems);
    for (size_t i = 0; i < elems; i++)
        x[i] = mf_rng_uniform(rng, -1.0f, 1.0f);
    for (size_t i = 0; i < elems && !fp8; i++)
        ((bf16_t *)o->b)[i] = float_to_bf16(x[i]);
    for (int e = 0; fp8 && e < c->experts; e++)
        for (int bn = 0; bn < nb; bn++)
            for (int bk = 0; bk < kb; bk++) {
                /* one scale for the 128 x 128 block: rows of the block one by one */
                float amax = 0;
                for (int j = 0; j < 128; j++)
                    for (int i = 0; i < 128; i++)
                        amax = fmaxf(amax, fabsf(x[((size_t)e * c->n + bn * 128 + j) * c->k + bk * 128 + i]));
                float scale = quant_scale_ref(amax, 0);
                o->b_scale[((size_t)e * nb + bn) * kb + bk] = scale;
                for (int j = 0; j < 128; j++)
                    for (int i = 0; i < 128; i++) {
                        size_t at = ((size_t)e * c->n + bn * 128 + j) * c->k + bk * 128 + i;
                        ((uint8_t *)o->b)[at] = e4m3_from_float(x[at] / scale);
                    }
            }
    free(x);
}

/* Rows per expert, then the row layout: masked slabs or aligned segments with
 * -1 padding and a trailing all-padding segment. */
static void plan_rows(mf_rng *rng, const gemm_case *c, operands *o)
{
    o->counts = malloc(sizeof(int) * (size_t)c->experts);
    o->first_row = malloc(sizeof(int) * (size_t)c->experts);
    int most = 0;
    for (int e = 0; e < c->experts; e++) {
        o->counts[e] = c->counts ? c->counts[e] : mf_rng_int(rng, 0, c->max_rows);
        most = o->counts[e] > most ? o->counts[e] : most;
    }
    o->max_m = (most + 9 + 3) / 4 * 4; /* larger than any count, a multiple of 4 */
    int next = 0;
    for (int e = 0; e < c->experts; e++) {
        o->first_row[e] = c->contiguous ? next : e * o->max_m;
        next += (o->counts[e] + ALIGN - 1) / ALIGN * ALIGN;
    }
    o->m_capacity = next + ALIGN;
    o->rows = c->contiguous ? o->m_capacity : c->experts * o->max_m;
    o->m_indices = malloc(sizeof(int32_t) * (size_t)o->m_capacity);
    for (int r = 0; r < o->m_capacity; r++)
        o->m_indices[r] = -1;
    for (int e = 0; c->contiguous && e < c->experts; e++)
        for (int r = 0; r < o->counts[e]; r++)
            o->m_indices[o->first_row[e] + r] = e;
}

static void check_results(const gemm_case *c, const operands *o, const uint8_t *d_bytes)
{
    const bf16_t *d = (const bf16_t *)d_bytes;
    int fp8 = c->dtype == MF_DTYPE_E4M3, kb = c->k / 128;
    size_t elem = fp8 ? 1 : 2;
    double tolerance = fp8 ? 3e-2 : 1e-2;
    for (int e = 0; e < c->experts; e++) {
        int rows = o->counts[e], first = o->first_row[e];
        if (rows) {
            double *ref = malloc(sizeof(double) * (size_t)rows * c->n);
            const float *sa = NULL;
            long stride = 0;
            if (fp8) {
                sa = c->contiguous ? o->a_scale + first : o->a_scale + (size_t)e * kb * o->max_m;
                stride = c->contiguous ? o->m_capacity : o->max_m;
            }
            gemm_group_ref(fp8, (const uint8_t *)o->a + (size_t)first * c->k * elem, sa, stride,
                           (const uint8_t *)o->b + (size_t)e * c->n * c->k * elem,
                           fp8 ? o->b_scale + (size_t)e * (c->n / 128) * kb : NULL, rows, c->n,
                           c->k, ref);
            double err = relative_error(d + (size_t)first * c->n, ref, (size_t)rows * c->n);
            cr_assert_lt(err, tolerance, "expert %d (%d rows): relative error %g", e, rows, err);
            free(ref);
        }
        for (int r = rows; !c->contiguous && r < o->max_m; r++)
            for (int j = 0; j < c->n; j++)
                cr_assert_eq(d[(size_t)(first + r) * c->n + j], 0xFFFF,
                             "expert %d row %d (>= masked_m %d) was written", e, r, rows);
    }
    size_t d_bytes_total = (size_t)o->rows * c->n * 2;
    for (size_t i = 0; i < GUARD; i++)
        cr_assert_eq(d_bytes[d_bytes_total + i], POISON, "guard byte %zu past D changed", i);
}

static void free_operands(operands *o)
{
    free(o->counts), free(o->first_row), free(o->m_indices);
    free(o->a), free(o->b), free(o->a_scale), free(o->b_scale);
}

static void run_case(const gemm_case *c)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    uint64_t seed = mf_rng_seed_from_time();
    mf_rng_init(&rng, seed);
    cr_log_info("seed %llu: E=%d N=%d K=%d %s %s", (unsigned long long)seed, c->experts, c->n,
                c->k, c->contiguous ? "contiguous" : "masked",
                c->dtype == MF_DTYPE_E4M3 ? "e4m3" : "bf16");
    operands o = {0};
    plan_rows(&rng, c, &o);
    fill_a(&rng, c, &o);
    fill_b(&rng, c, &o);
    size_t d_bytes = (size_t)o.rows * c->n * 2;
    void *da = gpu_upload(ctx, o.a, o.a_bytes), *db = gpu_upload(ctx, o.b, o.b_bytes);
    void *dsa = gpu_upload(ctx, o.a_scale, (o.a_scale_count + 1) * 4);
    void *dsb = gpu_upload(ctx, o.b_scale, (o.b_scale_count + 1) * 4);
    void *dcounts = gpu_upload(ctx, o.counts, sizeof(int) * (size_t)c->experts);
    void *dmi = gpu_upload(ctx, o.m_indices, sizeof(int32_t) * (size_t)o.m_capacity);
    void *dd = gpu_alloc_poisoned(ctx, d_bytes + GUARD, POISON);
    int fp8 = c->dtype == MF_DTYPE_E4M3;
    mf_gemm_args args = {
        .layout = c->contiguous ? MF_LAYOUT_CONTIGUOUS : MF_LAYOUT_MASKED, .dtype = c->dtype,
        .a = da, .a_scale = fp8 ? dsa : NULL, .b = db, .b_scale = fp8 ? dsb : NULL, .d = dd,
        .experts = c->experts, .n = c->n, .k = c->k, .masked_m = dcounts, .max_m = o.max_m,
        .m_indices = dmi, .m_capacity = o.m_capacity, .config = c->config};
    MF_OK_OR_FAIL(mf_gemm(ctx, &args, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    uint8_t *d = host_download(ctx, dd, d_bytes + GUARD);
    check_results(c, &o, d);
    free(d);
    void *all[] = {da, db, dsa, dsb, dcounts, dmi, dd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mf_free(ctx, all[i]);
    free_operands(&o);
    mf_context_destroy(ctx);
}

#define BF16 MF_DTYPE_BF16
#define E4M3 MF_DTYPE_E4M3
static const int mixed[] = {0, 37, 128, 1, 129};
static const int single[] = {200};

Test(gpu_gemm, bf16_masked_empty_partial_full) { run_case(&(gemm_case){5, 768, 2048, 0, BF16, mixed, 0, NULL}); }
Test(gpu_gemm, bf16_masked_single_expert_n4096_k128) { run_case(&(gemm_case){1, 4096, 128, 0, BF16, single, 0, NULL}); }
Test(gpu_gemm, bf16_masked_256_experts_few_rows_k7168) { run_case(&(gemm_case){256, 128, 7168, 0, BF16, NULL, 3, NULL}); }
Test(gpu_gemm, bf16_contiguous_with_padding_segments) { run_case(&(gemm_case){5, 768, 2048, 1, BF16, mixed, 0, NULL}); }
Test(gpu_gemm, bf16_contiguous_n4096) { run_case(&(gemm_case){3, 4096, 128, 1, BF16, NULL, 300, NULL}); }
Test(gpu_gemm, e4m3_masked_empty_partial_full) { run_case(&(gemm_case){5, 768, 2048, 0, E4M3, mixed, 0, NULL}); }
Test(gpu_gemm, e4m3_masked_256_experts_few_rows) { run_case(&(gemm_case){256, 128, 2048, 0, E4M3, NULL, 2, NULL}); }
Test(gpu_gemm, e4m3_masked_n4096) { run_case(&(gemm_case){2, 4096, 256, 0, E4M3, NULL, 90, NULL}); }
Test(gpu_gemm, e4m3_contiguous_k7168) { run_case(&(gemm_case){3, 256, 7168, 1, E4M3, NULL, 150, NULL}); }

/* Clusters of two CTAs (sm90, wn = 2: A multicast to the pair) walking many
 * more tile pairs than clusters fit at once, with empty experts, partial
 * tiles and, for the three-warpgroup tile, 96-row halves of A. */
static const int pair_counts[] = {0, 600, 129, 0, 300, 1, 512, 77};

/* One forced config over the 8 experts of pair_counts. */
static void eight_experts(mf_dtype dtype, int n, int k, int contiguous, mf_gemm_config config)
{
    run_case(&(gemm_case){8, n, k, contiguous, dtype, pair_counts, 0, &config});
}

Test(gpu_gemm, e4m3_masked_cluster_pairs_many_tiles)
{
    eight_experts(E4M3, 2048, 512, 0, (mf_gemm_config){128, 128, 2, 2, 5, MF_GEMM_SM90});
}
Test(gpu_gemm, e4m3_masked_cluster_pairs_three_warpgroups)
{
    eight_experts(E4M3, 2048, 384, 0, (mf_gemm_config){192, 128, 3, 2, 4, MF_GEMM_SM90});
}
Test(gpu_gemm, bf16_contiguous_cluster_pairs_many_tiles)
{
    eight_experts(BF16, 3584, 256, 1, (mf_gemm_config){128, 224, 2, 2, 3, MF_GEMM_SM90});
}

/* e4m3 promotes each 128-k block chunk by chunk through one scratch
 * accumulator. 256-row tiles: two 64-row slices per math warpgroup, over
 * experts of several m-tiles (600, 512 rows) and slices left empty or partial
 * (77, 129, 300), alone and in clusters of two. bn >= 192: two column chunks
 * per slice; the 96-wide chunks of 192-wide tiles start 0, 32, 64 or 96
 * columns into a 128-column weight-scale block, and some straddle two. */
Test(gpu_gemm, e4m3_masked_two_slices_per_warpgroup)
{
    eight_experts(E4M3, 1024, 640, 0, (mf_gemm_config){256, 128, 2, 1, 3, MF_GEMM_SM90});
}
Test(gpu_gemm, e4m3_masked_two_slices_per_warpgroup_pairs)
{
    eight_experts(E4M3, 2048, 384, 0, (mf_gemm_config){256, 128, 2, 2, 3, MF_GEMM_SM90});
}
Test(gpu_gemm, e4m3_contiguous_column_chunks_straddling_scale_blocks)
{
    eight_experts(E4M3, 3456, 384, 1, (mf_gemm_config){128, 192, 2, 1, 4, MF_GEMM_SM90});
}
Test(gpu_gemm, e4m3_masked_column_chunks_pairs)
{
    eight_experts(E4M3, 2048, 512, 0, (mf_gemm_config){128, 256, 2, 2, 3, MF_GEMM_SM90});
}

/* e4m3 tiles of one 64x128 chunk per math warpgroup promote k-block kb while
 * the wgmmas of kb + 1 run (two scratch accumulators, k-blocks in pairs):
 * 1, 2, 3 and 5 k-blocks cover the pair loop and both of its tails. 64x256
 * with two math warpgroups gives each one half of the columns. */
static void overlapped_promotion(int contiguous)
{
    static const int ks[] = {128, 256, 384, 640};
    static const mf_gemm_config configs[] = {{64, 128, 1, 1, 8, MF_GEMM_SM90},
                                             {128, 128, 2, 1, 5, MF_GEMM_SM90},
                                             {64, 256, 2, 1, 4, MF_GEMM_SM90}};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
        for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
            eight_experts(E4M3, 512, ks[i], contiguous, configs[c]);
}
Test(gpu_gemm, e4m3_masked_overlapped_promotion_tails) { overlapped_promotion(0); }
Test(gpu_gemm, e4m3_contiguous_overlapped_promotion_tails) { overlapped_promotion(1); }

/* Both families (portable mma.sync and sm90 wgmma), each config on its own:
 * N a multiple of bn and of 128 (twice that when small); 65 and 150 rows leave
 * partial tiles of every bm; e4m3 bn = 192 tiles straddle two weight-scale
 * blocks. */
static void every_config(mf_dtype dtype, int contiguous)
{
    mf_gemm_config configs[32];
    int n = 0;
    MF_OK_OR_FAIL(mf_gemm_configs(dtype, configs, 32, &n));
    cr_assert_gt(n, 0);
    static const int counts[] = {65, 0, 150};
    for (int i = 0; i < n; i++) {
        if (contiguous && configs[i].bm > 128)
            continue; /* refused: a tile would straddle two 128-row segments */
        cr_log_info("config bm=%d bn=%d wm=%d wn=%d stages=%d family=%d", configs[i].bm,
                    configs[i].bn, configs[i].wm, configs[i].wn, configs[i].stages,
                    (int)configs[i].family);
        int n = configs[i].bn;
        while (n % 128)
            n += configs[i].bn;
        run_case(&(gemm_case){3, n < 512 ? 2 * n : n, 256, contiguous, dtype, counts, 0,
                              &configs[i]});
    }
}

Test(gpu_gemm, every_bf16_config_masked) { every_config(BF16, 0); }
Test(gpu_gemm, every_bf16_config_contiguous) { every_config(BF16, 1); }
Test(gpu_gemm, every_e4m3_config_masked) { every_config(E4M3, 0); }
Test(gpu_gemm, every_e4m3_config_contiguous) { every_config(E4M3, 1); }

Test(gpu_gemm, unsupported_shapes_name_the_constraint)
{
    mf_context *ctx = gpu_context_or_skip();
    void *d = gpu_alloc_poisoned(ctx, 1 << 16, 0x11);
    mf_gemm_args ok = {.layout = MF_LAYOUT_MASKED, .dtype = MF_DTYPE_BF16, .a = d, .b = d, .d = d,
                       .experts = 1, .n = 128, .k = 128, .masked_m = d, .max_m = 8};
    mf_gemm_args a = ok;
    a.n = 100;
    cr_expect_eq(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED);
    cr_expect(strstr(mf_last_error(), "N = 100"), "%s", mf_last_error());
    a = ok, a.dtype = MF_DTYPE_E4M3, a.a_scale = d, a.b_scale = d, a.k = 192;
    cr_expect_eq(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED);
    cr_expect(strstr(mf_last_error(), "K = 192"), "%s", mf_last_error());
    a = ok, a.config = &(mf_gemm_config){96, 128, 2, 2, 3, MF_GEMM_PORTABLE};
    cr_expect_eq(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED);
    a = ok, a.d = (char *)d + 8;
    cr_expect_eq(mf_gemm(ctx, &a, NULL), MF_ERR_MISALIGNED);
    expect_bytes_untouched(ctx, d, 1 << 16, 0x11);
    mf_free(ctx, d);
    mf_context_destroy(ctx);
}
