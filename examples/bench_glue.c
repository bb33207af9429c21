/* bench_glue: the memory-bound MoE stages (preprocess, SiLU-and-mul, combine)
 * per model shape and token count, next to a device-to-device copy and a
 * memset measured in the same run.
 *
 *   $ ./build/examples/bench_glue [--csv FILE]
 * Prints per kernel: bytes moved (each input read once, each output written
 * once), device microseconds (CUDA events; small launches timed back to back
 * behind a copy that keeps the GPU busy, so host launch cost is not counted),
 * GB/s, the fraction of the copy rate, and the fraction of the rate the
 * kernel's own mix of reads and writes would reach (the memset's write rate,
 * and the read rate that makes a copy take as long as it did: a kernel that
 * mostly writes, as preprocess, is held to what writes can do). Routing is
 * uniform random top-k.
 * Without a GPU it says so and exits 0. Asserts nothing about speed.
 */
#include "bench_common.h"
#include "numeric.h"

#include <string.h>

typedef struct model {
    const char *name;
    int hidden, inter, experts, topk;
} model;

typedef struct glue_buffers {
    int T, K, E, H, N, max_m, m_capacity, valid_slots;
    void *ids, *hidden, *a, *a_scale, *src2dst, *masked_m, *m_indices, *flags, *workspace;
    void *gate_up, *act, *act_scale, *down, *weights, *out;
    size_t workspace_bytes;
} glue_buffers;

typedef struct job {
    mf_context *ctx;
    int kind;
    union {
        mf_preprocess_args pre;
        mf_silu_mul_args silu;
        mf_combine_args comb;
    } u;
} job;

static void run_job(void *user)
{
    job *j = user;
    if (j->kind == 0)
        BENCH_CHECK(mf_preprocess(j->ctx, &j->u.pre, NULL));
    else if (j->kind == 1)
        BENCH_CHECK(mf_silu_mul(j->ctx, &j->u.silu, NULL));
    else
        BENCH_CHECK(mf_combine(j->ctx, &j->u.comb, NULL));
}

static void *device_random(mf_context *ctx, mf_rng *rng, size_t elems)
{
    bf16_t *h = malloc(elems * 2);
    mf_fill_bf16(rng, h, elems, -2.0f, 2.0f);
    void *d;
    BENCH_CHECK(mf_malloc(ctx, &d, elems * 2));
    BENCH_CHECK(mf_memcpy_htod(ctx, d, h, elems * 2));
    free(h);
    return d;
}

static void *device_alloc(mf_context *ctx, size_t bytes)
{
    void *d;
    BENCH_CHECK(mf_malloc(ctx, &d, bytes ? bytes : 16));
    BENCH_CHECK(mf_memset_d8(ctx, d, 0, bytes ? bytes : 16));
    return d;
}

/* Uniform random routing, K distinct experts per token. */
static int32_t *random_routing(mf_rng *rng, int T, int K, int E, int *max_count)
{
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T * K);
    int *count = calloc((size_t)E, sizeof(int));
    *max_count = 1;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            int e, fresh;
            do {
                e = mf_rng_int(rng, 0, E - 1);
                fresh = 1;
                for (int j = 0; j < k; j++)
                    fresh &= ids[t * K + j] != e;
            } while (!fresh);
            ids[t * K + k] = e;
            if (++count[e] > *max_count)
                *max_count = count[e];
        }
    free(count);
    return ids;
}

