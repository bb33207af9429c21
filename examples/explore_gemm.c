/* explore_gemm: sweeps dtype x tile config of the grouped GEMM on one problem
 * (a layer's GEMM 1 is E experts x M rows, N = 2 * intermediate, K = hidden),
 * each checked against fp64 (256 sampled outputs) and timed; the heuristic's
 * pick is marked with '*'. Both families: the portable mma.sync one and, on
 * compute capability 9.0, the TMA + wgmma one (warps column: "wg2" = two math
 * warpgroups, "wg2c2" = the same in clusters of two CTAs sharing A). Writes a
 * table, a CSV and an SVG heat map of TFLOP/s by block M x block N (one panel
 * per dtype and family, each cell its best config) that a browser opens.
 *
 *   $ ./build/examples/explore_gemm [bf16|e4m3|all] [masked|contiguous] E M N K [OUT_PREFIX]
 *   $ ./build/examples/explore_gemm all masked 8 512 4096 7168 tiles
 *     -> tiles.csv, tiles.svg
 * Without a GPU it says so and exits 0.
 */
#include "gemm_problem.h"
#include "svg_heatmap.h"

static int usage(void)
{
    fprintf(stderr, "usage: explore_gemm [bf16|e4m3|all] [masked|contiguous] E M N K [OUT_PREFIX]\n");
    return 2;
}

static const char *family_name(mf_gemm_family f)
{
    return f == MF_GEMM_SM90 ? "wgmma" : "mma.sync";
}

/* Every config of one dtype on the problem; rows go to stdout, the CSV and
 * the panels (one per family). */
static void explore_dtype(mf_context *ctx, const mf_device_info *info, mf_rng *rng,
                          gemm_problem *p, FILE *csv, heat_panel panels[2])
{
    const char *dtype = p->dtype == MF_DTYPE_E4M3 ? "e4m3" : "bf16";
    gemm_problem_setup(ctx, rng, p);
    mf_gemm_config configs[32], pick;
    int count = 0;
    BENCH_CHECK(mf_gemm_configs(p->dtype, configs, 32, &count));
    BENCH_CHECK(mf_gemm_choose(p->dtype, p->layout, p->m, p->n, p->k, p->experts, info->sm_count,
                               info->cc_major * 10 + info->cc_minor, &pick));
    static char titles[2][2][32];
    for (int f = 0; f < 2; f++) {
        snprintf(titles[p->dtype == MF_DTYPE_E4M3][f], 32, "%s %s", dtype,
                 family_name((mf_gemm_family)f));
        panels[f] = (heat_panel){.title = titles[p->dtype == MF_DTYPE_E4M3][f], .chosen_row = -1,
                                 .chosen_col = -1};
    }
    double flops = 2.0 * p->experts * p->m * (double)p->n * p->k;
    for (int i = 0; i < count; i++) {
        const mf_gemm_config *c = &configs[i];
        p->args.config = c;
        char warps[16];
        if (c->family == MF_GEMM_SM90)
            snprintf(warps, sizeof warps, c->wn > 1 ? "wg%dc%d" : "wg%d", c->wm, c->wn);
        else
            snprintf(warps, sizeof warps, "w%dx%d", c->wm, c->wn);
        if (mf_gemm(ctx, &p->args, NULL) != MF_OK) {
            printf("  %-5s %-8s %3dx%-3d %-5s s%d   skipped: %s\n", dtype, family_name(c->family),
                   c->bm, c->bn, warps, c->stages, mf_last_error());
            continue;
        }
        float ms = gemm_device_ms(ctx, p);
        double err = gemm_sampled_error(ctx, p, rng), tflops = flops / (ms * 1e-3) / 1e12;
        int chosen = !memcmp(c, &pick, sizeof pick);
        printf("%c %-5s %-8s %3dx%-3d %-5s s%d %11.1f us %9.1f %9.1e%s\n", chosen ? '*' : ' ',
               dtype, family_name(c->family), c->bm, c->bn, warps, c->stages, ms * 1e3, tflops,
               err, err < (p->dtype == MF_DTYPE_E4M3 ? 3e-2 : 1e-2) ? "" : "  WRONG");
        if (csv)
            fprintf(csv, "%s,%s,%d,%d,%d,%d,%d,%.2f,%.1f,%.2e,%d\n", dtype,
                    family_name(c->family), c->bm, c->bn, c->wm, c->wn, c->stages, ms * 1e3,
                    tflops, err, chosen);
        heat_add(&panels[c->family], c->bm, c->bn, tflops);
    }
    heat_mark(&panels[pick.family], pick.bm, pick.bn);
    p->args.config = NULL;
    gemm_problem_free(ctx, p);
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8)
        return usage();
    int all = strcmp(argv[1], "all") == 0;
    gemm_problem p = {
        .dtype = strcmp(argv[1], "e4m3") == 0 ? MF_DTYPE_E4M3 : MF_DTYPE_BF16,
        .layout = strcmp(argv[2], "contiguous") == 0 ? MF_LAYOUT_CONTIGUOUS : MF_LAYOUT_MASKED,
        .experts = atoi(argv[3]), .m = atoi(argv[4]), .n = atoi(argv[5]), .k = atoi(argv[6])};
    if (p.experts < 1 || p.m < 1 || p.n < 1 || p.k < 1)
        return usage();
    mf_device_info info;
    mf_context *ctx = bench_context_or_exit("explore_gemm", &info);
    char path[4096];
    FILE *csv = NULL;
    if (argc == 8) {
        snprintf(path, sizeof path, "%s.csv", argv[7]);
        if (!(csv = fopen(path, "w")))
            return usage();
        fprintf(csv, "dtype,family,bm,bn,wm,wn,stages,us,tflops,rel_error,heuristic\n");
    }
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    printf("%s E=%d M=%d N=%d K=%d on %s\n", argv[2], p.experts, p.m, p.n, p.k, info.name);
    printf("  %-5s %-8s %-18s %12s %9s %9s\n", "dtype", "family", "bm x bn, warps, st", "time",
           "TFLOP/s", "check");
    heat_panel panels[4];
    int npanels = 0;
    for (int d = all ? MF_DTYPE_BF16 : (int)p.dtype; d <= (all ? MF_DTYPE_E4M3 : (int)p.dtype); d++) {
        p.dtype = (mf_dtype)d;
        explore_dtype(ctx, &info, &rng, &p, csv, &panels[npanels]);
        npanels += 2;
    }
    if (csv) {
        fclose(csv);
        char caption[256];
        snprintf(caption, sizeof caption, "grouped GEMM %s, E=%d M=%d N=%d K=%d, %s", argv[2],
                 p.experts, p.m, p.n, p.k, info.name);
        snprintf(path, sizeof path, "%s.svg", argv[7]);
        if (heat_write_svg(path, caption, panels, npanels) != 0)
            perror(path);
    }
    mf_context_destroy(ctx);
    return 0;
}
