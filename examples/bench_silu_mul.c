/* bench_silu_mul: SiLU-and-mul (masked, bf16) checked against the CPU reference,
 * then timed (CUDA events, median of 50 after warmup) next to a device-to-device
 * copy measured in the same run.
 *
 *   $ ./build/examples/bench_silu_mul
 * Prints per shape: rows, bytes moved, microseconds, GB/s and the fraction of
 * the copy rate. Without a GPU it says so and exits 0. Asserts nothing about speed.
 */
#include "bench_common.h"
#include "numeric.h"
#include "silu_mul_ref.h"

#include <string.h>

typedef struct shape {
    const char *name;
    int experts, rows_per_expert, n;
} shape;

typedef struct silu_job {
    mf_context *ctx;
    mf_silu_mul_args args;
} silu_job;

static void run_silu(void *user)
{
    silu_job *j = user;
    BENCH_CHECK(mf_silu_mul(j->ctx, &j->args, NULL));
}

/* Largest ulp distance between the GPU result and the reference (masked rows). */
static int max_ulps(const bf16_t *got, const bf16_t *ref, size_t n)
{
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = bf16_ulp_distance(got[i], ref[i]);
        worst = d > worst ? d : worst;
    }
    return worst;
}

static void bench_shape(mf_context *ctx, const shape *s, double copy_gbs, mf_rng *rng)
{
    int E = s->experts, max_m = s->rows_per_expert, n = s->n;
    size_t in_elems = (size_t)E * max_m * 2 * n, out_elems = in_elems / 2;
    bf16_t *input = malloc(in_elems * 2), *ref = malloc(out_elems * 2), *got = malloc(out_elems * 2);
    int32_t *counts = malloc(sizeof(int32_t) * (size_t)E);
    mf_fill_bf16(rng, input, in_elems, -6.0f, 6.0f);
    for (int e = 0; e < E; e++)
        counts[e] = max_m; /* every row valid: bytes moved are exact */
    silu_mul_masked_ref(input, ref, counts, E, max_m, n);

    silu_job job = {ctx, {.layout = MF_LAYOUT_MASKED, .experts = E, .max_m = max_m, .n = n,
                         .expected_m = max_m}};
    void *d_in, *d_out, *d_counts;
    BENCH_CHECK(mf_malloc(ctx, &d_in, in_elems * 2));
    BENCH_CHECK(mf_malloc(ctx, &d_out, out_elems * 2));
    BENCH_CHECK(mf_malloc(ctx, &d_counts, sizeof(int32_t) * (size_t)E));
    BENCH_CHECK(mf_memcpy_htod(ctx, d_in, input, in_elems * 2));
    BENCH_CHECK(mf_memcpy_htod(ctx, d_counts, counts, sizeof(int32_t) * (size_t)E));
    BENCH_CHECK(mf_memset_d8(ctx, d_out, 0xff, out_elems * 2));
    job.args.input = d_in;
    job.args.output = d_out;
    job.args.masked_m = d_counts;

    run_silu(&job);
    BENCH_CHECK(mf_memcpy_dtoh(ctx, got, d_out, out_elems * 2));
    int ulps = max_ulps(got, ref, out_elems);
    float ms = bench_median_ms(ctx, run_silu, &job, 5, 50);
    double bytes = (double)in_elems * 2 + (double)out_elems * 2;
    double gbs = bytes / (ms * 1e-3) / 1e9;
    printf("%-22s %5d %6d %6d %10.1f MB %9.2f us %8.1f GB/s %6.1f%%  check %s (max %d ulp)\n",
           s->name, E, max_m, n, bytes / 1e6, ms * 1e3, gbs, 100.0 * gbs / copy_gbs,
           ulps <= 1 ? "ok" : "FAILED", ulps);
    mf_free(ctx, d_in);
    mf_free(ctx, d_out);
    mf_free(ctx, d_counts);
    free(input);
    free(ref);
    free(got);
    free(counts);
}

int main(void)
{
    mf_device_info info;
    mf_context *ctx = bench_context_or_exit("bench_silu_mul", &info);
    double copy_gbs = bench_print_copy_ceiling(ctx, &info);
    printf("%-22s %5s %6s %6s %13s %12s %13s %7s\n", "shape", "E", "rows", "N", "bytes", "time",
           "bandwidth", "of copy");
    static const shape shapes[] = {
        {"deepseek T=1", 8, 1, 2048},       /* decode: 8 experts hit, 1 row each */
        {"deepseek T=64", 256, 2, 2048},
        {"deepseek T=512", 256, 16, 2048},
        {"deepseek T=4096", 256, 128, 2048},
        {"deepseek T=16384", 256, 512, 2048},
        {"qwen3-30b T=16384", 128, 1024, 768},
    };
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        bench_shape(ctx, &shapes[i], copy_gbs, &rng);
    mf_context_destroy(ctx);
    return 0;
}