static void setup(mf_context *ctx, mf_rng *rng, const model *m, int T, glue_buffers *b)
{
    memset(b, 0, sizeof *b);
    b->T = T, b->K = m->topk, b->E = m->experts, b->H = m->hidden, b->N = m->inter;
    b->valid_slots = T * b->K;
    int32_t *ids = random_routing(rng, T, b->K, b->E, &b->max_m);
    BENCH_CHECK(mf_contiguous_capacity(T, b->K, b->E, 128, &b->m_capacity));
    size_t rows = (size_t)b->E * b->max_m;
    b->ids = device_alloc(ctx, (size_t)T * b->K * 4);
    BENCH_CHECK(mf_memcpy_htod(ctx, b->ids, ids, (size_t)T * b->K * 4));
    free(ids);
    b->hidden = device_random(ctx, rng, (size_t)T * b->H);
    size_t a_rows = rows > (size_t)b->m_capacity ? rows : (size_t)b->m_capacity;
    b->a = device_alloc(ctx, a_rows * b->H * 2);
    b->a_scale = device_alloc(ctx, a_rows * (b->H / 128) * 4);
    b->src2dst = device_alloc(ctx, (size_t)T * b->K * 4);
    b->masked_m = device_alloc(ctx, (size_t)b->E * 4);
    b->m_indices = device_alloc(ctx, (size_t)b->m_capacity * 4);
    b->flags = device_alloc(ctx, 4);
    b->workspace_bytes = 0; /* the most any of bench_preprocess's variants needs */
    for (int contiguous = 0; contiguous < 2; contiguous++) {
        mf_preprocess_args sizes = {
            .layout = contiguous ? MF_LAYOUT_CONTIGUOUS : MF_LAYOUT_MASKED, .tokens = T,
            .topk = b->K, .experts = b->E, .hidden_size = b->H, .a_dtype = MF_DTYPE_E4M3,
            .max_m = b->max_m, .m_capacity = b->m_capacity};
        size_t bytes;
        BENCH_CHECK(mf_preprocess_workspace_size(&sizes, &bytes));
        b->workspace_bytes = bytes > b->workspace_bytes ? bytes : b->workspace_bytes;
    }
    b->workspace = device_alloc(ctx, b->workspace_bytes);
    b->gate_up = device_random(ctx, rng, rows * 2 * b->N);
    b->act = device_alloc(ctx, rows * b->N * 2);
    b->act_scale = device_alloc(ctx, rows * (b->N / 128) * 4);
    b->down = device_random(ctx, rng, rows * b->H);
    float *w = malloc(sizeof(float) * (size_t)T * b->K);
    for (int i = 0; i < T * b->K; i++)
        w[i] = mf_rng_uniform(rng, 0.0f, 1.0f);
    b->weights = device_alloc(ctx, sizeof(float) * (size_t)T * b->K);
    BENCH_CHECK(mf_memcpy_htod(ctx, b->weights, w, sizeof(float) * (size_t)T * b->K));
    free(w);
    b->out = device_alloc(ctx, (size_t)T * b->H * 2);
}

