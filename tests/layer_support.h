/* Shared by the layer's GPU tests: small presets, weights (bf16 or e4m3 with
 * 128x128 block scales, dequantized for the fp64 reference), routing, I/O
 * buffers and the check against layer_forward_ref. */
#ifndef MF_TEST_LAYER_SUPPORT_H
#define MF_TEST_LAYER_SUPPORT_H
#include "gpu_support.h"
#include "gemm_ref.h"
#include "layer_ref.h"
#include "quant_ref.h"

#include <math.h>
#include <stdio.h>

typedef struct preset {
    const char *name;
    int hidden, intermediate, experts, topk;
} preset;

/* Small versions of DESIGN.md's presets (same top-k, fewer/smaller experts). */
static const preset deepseek = {"deepseek-small", 1024, 256, 32, 8};
static const preset qwen235 = {"qwen3-235b-small", 512, 384, 16, 8};
static const preset qwen30 = {"qwen3-30b-small", 256, 128, 16, 8};
static const preset mixtral = {"mixtral-small", 512, 1024, 8, 2};

/* Weights on the host (dequantized doubles for the reference) and the device. */
typedef struct weights {
    double *w13, *w2;
    void *d_w13, *d_w2;
    float *d_s13, *d_s2;
} weights;

/* Quantizes [E, rows, cols] in 128 x 128 blocks: e4m3 bytes + scales, and the
 * dequantized values back into x (what the reference multiplies by). */
static inline void quantize_blocks(double *x, int experts, int rows, int cols, uint8_t *q, float *scales)
{
    int rb = rows / 128, cb = cols / 128;
    for (int e = 0; e < experts; e++)
        for (int br = 0; br < rb; br++)
            for (int bc = 0; bc < cb; bc++) {
                double amax = 0;
                for (int r = 0; r < 128; r++)
                    for (int c = 0; c < 128; c++)
                        amax = fmax(amax, fabs(x[((size_t)e * rows + br * 128 + r) * cols + bc * 128 + c]));
                float scale = quant_scale_ref((float)amax, 0);
                scales[((size_t)e * rb + br) * cb + bc] = scale;
                for (int r = 0; r < 128; r++)
                    for (int c = 0; c < 128; c++) {
                        size_t at = ((size_t)e * rows + br * 128 + r) * cols + bc * 128 + c;
                        q[at] = e4m3_from_float((float)x[at] / scale);
                        x[at] = (double)e4m3_to_float(q[at]) * scale;
                    }
            }
}

static inline void *make_weight(mf_context *ctx, mf_rng *rng, double *x, int experts, int rows, int cols,
                         float range, int fp8, float **d_scales)
{
    size_t n = (size_t)experts * rows * cols;
    for (size_t i = 0; i < n; i++)
        x[i] = mf_rng_uniform(rng, -range, range);
    if (!fp8) {
        bf16_t *b = malloc(n * 2);
        for (size_t i = 0; i < n; i++) {
            b[i] = float_to_bf16((float)x[i]);
            x[i] = bf16_to_float(b[i]);
        }
        void *d = gpu_upload(ctx, b, n * 2);
        free(b);
        *d_scales = NULL;
        return d;
    }
    uint8_t *q = malloc(n);
    size_t ns = (size_t)experts * (rows / 128) * (cols / 128);
    float *s = malloc(ns * sizeof(float));
    quantize_blocks(x, experts, rows, cols, q, s);
    void *d = gpu_upload(ctx, q, n);
    *d_scales = gpu_upload(ctx, s, ns * sizeof(float));
    free(q);
    free(s);
    return d;
}

static inline void make_weights(mf_context *ctx, mf_rng *rng, const preset *p, int fp8, weights *w)
{
    size_t n13 = (size_t)p->experts * 2 * p->intermediate * p->hidden;
    w->w13 = malloc(sizeof(double) * n13);
    w->w2 = malloc(sizeof(double) * n13 / 2);
    /* ranges keep activations O(1) through both GEMMs */
    w->d_w13 = make_weight(ctx, rng, w->w13, p->experts, 2 * p->intermediate, p->hidden,
                           2.0f / sqrtf((float)p->hidden), fp8, &w->d_s13);
    w->d_w2 = make_weight(ctx, rng, w->w2, p->experts, p->hidden, p->intermediate,
                          2.0f / sqrtf((float)p->intermediate), fp8, &w->d_s2);
}

static inline void free_weights(mf_context *ctx, weights *w)
{
    free(w->w13), free(w->w2);
    mf_free(ctx, w->d_w13), mf_free(ctx, w->d_w2), mf_free(ctx, w->d_s13), mf_free(ctx, w->d_s2);
}

/* Routing: distinct experts per token, ~1 in 10 slots -1, optionally skewed
 * (three quarters of the picks among the first 3 experts). */
static inline void make_routing(mf_rng *rng, const preset *p, int tokens, int skewed, int32_t *ids,
                         float *w)
{
    for (int t = 0; t < tokens; t++)
        for (int k = 0; k < p->topk; k++) {
            int e, fresh;
            do {
                int hot = skewed && mf_rng_int(rng, 0, 3) != 0;
                e = mf_rng_int(rng, 0, 9) == 0 ? -1 : hot ? mf_rng_int(rng, 0, 2) : mf_rng_int(rng, 0, p->experts - 1);
                fresh = 1;
                for (int j = 0; j < k; j++)
                    fresh &= e < 0 || ids[t * p->topk + j] != e;
            } while (!fresh);
            ids[t * p->topk + k] = e;
            w[t * p->topk + k] = mf_rng_uniform(rng, 0.0f, 1.0f);
        }
}

typedef struct run {
    const preset *p;
    int fp8;
    mf_layout layout;
    int tokens;
    int skewed;
    float scaling;
} run;

