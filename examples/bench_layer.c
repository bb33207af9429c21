/* bench_layer: the whole MoE layer per model preset and token count:
 * microseconds per forward (a CUDA graph of one forward, replayed; median of
 * 20), tokens per second, and the time split by stage (each stage between its
 * own events, so launch gaps are counted there too).
 *
 *   $ ./build/examples/bench_layer [bf16|e4m3] [PRESET] [T...]
 *   $ ./build/examples/bench_layer e4m3 deepseek-v3 1 64 512 4096 16384
 * Presets: deepseek-v3, qwen3-235b, qwen3-30b, mixtral (default: all four;
 * T default 1 64 512 4096 16384). Uniform random routing; the layout is the
 * layer's automatic choice. Weights are a random 64 MiB pattern tiled over the
 * full-size tensors (real sizes, never zeros). Asserts nothing about speed.
 */
#include "bench_common.h"
#include "numeric.h"

#include <string.h>

typedef struct preset {
    const char *name;
    int hidden, intermediate, experts, topk;
} preset;

static const preset presets[] = {
    {"deepseek-v3", 7168, 2048, 256, 8},
    {"qwen3-235b", 4096, 1536, 128, 8},
    {"qwen3-30b", 2048, 768, 128, 8},
    {"mixtral", 4096, 14336, 8, 2},
};

/* Device buffer of `bytes` filled by tiling one random host pattern. */
static void *random_device(mf_context *ctx, const uint8_t *pattern, size_t pattern_bytes,
                           size_t bytes, int fp8)
{
    void *d;
    BENCH_CHECK(mf_malloc(ctx, &d, bytes));
    (void)fp8;
    for (size_t at = 0; at < bytes; at += pattern_bytes)
        BENCH_CHECK(mf_memcpy_htod(ctx, (uint8_t *)d + at, pattern,
                                   bytes - at < pattern_bytes ? bytes - at : pattern_bytes));
    return d;
}

static uint8_t *make_pattern(mf_rng *rng, size_t bytes, int fp8)
{
    uint8_t *p = malloc(bytes);
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t r = mf_rng_next(rng);
        /* e4m3: finite, |x| < 2; bf16: +-[2^-7, 2^-6): small, so sums stay finite */
        uint64_t v = fp8 ? r & 0xbfbfbfbfbfbfbfbfull : (r & 0x807f807f807f807full) | 0x3c003c003c003c00ull;
        memcpy(p + i, &v, 8);
    }
    return p;
}

typedef struct layer_job {
    mf_graph *graph;
    mf_stream stream;
} layer_job;

static void replay(void *user)
{
    layer_job *j = user;
    BENCH_CHECK(mf_graph_launch(j->graph, j->stream));
}

/* Per-token routing: K distinct uniform experts, weights in [0, 1). */
static void upload_routing(mf_context *ctx, mf_rng *rng, const preset *p, int T, void *ids, void *w)
{
    int32_t *h_ids = malloc(sizeof(int32_t) * (size_t)T * p->topk);
    float *h_w = malloc(sizeof(float) * (size_t)T * p->topk);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < p->topk; k++) {
            int e, fresh;
            do {
                e = mf_rng_int(rng, 0, p->experts - 1);
                fresh = 1;
                for (int j = 0; j < k; j++)
                    fresh &= h_ids[t * p->topk + j] != e;
            } while (!fresh);
            h_ids[t * p->topk + k] = e;
            h_w[t * p->topk + k] = mf_rng_uniform(rng, 0.0f, 1.0f);
        }
    BENCH_CHECK(mf_memcpy_htod(ctx, ids, h_ids, sizeof(int32_t) * (size_t)T * p->topk));
    BENCH_CHECK(mf_memcpy_htod(ctx, w, h_w, sizeof(float) * (size_t)T * p->topk));
    free(h_ids);
    free(h_w);
}

