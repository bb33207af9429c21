/* A grouped-GEMM problem on the device for the GEMM examples: random operands
 * in the layouts mf_gemm reads, and a sampled check against an fp64 dot
 * product on the host. */
#ifndef MF_GEMM_PROBLEM_H
#define MF_GEMM_PROBLEM_H

#include "bench_common.h"
#include "numeric.h"
#include "quant_ref.h"

#include <math.h>
#include <string.h>

typedef struct gemm_problem {
    mf_dtype dtype;
    mf_layout layout;
    int experts, m, n, k; /* m rows in every expert */
    int max_m, m_capacity;
    uint8_t *h_a, *h_b;   /* host copies for the check */
    float *h_sa, *h_sb;
    mf_gemm_args args;    /* device pointers filled in */
} gemm_problem;

/* Fast random operands: e4m3 bytes with the top exponent bit clear (finite,
 * |x| < 2), bf16 with the exponent of 0.5 and random sign and mantissa. */
static inline void gemm_fill(mf_rng *rng, uint8_t *dst, size_t elems, int fp8)
{
    size_t bytes = elems * (fp8 ? 1 : 2);
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t r = mf_rng_next(rng);
        uint64_t v = fp8 ? r & 0xbfbfbfbfbfbfbfbfull
                         : (r & 0x807f807f807f807full) | 0x3f003f003f003f00ull;
        memcpy(dst + i, &v, bytes - i < 8 ? bytes - i : 8);
    }
}

static inline void *gemm_upload(mf_context *ctx, const void *h, size_t bytes)
{
    void *d;
    BENCH_CHECK(mf_malloc(ctx, &d, bytes ? bytes : 16));
    if (bytes)
        BENCH_CHECK(mf_memcpy_htod(ctx, d, h, bytes));
    return d;
}

static inline void gemm_problem_setup(mf_context *ctx, mf_rng *rng, gemm_problem *p)
{
    int fp8 = p->dtype == MF_DTYPE_E4M3, contiguous = p->layout == MF_LAYOUT_CONTIGUOUS;
    size_t elem = fp8 ? 1 : 2;
    p->max_m = (p->m + 127) / 128 * 128;
    p->m_capacity = p->experts * p->max_m; /* segments of max_m rows: aligned to 128 */
    size_t rows = (size_t)p->experts * p->max_m, kb = (size_t)p->k / 128;
    p->h_a = malloc(rows * p->k * elem);
    p->h_b = malloc((size_t)p->experts * p->n * p->k * elem);
    gemm_fill(rng, p->h_a, rows * p->k, fp8);
    gemm_fill(rng, p->h_b, (size_t)p->experts * p->n * p->k, fp8);
    p->h_sa = malloc(sizeof(float) * (rows * kb + 1));
    p->h_sb = malloc(sizeof(float) * ((size_t)p->experts * (p->n / 128) * kb + 1));
    for (size_t i = 0; i < rows * kb; i++)
        p->h_sa[i] = mf_rng_uniform(rng, 0.5f, 1.0f);
    for (size_t i = 0; i < (size_t)p->experts * (p->n / 128) * kb; i++)
        p->h_sb[i] = mf_rng_uniform(rng, 0.5f, 1.0f);
    int32_t *counts = malloc(sizeof(int32_t) * (size_t)p->experts);
    int32_t *m_indices = malloc(sizeof(int32_t) * (size_t)p->m_capacity);
    for (int e = 0; e < p->experts; e++) {
        counts[e] = p->m;
        for (int r = 0; r < p->max_m; r++)
            m_indices[e * p->max_m + r] = r < p->m ? e : -1;
    }
    mf_gemm_args a = {.layout = p->layout, .dtype = p->dtype, .experts = p->experts, .n = p->n,
                      .k = p->k, .max_m = p->max_m, .expected_m = p->m,
                      .m_capacity = p->m_capacity};
    a.a = gemm_upload(ctx, p->h_a, rows * p->k * elem);
    a.b = gemm_upload(ctx, p->h_b, (size_t)p->experts * p->n * p->k * elem);
    a.a_scale = fp8 ? gemm_upload(ctx, p->h_sa, sizeof(float) * rows * kb) : NULL;
    a.b_scale = fp8 ? gemm_upload(ctx, p->h_sb, sizeof(float) * (size_t)p->experts * (p->n / 128) * kb) : NULL;
    a.masked_m = contiguous ? NULL : gemm_upload(ctx, counts, sizeof(int32_t) * (size_t)p->experts);
    a.m_indices = contiguous ? gemm_upload(ctx, m_indices, sizeof(int32_t) * (size_t)p->m_capacity) : NULL;
    BENCH_CHECK(mf_malloc(ctx, &a.d, rows * p->n * 2));
    p->args = a;
    free(counts);
    free(m_indices);
}