typedef struct io_buffers {
    bf16_t *hidden;
    int32_t *ids;
    float *w;
    void *d_hidden, *d_ids, *d_w, *d_out, *d_ws, *d_flags;
} io_buffers;

static inline void fill_inputs(mf_context *ctx, mf_rng *rng, const run *r, io_buffers *b)
{
    size_t nh = (size_t)r->tokens * r->p->hidden, ns = (size_t)r->tokens * r->p->topk;
    mf_fill_bf16(rng, b->hidden, nh, -1.0f, 1.0f);
    make_routing(rng, r->p, r->tokens, r->skewed, b->ids, b->w);
    MF_OK_OR_FAIL(mf_memcpy_htod(ctx, b->d_hidden, b->hidden, nh * 2));
    MF_OK_OR_FAIL(mf_memcpy_htod(ctx, b->d_ids, b->ids, ns * 4));
    MF_OK_OR_FAIL(mf_memcpy_htod(ctx, b->d_w, b->w, ns * 4));
    MF_OK_OR_FAIL(mf_memset_d8(ctx, b->d_out, 0xFF, nh * 2)); /* poison: NaN */
}

static inline void check_output(mf_context *ctx, const run *r, const weights *w, const io_buffers *b)
{
    const preset *p = r->p;
    size_t nh = (size_t)r->tokens * p->hidden;
    double *ref = malloc(sizeof(double) * nh);
    layer_ref lr = {p->hidden, p->intermediate, p->experts, p->topk, r->scaling, w->w13, w->w2};
    layer_forward_ref(&lr, b->hidden, b->ids, b->w, r->tokens, ref);
    bf16_t *got = host_download(ctx, b->d_out, nh * 2);
    double err = relative_error(got, ref, nh);
    double tolerance = r->fp8 ? 6e-2 : 2e-2;
    cr_log_info("%s %s %s T=%d%s: relative error %.2e", p->name, r->fp8 ? "e4m3" : "bf16",
                r->layout == MF_LAYOUT_MASKED ? "masked" : "contiguous", r->tokens,
                r->skewed ? " skewed" : "", err);
    cr_assert_lt(err, tolerance, "%s T=%d: relative error %g", p->name, r->tokens, err);
    int32_t flags;
    MF_OK_OR_FAIL(mf_error_flags_read(ctx, b->d_flags, &flags));
    cr_assert_eq(flags, 0, "error flags %d on valid routing", flags);
    free(ref);
    free(got);
}

static inline mf_layer *make_layer(mf_context *ctx, const run *r, const weights *w, int max_tokens)
{
    mf_layer_desc desc = {
        .hidden = r->p->hidden, .intermediate = r->p->intermediate, .experts = r->p->experts,
        .topk = r->p->topk, .dtype = r->fp8 ? MF_DTYPE_E4M3 : MF_DTYPE_BF16, .layout = r->layout,
        .max_tokens = max_tokens, .routed_scaling = r->scaling, .w13 = w->d_w13,
        .w13_scale = w->d_s13, .w2 = w->d_w2, .w2_scale = w->d_s2};
    mf_layer *layer;
    MF_OK_OR_FAIL(mf_layer_create(ctx, &desc, &layer));
    cr_assert_eq(mf_layer_layout(layer), r->layout);
    MF_OK_OR_FAIL(mf_layer_prepare(layer));
    return layer;
}

static inline void alloc_io(mf_context *ctx, const run *r, mf_layer *layer, io_buffers *b, size_t *ws)
{
    size_t nh = (size_t)r->tokens * r->p->hidden, ns = (size_t)r->tokens * r->p->topk;
    b->hidden = malloc(nh * 2), b->ids = malloc(ns * 4), b->w = malloc(ns * 4);
    MF_OK_OR_FAIL(mf_layer_workspace_size(layer, ws));
    b->d_hidden = gpu_alloc_poisoned(ctx, nh * 2, 0);
    b->d_ids = gpu_alloc_poisoned(ctx, ns * 4, 0);
    b->d_w = gpu_alloc_poisoned(ctx, ns * 4, 0);
    b->d_out = gpu_alloc_poisoned(ctx, nh * 2, 0xFF);
    b->d_ws = gpu_alloc_poisoned(ctx, *ws, 0xA5);
    b->d_flags = gpu_alloc_poisoned(ctx, 4, 0);
}

static inline void free_io(mf_context *ctx, io_buffers *b)
{
    free(b->hidden), free(b->ids), free(b->w);
    void *all[] = {b->d_hidden, b->d_ids, b->d_w, b->d_out, b->d_ws, b->d_flags};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mf_free(ctx, all[i]);
}

static inline void run_layer(const run *r)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    uint64_t seed = mf_rng_seed_from_time();
    mf_rng_init(&rng, seed);
    cr_log_info("seed %llu", (unsigned long long)seed);
    weights w;
    make_weights(ctx, &rng, r->p, r->fp8, &w);
    mf_layer *layer = make_layer(ctx, r, &w, r->tokens + 5);
    io_buffers b;
    size_t ws;
    alloc_io(ctx, r, layer, &b, &ws);
    fill_inputs(ctx, &rng, r, &b);
    mf_layer_io io = {b.d_hidden, b.d_ids, b.d_w, b.d_out, r->tokens, b.d_ws, ws, b.d_flags};
    MF_OK_OR_FAIL(mf_layer_forward(layer, &io, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    check_output(ctx, r, &w, &b);
    free_io(ctx, &b);
    mf_layer_destroy(layer);
    free_weights(ctx, &w);
    mf_context_destroy(ctx);
}


#define MASKED MF_LAYOUT_MASKED
#define CONTIG MF_LAYOUT_CONTIGUOUS

#endif