static void bench_tokens(mf_context *ctx, mf_rng *rng, const preset *p, int fp8, const void *w13,
                         const float *s13, const void *w2, const float *s2, int T)
{
    mf_layer_desc desc = {.hidden = p->hidden, .intermediate = p->intermediate,
                          .experts = p->experts, .topk = p->topk,
                          .dtype = fp8 ? MF_DTYPE_E4M3 : MF_DTYPE_BF16, .layout = MF_LAYOUT_AUTO,
                          .max_tokens = T, .w13 = w13, .w13_scale = s13, .w2 = w2, .w2_scale = s2};
    mf_layer *layer;
    BENCH_CHECK(mf_layer_create(ctx, &desc, &layer));
    BENCH_CHECK(mf_layer_prepare(layer));
    size_t ws_bytes;
    BENCH_CHECK(mf_layer_workspace_size(layer, &ws_bytes));
    void *ws, *hidden, *out, *ids, *weights, *flags;
    BENCH_CHECK(mf_malloc(ctx, &ws, ws_bytes));
    BENCH_CHECK(mf_malloc(ctx, &hidden, (size_t)T * p->hidden * 2));
    BENCH_CHECK(mf_malloc(ctx, &out, (size_t)T * p->hidden * 2));
    BENCH_CHECK(mf_malloc(ctx, &ids, (size_t)T * p->topk * 4));
    BENCH_CHECK(mf_malloc(ctx, &weights, (size_t)T * p->topk * 4));
    BENCH_CHECK(mf_malloc(ctx, &flags, 4));
    BENCH_CHECK(mf_memset_d8(ctx, flags, 0, 4));
    bf16_t *h = malloc((size_t)T * p->hidden * 2);
    mf_fill_bf16(rng, h, (size_t)T * p->hidden, -1.0f, 1.0f);
    BENCH_CHECK(mf_memcpy_htod(ctx, hidden, h, (size_t)T * p->hidden * 2));
    free(h);
    upload_routing(ctx, rng, p, T, ids, weights);

    mf_layer_io io = {hidden, ids, weights, out, T, ws, ws_bytes, flags};
    layer_job job = {NULL, NULL};
    BENCH_CHECK(mf_stream_create(ctx, &job.stream));
    BENCH_CHECK(mf_layer_forward(layer, &io, job.stream)); /* warm */
    BENCH_CHECK(mf_graph_capture_begin(ctx, job.stream));
    BENCH_CHECK(mf_layer_forward(layer, &io, job.stream));
    BENCH_CHECK(mf_graph_capture_end(ctx, job.stream, &job.graph));
    float ms = bench_median_ms_on(ctx, replay, &job, job.stream, 3, 20);
    mf_layer_stage_times st;
    BENCH_CHECK(mf_layer_forward_timed(layer, &io, job.stream, &st));
    int32_t f;
    BENCH_CHECK(mf_error_flags_read(ctx, flags, &f));
    printf("%-12s %-5s %-10s %6d %10.1f us %12.0f tok/s | %8.1f %8.1f %8.1f %8.1f %8.1f us%s\n",
           p->name, fp8 ? "e4m3" : "bf16",
           mf_layer_layout(layer) == MF_LAYOUT_MASKED ? "masked" : "contiguous", T, ms * 1e3,
           T / (ms * 1e-3), st.preprocess_ms * 1e3, st.gemm1_ms * 1e3, st.silu_mul_ms * 1e3,
           st.gemm2_ms * 1e3, st.combine_ms * 1e3, f ? "  FLAGS SET" : "");
    mf_graph_destroy(job.graph);
    mf_stream_destroy(ctx, job.stream);
    void *all[] = {ws, hidden, out, ids, weights, flags};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mf_free(ctx, all[i]);
    mf_layer_destroy(layer);
}

static void bench_preset(mf_context *ctx, mf_rng *rng, const preset *p, int fp8, const int *tokens,
                         int ntokens)
{
    size_t elem = fp8 ? 1 : 2, pattern_bytes = (size_t)64 << 20;
    size_t n13 = (size_t)p->experts * 2 * p->intermediate * p->hidden;
    uint8_t *pattern = make_pattern(rng, pattern_bytes, fp8);
    void *w13 = random_device(ctx, pattern, pattern_bytes, n13 * elem, fp8);
    void *w2 = random_device(ctx, pattern, pattern_bytes, n13 / 2 * elem, fp8);
    float *s13 = NULL, *s2 = NULL;
    if (fp8) {
        size_t ns = n13 / (128 * 128);
        float *ones = malloc(ns * sizeof(float));
        for (size_t i = 0; i < ns; i++)
            ones[i] = mf_rng_uniform(rng, 0.5f, 1.0f) / 64.0f;
        BENCH_CHECK(mf_malloc(ctx, (void **)&s13, ns * 4));
        BENCH_CHECK(mf_malloc(ctx, (void **)&s2, ns / 2 * 4));
        BENCH_CHECK(mf_memcpy_htod(ctx, s13, ones, ns * 4));
        BENCH_CHECK(mf_memcpy_htod(ctx, s2, ones, ns / 2 * 4));
        free(ones);
    }
    free(pattern);
    for (int i = 0; i < ntokens; i++)
        bench_tokens(ctx, rng, p, fp8, w13, s13, w2, s2, tokens[i]);
    mf_free(ctx, w13), mf_free(ctx, w2), mf_free(ctx, s13), mf_free(ctx, s2);
}

int main(int argc, char **argv)
{
    int dtypes[2] = {0, 1}, ndtypes = 2, tokens[16] = {1, 64, 512, 4096, 16384}, ntokens = 5;
    const char *only = NULL;
    int arg = 1;
    if (arg < argc && (!strcmp(argv[arg], "bf16") || !strcmp(argv[arg], "e4m3")))
        dtypes[0] = !strcmp(argv[arg++], "e4m3"), ndtypes = 1;
    if (arg < argc && (argv[arg][0] < '0' || argv[arg][0] > '9'))
        only = argv[arg++];
    if (arg < argc)
        for (ntokens = 0; arg < argc && ntokens < 16; arg++)
            tokens[ntokens++] = atoi(argv[arg]);
    mf_device_info info;
    mf_context *ctx = bench_context_or_exit("bench_layer", &info);
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    printf("%-12s %-5s %-10s %6s %13s %18s | %8s %8s %8s %8s %8s\n", "preset", "dtype", "layout",
           "T", "forward", "throughput", "prep", "gemm1", "silu", "gemm2", "combine");
    for (int d = 0; d < ndtypes; d++)
        for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
            if (!only || !strcmp(only, presets[i].name))
                bench_preset(ctx, &rng, &presets[i], dtypes[d], tokens, ntokens);
    mf_context_destroy(ctx);
    return 0;
}
