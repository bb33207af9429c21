/* GPU suite: SiLU-and-mul (masked, bf16) against the CPU reference on fresh
 * random inputs, poisoned outputs, guard bytes past the output. */
#include "gpu_support.h"
#include "numeric.h"
#include "silu_mul_ref.h"

#include <stdio.h>

enum { POISON = 0xA5, GUARD_BYTES = 4096 };

typedef struct silu_case {
    int experts, max_m, n;
    int expected_m; /* host hint; deliberately wrong in some cases */
    const int32_t *counts; /* NULL: random in [0, max_m] with zeros and full rows */
} silu_case;

static void random_counts(mf_rng *rng, int32_t *counts, int experts, int max_m)
{
    for (int e = 0; e < experts; e++) {
        int pick = mf_rng_int(rng, 0, 3);
        counts[e] = pick == 0 ? 0 : pick == 1 ? max_m : mf_rng_int(rng, 1, max_m);
    }
    counts[0] = experts > 1 ? max_m : counts[0]; /* expert 0 is an expert like any other */
}

/* Written rows within 1 bf16 ulp of the reference; unwritten bytes still poisoned. */
static void check_output(const uint8_t *got, const bf16_t *ref, const int32_t *counts,
                         const silu_case *c)
{
    const bf16_t *out = (const bf16_t *)got;
    for (int e = 0; e < c->experts; e++) {
        int rows = counts[e] < 0 ? 0 : counts[e] > c->max_m ? c->max_m : counts[e];
        for (int r = 0; r < c->max_m; r++) {
            size_t base = ((size_t)e * c->max_m + r) * (size_t)c->n;
            for (int j = 0; j < c->n; j++) {
                if (r >= rows) {
                    cr_assert_eq(out[base + j], (bf16_t)(POISON << 8 | POISON),
                                 "expert %d row %d (>= masked_m %d) col %d was written", e, r,
                                 rows, j);
                    continue;
                }
                int ulps = bf16_ulp_distance(out[base + j], ref[base + j]);
                cr_assert_leq(ulps, 1, "expert %d row %d col %d: got %g want %g (%d ulps)", e, r,
                              j, bf16_to_float(out[base + j]), bf16_to_float(ref[base + j]), ulps);
            }
        }
    }
    size_t out_bytes = (size_t)c->experts * c->max_m * c->n * 2;
    for (size_t i = 0; i < GUARD_BYTES; i++)
        cr_assert_eq(got[out_bytes + i], POISON, "guard byte %zu past the output changed", i);
}

static void run_case(const silu_case *c)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    uint64_t seed = mf_rng_seed_from_time();
    mf_rng_init(&rng, seed);
    cr_log_info("seed %llu: E=%d max_m=%d n=%d", (unsigned long long)seed, c->experts, c->max_m,
                c->n);
    size_t in_elems = (size_t)c->experts * c->max_m * 2 * c->n;
    size_t out_elems = in_elems / 2, out_bytes = out_elems * 2;
    bf16_t *input = malloc(in_elems * 2), *ref = malloc(out_bytes);
    int32_t *counts = malloc(sizeof(int32_t) * (size_t)c->experts);
    cr_assert(input && ref && counts);
    mf_fill_bf16(&rng, input, in_elems, -6.0f, 6.0f);
    if (c->counts)
        memcpy(counts, c->counts, sizeof(int32_t) * (size_t)c->experts);
    else
        random_counts(&rng, counts, c->experts, c->max_m);
    silu_mul_masked_ref(input, ref, counts, c->experts, c->max_m, c->n);

    void *d_in = gpu_upload(ctx, input, in_elems * 2);
    void *d_counts = gpu_upload(ctx, counts, sizeof(int32_t) * (size_t)c->experts);
    void *d_out = gpu_alloc_poisoned(ctx, out_bytes + GUARD_BYTES, POISON);
    mf_silu_mul_args args = {MF_LAYOUT_MASKED, d_in, d_out, d_counts, c->experts, c->max_m, c->n,
                             c->expected_m};
    MF_OK_OR_FAIL(mf_silu_mul(ctx, &args, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    uint8_t *got = host_download(ctx, d_out, out_bytes + GUARD_BYTES);
    check_output(got, ref, counts, c);

    free(got);
    mf_free(ctx, d_in);
    mf_free(ctx, d_counts);
    mf_free(ctx, d_out);
    free(input);
    free(ref);
    free(counts);
    mf_context_destroy(ctx);
}

Test(gpu_silu_mul, single_expert_full_rows)
{
    int32_t counts[] = {37};
    run_case(&(silu_case){1, 37, 2048, 0, counts});
}

Test(gpu_silu_mul, empty_partial_and_full_experts)
{
    int32_t counts[] = {0, 5, 64, 0, 1, 63, 64, 0};
    run_case(&(silu_case){8, 64, 768, 16, counts});
}

Test(gpu_silu_mul, all_experts_empty)
{
    int32_t counts[4] = {0, 0, 0, 0};
    run_case(&(silu_case){4, 16, 128, 0, counts});
}

Test(gpu_silu_mul, random_counts_many_experts_small_n)
{
    run_case(&(silu_case){256, 9, 8, 2, NULL});
}

Test(gpu_silu_mul, random_counts_deepseek_width)
{
    run_case(&(silu_case){32, 130, 2048, 64, NULL});
}

Test(gpu_silu_mul, wide_rows_h7168)
{
    run_case(&(silu_case){3, 20, 7168, 0, NULL});
}

Test(gpu_silu_mul, hint_far_below_actual_rows)
{
    int32_t counts[] = {1000, 999, 1};
    run_case(&(silu_case){3, 1000, 1536, 1, counts});
}

Test(gpu_silu_mul, out_of_range_counts_are_clamped)
{
    int32_t counts[] = {-5, 1 << 30, 7, -1};
    run_case(&(silu_case){4, 12, 256, 0, counts});
}

Test(gpu_silu_mul, bad_arguments_launch_nothing)
{
    mf_context *ctx = gpu_context_or_skip();
    void *d = gpu_alloc_poisoned(ctx, 1 << 16, POISON);
    mf_silu_mul_args ok = {MF_LAYOUT_MASKED, d, (char *)d + 4096, d, 1, 4, 64, 0};
    mf_silu_mul_args bad = ok;
    bad.output = (char *)d + 4098;
    cr_expect_eq(mf_silu_mul(ctx, &bad, NULL), MF_ERR_MISALIGNED);
    bad = ok;
    bad.n = 12;
    cr_expect_eq(mf_silu_mul(ctx, &bad, NULL), MF_ERR_MISALIGNED);
    bad = ok;
    bad.max_m = 0;
    cr_expect_eq(mf_silu_mul(ctx, &bad, NULL), MF_ERR_INVALID_ARGUMENT);
    uint8_t *after = host_download(ctx, d, 1 << 16);
    for (size_t i = 0; i < (1 << 16); i++)
        cr_assert_eq(after[i], POISON, "byte %zu changed by a refused call", i);
    free(after);
    mf_free(ctx, d);
    mf_context_destroy(ctx);
}