/* Element (row r of expert e, column j) in fp64 from the host operands. */
static inline double gemm_reference_at(const gemm_problem *p, int e, int r, int j)
{
    int fp8 = p->dtype == MF_DTYPE_E4M3, kb = p->k / 128;
    size_t row = (size_t)e * p->max_m + r, col = (size_t)e * p->n + j;
    double sum = 0;
    for (int i = 0; i < p->k; i++) {
        if (!fp8) {
            sum += (double)bf16_to_float(((bf16_t *)p->h_a)[row * p->k + i]) *
                   bf16_to_float(((bf16_t *)p->h_b)[col * p->k + i]);
            continue;
        }
        /* MN-major A scales: masked [E, K/128, max_m]; contiguous [K/128, m_capacity] */
        size_t sa = p->layout == MF_LAYOUT_MASKED
                        ? ((size_t)e * kb + i / 128) * p->max_m + r
                        : (size_t)(i / 128) * p->m_capacity + row;
        size_t sb = ((size_t)e * (p->n / 128) + j / 128) * kb + i / 128;
        sum += (double)e4m3_to_float(p->h_a[row * p->k + i]) * p->h_sa[sa] *
               e4m3_to_float(p->h_b[col * p->k + i]) * p->h_sb[sb];
    }
    return sum;
}

/* Relative error of 256 sampled outputs against fp64 dot products. */
static inline double gemm_sampled_error(mf_context *ctx, const gemm_problem *p, mf_rng *rng)
{
    double num = 0, den = 0;
    for (int s = 0; s < 256; s++) {
        int e = mf_rng_int(rng, 0, p->experts - 1), r = mf_rng_int(rng, 0, p->m - 1);
        int j = mf_rng_int(rng, 0, p->n - 1);
        bf16_t got;
        size_t at = ((size_t)e * p->max_m + r) * p->n + j;
        BENCH_CHECK(mf_memcpy_dtoh(ctx, &got, (const bf16_t *)p->args.d + at, 2));
        double want = gemm_reference_at(p, e, r, j), g = bf16_to_float(got);
        if (isnan(g))
            return INFINITY;
        num += (g - want) * (g - want);
        den += want * want;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* A bench_fn that runs the problem's GEMM once. */
typedef struct gemm_job {
    mf_context *ctx;
    gemm_problem *p;
} gemm_job;

static inline void run_job(void *user)
{
    gemm_job *j = user;
    BENCH_CHECK(mf_gemm(j->ctx, &j->p->args, NULL));
}

/* Device milliseconds of one call: batches of calls queued behind a copy so
 * that they run back to back (bench_device_us), as a layer issues them; one
 * call timed alone would also count the host's launch work (about 5-9 us on
 * the H200's host, a tenth of a 50 us GEMM). */
static inline float gemm_device_ms(mf_context *ctx, gemm_problem *p)
{
    gemm_job job = {ctx, p};
    return bench_device_us(ctx, run_job, &job, 10) * 1e-3f;
}

static inline void gemm_problem_free(mf_context *ctx, gemm_problem *p)
{
    const void *all[] = {p->args.a, p->args.b, p->args.a_scale, p->args.b_scale, p->args.d,
                         p->args.masked_m, p->args.m_indices};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mf_free(ctx, (void *)all[i]);
    free(p->h_a), free(p->h_b), free(p->h_sa), free(p->h_sb);
}

#endif
