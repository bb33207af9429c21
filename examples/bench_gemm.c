/* bench_gemm: grouped GEMM TFLOP/s for the shapes, masked and
 * contiguous, bf16 and e4m3, with the heuristic's tile config.
 *
 *   $ ./build/examples/bench_gemm [--csv FILE]
 * Each figure is the device time of one call, calls run back to back in
 * batches of 10 (gemm_device_ms: the median of 21 batches), every expert
 * holding m rows; FLOPs = 2 * E * m * N * K. A sampled fp64 check of each
 * result is printed next to it, and the weights' read rate (E * N * K
 * elements over the time) as a fraction of the device-to-device copy rate
 * measured first: the roofline of the decode rows (E x 64), which are bound
 * by reading the weights. The dense bf16 ceiling and torch's grouped GEMM
 * come from examples/peer_gemm.py in the same device run, timed the same way.
 * Without a GPU it says so and exits 0. Asserts nothing about speed.
 */
#include "gemm_problem.h"

typedef struct shape {
    int experts, m, n, k;
} shape;

int main(int argc, char **argv)
{
    FILE *csv = bench_csv_or_exit(argc, argv);
    mf_device_info info;
    mf_context *ctx = bench_context_or_exit("bench_gemm", &info);
    double copy_gbs = bench_print_copy_ceiling(ctx, &info);
    static const shape shapes[] = {
        {1, 1024, 4096, 7168}, {1, 1024, 7168, 2048}, {2, 512, 4096, 7168}, {2, 512, 7168, 2048},
        {4, 256, 4096, 7168},  {4, 256, 7168, 2048},  {32, 64, 4096, 7168}, {32, 64, 7168, 2048},
        {4, 8192, 4096, 7168}, {4, 8192, 7168, 2048}, {8, 4096, 4096, 7168}, {8, 4096, 7168, 2048},
        {128, 256, 1536, 2048}, {128, 256, 2048, 768},
    };
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    printf("%-22s %-10s %-5s %-25s %10s %9s %8s %9s\n", "E x m, N, K", "layout", "dtype",
           "config", "time", "TFLOP/s", "weights", "check");
    if (csv)
        fprintf(csv, "experts,m,n,k,layout,dtype,family,bm,bn,wm,wn,stages,us,tflops,"
                     "weights_of_copy,rel_error\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int dtype = MF_DTYPE_BF16; dtype <= MF_DTYPE_E4M3; dtype++)
            for (int layout = MF_LAYOUT_MASKED; layout <= MF_LAYOUT_CONTIGUOUS; layout++) {
                const shape *sh = &shapes[i];
                gemm_problem p = {.dtype = (mf_dtype)dtype, .layout = (mf_layout)layout,
                                  .experts = sh->experts, .m = sh->m, .n = sh->n, .k = sh->k};
                gemm_problem_setup(ctx, &rng, &p);
                float ms = gemm_device_ms(ctx, &p);
                double err = gemm_sampled_error(ctx, &p, &rng);
                double tflops = 2.0 * sh->experts * sh->m * (double)sh->n * sh->k / (ms * 1e-3) / 1e12;
                double weight_bytes = (double)sh->experts * sh->n * sh->k * (dtype == MF_DTYPE_E4M3 ? 1 : 2);
                double weights_of_copy = weight_bytes / (ms * 1e-3) / 1e9 / copy_gbs;
                mf_gemm_config c;
                /* The config mf_gemm picked: the heuristic at expected_m = m. */
                BENCH_CHECK(mf_gemm_choose(p.dtype, p.layout, sh->m, sh->n, sh->k, sh->experts,
                                           info.sm_count, info.cc_major * 10 + info.cc_minor, &c));
                char label[32], cfg[40];
                snprintf(label, sizeof label, "%dx%d, %d, %d", sh->experts, sh->m, sh->n, sh->k);
                if (c.family == MF_GEMM_SM90)
                    snprintf(cfg, sizeof cfg, "wgmma %dx%d wg%d c%d s%d", c.bm, c.bn, c.wm, c.wn,
                             c.stages);
                else
                    snprintf(cfg, sizeof cfg, "mma %dx%d w%dx%d s%d", c.bm, c.bn, c.wm, c.wn,
                             c.stages);
                printf("%-22s %-10s %-5s %-25s %8.1f us %9.1f %7.1f%% %9.1e\n", label,
                       layout == MF_LAYOUT_MASKED ? "masked" : "contiguous",
                       dtype == MF_DTYPE_BF16 ? "bf16" : "e4m3", cfg, ms * 1e3, tflops,
                       100.0 * weights_of_copy, err);
                if (csv)
                    fprintf(csv, "%d,%d,%d,%d,%s,%s,%s,%d,%d,%d,%d,%d,%.2f,%.1f,%.3f,%.2e\n",
                            sh->experts, sh->m, sh->n, sh->k,
                            layout == MF_LAYOUT_MASKED ? "masked" : "contiguous",
                            dtype == MF_DTYPE_BF16 ? "bf16" : "e4m3",
                            c.family == MF_GEMM_SM90 ? "wgmma" : "mma.sync", c.bm, c.bn, c.wm,
                            c.wn, c.stages, ms * 1e3, tflops, weights_of_copy, err);
                gemm_problem_free(ctx, &p);
            }
    if (csv)
        fclose(csv);
    mf_context_destroy(ctx);
    return 0;
}