static void teardown(mf_context *ctx, glue_buffers *b)
{
    void *all[] = {b->ids, b->hidden, b->a, b->a_scale, b->src2dst, b->masked_m, b->m_indices,
                   b->flags, b->workspace, b->gate_up, b->act, b->act_scale, b->down, b->weights,
                   b->out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mf_free(ctx, all[i]);
}

/* Rates of the run, GB/s: copy (read + write bytes), memset (writes), and
 * the read rate implied by the two (a copy's time = reads / read + writes /
 * write). The copy rate is the one already measured and printed. */
typedef struct ceilings {
    double copy, write, read;
} ceilings;

static ceilings measure_ceilings(mf_context *ctx, double copy_gbs)
{
    ceilings c;
    c.copy = copy_gbs;
    c.write = bench_write_ceiling_gbs(ctx, (size_t)1 << 30);
    double read_s_per_gb = 2.0 / c.copy - 1.0 / c.write;
    c.read = read_s_per_gb > 0 ? 1.0 / read_s_per_gb : c.copy; /* writes slower than copies: no model */
    printf("memset: %.1f GB/s (writes); implied read rate: %.1f GB/s\n", c.write, c.read);
    return c;
}

/* Bytes each input read once and each output written once. */
typedef struct traffic {
    double read, written;
} traffic;

static void report(mf_context *ctx, job *j, const char *model_name, int T, const char *kernel,
                   traffic t, const ceilings *c, FILE *csv)
{
    float us = bench_device_us(ctx, run_job, j, T >= 4096 ? 5 : 20);
    double bytes = t.read + t.written;
    double gbs = bytes / (us * 1e-6) / 1e9;
    double mix_gbs = bytes / (t.read / c->read + t.written / c->write);
    printf("%-16s %6d  %-28s %10.2f MB %5.0f%% %9.2f us %8.1f GB/s %6.1f%% %6.1f%%\n", model_name,
           T, kernel, bytes / 1e6, 100.0 * t.written / bytes, us, gbs, 100.0 * gbs / c->copy,
           100.0 * gbs / mix_gbs);
    if (csv)
        fprintf(csv, "%s,%d,%s,%.0f,%.0f,%.3f,%.1f,%.4f,%.4f\n", model_name, T, kernel, t.read,
                t.written, us, gbs, gbs / c->copy, gbs / mix_gbs);
}

static void bench_preprocess(mf_context *ctx, glue_buffers *b, const model *m, const ceilings *c,
                             FILE *csv)
{
    static const struct { const char *name; mf_layout layout; mf_dtype dtype; } variants[] = {
        {"preprocess masked bf16", MF_LAYOUT_MASKED, MF_DTYPE_BF16},
        {"preprocess masked e4m3", MF_LAYOUT_MASKED, MF_DTYPE_E4M3},
        {"preprocess contiguous e4m3", MF_LAYOUT_CONTIGUOUS, MF_DTYPE_E4M3},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        job j = {ctx, 0, {.pre = {
            .layout = variants[v].layout, .topk_ids = b->ids, .hidden = b->hidden, .tokens = b->T,
            .topk = b->K, .experts = b->E, .hidden_size = b->H, .a_dtype = variants[v].dtype,
            .a = b->a, .a_scale = b->a_scale, .src2dst = b->src2dst, .masked_m = b->masked_m,
            .max_m = b->max_m, .m_indices = b->m_indices, .m_capacity = b->m_capacity,
            .error_flags = b->flags, .workspace = b->workspace, .workspace_size = b->workspace_bytes}}};
        int fp8 = variants[v].dtype == MF_DTYPE_E4M3;
        double row_bytes = fp8 ? b->H + b->H / 128 * 4.0 : b->H * 2.0;
        traffic t = {b->T * (b->K * 4.0 + b->H * 2.0), b->T * b->K * 4.0 + b->valid_slots * row_bytes};
        if (variants[v].layout == MF_LAYOUT_CONTIGUOUS)
            t.written += b->m_capacity * 4.0;
        report(ctx, &j, m->name, b->T, variants[v].name, t, c, csv);
    }
}

static void bench_silu(mf_context *ctx, glue_buffers *b, const model *m, const ceilings *c, FILE *csv)
{
    /* masked_m from the last preprocess: the real per-expert counts */
    for (int fp8 = 0; fp8 < 2; fp8++) {
        job j = {ctx, 1, {.silu = {
            .layout = MF_LAYOUT_MASKED, .input = b->gate_up, .output = b->act,
            .masked_m = b->masked_m, .experts = b->E, .max_m = b->max_m, .n = b->N,
            .expected_m = mf_expected_m(b->T, b->K, b->E),
            .out_dtype = fp8 ? MF_DTYPE_E4M3 : MF_DTYPE_BF16,
            .out_scale = fp8 ? b->act_scale : NULL}}};
        double out_row = fp8 ? b->N + b->N / 128 * 4.0 : b->N * 2.0;
        traffic t = {b->valid_slots * b->N * 4.0 + b->E * 4.0, b->valid_slots * out_row};
        report(ctx, &j, m->name, b->T, fp8 ? "silu_mul masked e4m3" : "silu_mul masked bf16", t,
               c, csv);
    }
}

static void bench_combine(mf_context *ctx, glue_buffers *b, const model *m, const ceilings *c,
                          FILE *csv)
{
    job j = {ctx, 2, {.comb = {
        .d = b->down, .d_rows = (int64_t)b->E * b->max_m, .src2dst = b->src2dst,
        .topk_weights = b->weights, .out = b->out, .tokens = b->T, .topk = b->K,
        .hidden_size = b->H, .error_flags = b->flags}}};
    traffic t = {b->valid_slots * (b->H * 2.0 + 8.0), b->T * b->H * 2.0};
    report(ctx, &j, m->name, b->T, "combine", t, c, csv);
}

int main(int argc, char **argv)
{
    FILE *csv = bench_csv_or_exit(argc, argv);
    mf_device_info info;
    mf_context *ctx = bench_context_or_exit("bench_glue", &info);
    ceilings c = measure_ceilings(ctx, bench_print_copy_ceiling(ctx, &info));
    printf("%-16s %6s  %-28s %13s %6s %12s %13s %7s %7s\n", "model", "T", "kernel", "bytes",
           "writes", "time", "bandwidth", "of copy", "of mix");
    if (csv)
        fprintf(csv, "model,tokens,kernel,bytes_read,bytes_written,us,gbs,fraction_of_copy,"
                     "fraction_of_mix\n");
    static const model deepseek = {"DeepSeek-V3", 7168, 2048, 256, 8};
    static const model qwen = {"Qwen3-30B-A3B", 2048, 768, 128, 8};
    struct { const model *m; int T; } runs[] = {{&deepseek, 1}, {&deepseek, 64}, {&deepseek, 512},
                                                 {&deepseek, 4096}, {&deepseek, 16384},
                                                 {&qwen, 16384}};
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        glue_buffers b;
        setup(ctx, &rng, runs[i].m, runs[i].T, &b);
        bench_preprocess(ctx, &b, runs[i].m, &c, csv);
        bench_silu(ctx, &b, runs[i].m, &c, csv);
        bench_combine(ctx, &b, runs[i].m, &c, csv);
        teardown(ctx, &b);
    }
    if (csv)
        fclose(csv);
    mf_context_destroy(ctx);
    return 0;
}
