/* The MoE layer: workspace layout, preparation and the five-stage forward. */
#include "context.h"
#include "error.h"
#include "op_common.h"
#include "plan.h"

#include <stdlib.h>
#include <string.h>

/* Byte offsets of the intermediates inside the caller's workspace. */
typedef struct layer_workspace {
    size_t a, a_scale, gate_up, act, act_scale, down, src2dst, meta, preprocess, total;
} layer_workspace;

struct mf_layer {
    mf_context *ctx;
    mf_layer_desc desc;
    mf_layer_shape shape; /* layout resolved */
    int max_m;            /* masked: rows per expert (max_tokens, a multiple of 4) */
    layer_workspace ws;
};

static size_t round256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

static mf_layout resolve_layout(const mf_layer_desc *d);

/* The GEMMs see N = 2 * intermediate and rows of hidden (or intermediate) bf16
 * elements, counted in int32: both must stay within int32 doubled. */
static mf_status check_sizes(const mf_layer_desc *d)
{
    if (d->hidden > INT32_MAX / 2 || d->intermediate > INT32_MAX / 2)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer: hidden = %d and intermediate = %d must be "
                       "at most %d (2 * N and bf16 row bytes are int32)", d->hidden,
                       d->intermediate, INT32_MAX / 2);
    if ((int64_t)d->max_tokens * d->topk > INT32_MAX / 2)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer: max_tokens * topk too large");
    /* masked rows are E * max_m (max_tokens rounded up to 4), indexed by int32 src2dst */
    int64_t masked_rows = (int64_t)d->experts * (((int64_t)d->max_tokens + 3) / 4 * 4);
    if (resolve_layout(d) == MF_LAYOUT_MASKED && masked_rows > INT32_MAX)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer (masked): experts * max_m = %lld rows "
                       "overflow int32 (use the contiguous layout)", (long long)masked_rows);
    return MF_OK;
}

static mf_status check_desc(const mf_layer_desc *d)
{
    if (d->hidden < 128 || d->hidden % 128 || d->intermediate < 128 || d->intermediate % 128)
        return MF_FAIL(MF_ERR_UNSUPPORTED, "layer: hidden = %d and intermediate = %d must be "
                       "positive multiples of 128", d->hidden, d->intermediate);
    if (d->experts < 1 || d->experts > 1024 || d->topk < 1 || d->topk > 32 || d->max_tokens < 1)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer: experts = %d (1..1024), topk = %d (1..32),"
                       " max_tokens = %d (>= 1)", d->experts, d->topk, d->max_tokens);
    if (d->dtype != MF_DTYPE_BF16 && d->dtype != MF_DTYPE_E4M3)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer: dtype %d is not bf16 or e4m3", (int)d->dtype);
    if (d->layout != MF_LAYOUT_AUTO && d->layout != MF_LAYOUT_MASKED &&
        d->layout != MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer: layout %d unknown", (int)d->layout);
    int fp8 = d->dtype == MF_DTYPE_E4M3;
    if (!d->w13 || !d->w2 || (fp8 && (!d->w13_scale || !d->w2_scale)))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer: w13, w2%s is NULL",
                       fp8 ? ", w13_scale or w2_scale" : "");
    if (mf_misaligned16(d->w13) || mf_misaligned16(d->w2))
        return MF_FAIL(MF_ERR_MISALIGNED, "layer: w13 or w2 not 16-byte aligned");
    /* Found here, not by GEMM 1 after preprocess has already run. */
    if (fp8 && (((uintptr_t)d->w13_scale | (uintptr_t)d->w2_scale) & 3))
        return MF_FAIL(MF_ERR_MISALIGNED, "layer: w13_scale or w2_scale not 4-byte aligned");
    if (d->ue8m0 && !fp8)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "layer: ue8m0 needs dtype e4m3");
    return check_sizes(d);
}

/* DESIGN's rule for MF_LAYOUT_AUTO: masked while its rows are at most twice
 * the contiguous worst case. */
static mf_layout resolve_layout(const mf_layer_desc *d)
{
    if (d->layout != MF_LAYOUT_AUTO)
        return d->layout;
    int64_t masked_rows = (int64_t)d->experts * d->max_tokens;
    int64_t contiguous_rows = (int64_t)d->max_tokens * d->topk + (int64_t)d->experts * 127;
    return masked_rows <= 2 * contiguous_rows ? MF_LAYOUT_MASKED : MF_LAYOUT_CONTIGUOUS;
}

static mf_status plan_workspace(mf_layer *l)
{
    const mf_layer_shape *s = &l->shape;
    int fp8 = s->dtype == MF_DTYPE_E4M3, masked = s->layout == MF_LAYOUT_MASKED;
    int capacity = 0;
    MF_TRY(mf_contiguous_capacity(l->desc.max_tokens, s->topk, s->experts, 128, &capacity));
    size_t rows = masked ? (size_t)s->experts * l->max_m : (size_t)capacity, elem = fp8 ? 1 : 2;
    size_t pre = 0;
    mf_preprocess_args largest = {
        .layout = s->layout, .tokens = l->desc.max_tokens, .topk = s->topk,
        .experts = s->experts, .hidden_size = s->hidden, .a_dtype = s->dtype,
        .ue8m0 = fp8 && s->ue8m0, .max_m = l->max_m, .m_capacity = capacity};
    MF_TRY(mf_preprocess_workspace_size(&largest, &pre));
    size_t sizes[] = {
        rows * s->hidden * elem, fp8 ? rows * (s->hidden / 128) * 4 : 0,
        rows * 2 * s->intermediate * 2, rows * s->intermediate * elem,
        fp8 ? rows * (s->intermediate / 128) * 4 : 0, rows * s->hidden * 2,
        (size_t)l->desc.max_tokens * s->topk * 4, (masked ? (size_t)s->experts : rows) * 4, pre};
    size_t *offsets[] = {&l->ws.a, &l->ws.a_scale, &l->ws.gate_up, &l->ws.act, &l->ws.act_scale,
                         &l->ws.down, &l->ws.src2dst, &l->ws.meta, &l->ws.preprocess};
    size_t at = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *offsets[i] = at;
        at += round256(sizes[i]);
    }
    l->ws.total = at;
    return MF_OK;
}

mf_status mf_layer_create(mf_context *ctx, const mf_layer_desc *desc, mf_layer **out)
{
    /* The description before the context, as every op checks its arguments. */
    if (!desc || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_create: desc or out is NULL");
    *out = NULL;
    MF_TRY(check_desc(desc));
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_create: ctx is NULL");
    /* Refused now rather than by the first e4m3 kernel of a forward. */
    if (desc->dtype == MF_DTYPE_E4M3)
        MF_TRY(mf_require_fp8(ctx, "layer"));
    mf_layer *l = calloc(1, sizeof *l);
    if (!l)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "mf_layer_create: no host memory");
    l->ctx = ctx;
    l->desc = *desc;
    l->shape = (mf_layer_shape){desc->hidden, desc->intermediate, desc->experts, desc->topk,
                                desc->dtype, resolve_layout(desc), desc->ue8m0,
                                ctx->info.sm_count, mf_device_cc(&ctx->info)};
    l->max_m = (desc->max_tokens + 3) / 4 * 4;
    mf_status s = plan_workspace(l);
    if (s != MF_OK) {
        free(l);
        return s;
    }
    mf_log(MF_LOG_INFO, "layer H=%d N=%d E=%d K=%d %s %s: workspace %zu bytes for %d tokens",
           desc->hidden, desc->intermediate, desc->experts, desc->topk,
           desc->dtype == MF_DTYPE_E4M3 ? "e4m3" : "bf16",
           l->shape.layout == MF_LAYOUT_MASKED ? "masked" : "contiguous", l->ws.total,
           desc->max_tokens);
    *out = l;
    return MF_OK;
}

void mf_layer_destroy(mf_layer *layer)
{
    free(layer);
}

mf_layout mf_layer_layout(const mf_layer *layer)
{
    return layer ? layer->shape.layout : MF_LAYOUT_AUTO;
}

mf_status mf_layer_workspace_size(const mf_layer *layer, size_t *bytes)
{
    if (!layer || !bytes)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_workspace_size: null argument");
    *bytes = layer->ws.total;
    return MF_OK;
}

/* Distinct specs, kept as a small growing list of strings. */
typedef struct spec_set {
    char (*items)[MF_SPEC_TEXT_MAX];
    int count, capacity;
    mf_status status;
} spec_set;

static void add_spec(void *user, const char *spec)
{
    spec_set *set = user;
    for (int i = 0; i < set->count; i++)
        if (strcmp(set->items[i], spec) == 0)
            return;
    if (set->count == set->capacity) {
        int capacity = set->capacity ? set->capacity * 2 : 32;
        void *grown = realloc(set->items, sizeof *set->items * (size_t)capacity);
        if (!grown) {
            set->status = MF_FAIL(MF_ERR_OUT_OF_MEMORY, "layer prepare: no host memory");
            return;
        }
        set->items = grown;
        set->capacity = capacity;
    }
    strcpy(set->items[set->count++], spec);
}

mf_status mf_layer_prepare(mf_layer *layer)
{
    if (!layer)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_prepare: layer is NULL");
    spec_set set = {NULL, 0, 0, MF_OK};
    mf_status s = MF_OK;
    for (int t = 1; t <= layer->desc.max_tokens && s == MF_OK && set.status == MF_OK; t++)
        s = mf_layer_kernel_specs(&layer->shape, t, add_spec, &set);
    if (s == MF_OK)
        s = set.status;
    for (int i = 0; i < set.count && s == MF_OK; i++)
        s = mf_kernel_prepare(layer->ctx, set.items[i]);
    mf_log(MF_LOG_INFO, "layer prepared: %d distinct kernels for 1..%d tokens", set.count,
           layer->desc.max_tokens);
    free(set.items);
    return s;
}

static mf_status check_io(const mf_layer *l, const mf_layer_io *io)
{
    if (!l || !io)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_forward: layer or io is NULL");
    if (io->tokens < 0 || io->tokens > l->desc.max_tokens)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_forward: tokens = %d outside [0, %d]",
                       io->tokens, l->desc.max_tokens);
    if (!io->hidden || !io->topk_ids || !io->topk_weights || !io->out || !io->workspace)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_forward: hidden, topk_ids, "
                       "topk_weights, out or workspace is NULL");
    if (io->workspace_size < l->ws.total)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_forward: workspace of %zu bytes, need "
                       "%zu (16-byte aligned)", io->workspace_size, l->ws.total);
    /* Every alignment the five ops need, checked before the first launch:
     * otherwise a misaligned out would be refused by combine, after four
     * stages have run. */
    if (mf_misaligned16(io->workspace) || mf_misaligned16(io->hidden) || mf_misaligned16(io->out))
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_layer_forward: workspace, hidden or out not "
                       "16-byte aligned");
    if (((uintptr_t)io->topk_ids | (uintptr_t)io->topk_weights | (uintptr_t)io->error_flags) & 3)
        return MF_FAIL(MF_ERR_MISALIGNED, "mf_layer_forward: topk_ids, topk_weights or "
                       "error_flags not 4-byte aligned");
    return MF_OK;
}

/* The op arguments for this forward, pointers included. */
static mf_status bind(const mf_layer *l, const mf_layer_io *io, mf_layer_op_args *a)
{
    MF_TRY(mf_layer_op_args_for(&l->shape, io->tokens, l->max_m, a));
    char *w = io->workspace;
    int masked = l->shape.layout == MF_LAYOUT_MASKED;
    int32_t *meta = (int32_t *)(w + l->ws.meta), *src2dst = (int32_t *)(w + l->ws.src2dst);
    mf_preprocess_args *p = &a->preprocess;
    p->topk_ids = io->topk_ids, p->hidden = io->hidden, p->a = w + l->ws.a;
    p->a_scale = (float *)(w + l->ws.a_scale), p->src2dst = src2dst;
    p->masked_m = masked ? meta : NULL, p->m_indices = masked ? NULL : meta;
    p->error_flags = io->error_flags, p->workspace = w + l->ws.preprocess;
    p->workspace_size = io->workspace_size - l->ws.preprocess;
    mf_gemm_args *g[] = {&a->gemm1, &a->gemm2};
    const void *inputs[] = {w + l->ws.a, w + l->ws.act};
    const float *input_scales[] = {(float *)(w + l->ws.a_scale), (float *)(w + l->ws.act_scale)};
    const void *weights[] = {l->desc.w13, l->desc.w2};
    const float *weight_scales[] = {l->desc.w13_scale, l->desc.w2_scale};
    void *outputs[] = {w + l->ws.gate_up, w + l->ws.down};
    for (int i = 0; i < 2; i++) {
        g[i]->a = inputs[i], g[i]->a_scale = input_scales[i], g[i]->b = weights[i];
        g[i]->b_scale = weight_scales[i], g[i]->d = outputs[i];
        g[i]->masked_m = masked ? meta : NULL, g[i]->m_indices = masked ? NULL : meta;
    }
    mf_silu_mul_args *sm = &a->silu_mul;
    sm->input = w + l->ws.gate_up, sm->output = w + l->ws.act;
    sm->out_scale = (float *)(w + l->ws.act_scale);
    sm->masked_m = masked ? meta : NULL, sm->m_indices = masked ? NULL : meta;
    mf_combine_args *c = &a->combine;
    c->d = w + l->ws.down, c->src2dst = src2dst, c->topk_weights = io->topk_weights;
    c->out = io->out, c->routed_scaling = l->desc.routed_scaling;
    c->error_flags = io->error_flags;
    if (l->shape.dtype != MF_DTYPE_E4M3)
        g[0]->a_scale = g[1]->a_scale = NULL, p->a_scale = NULL, sm->out_scale = NULL;
    return MF_OK;
}

/* Stage i of the forward (0 preprocess .. 4 combine). */
static mf_status run_stage(mf_context *ctx, const mf_layer_op_args *a, int i, mf_stream stream)
{
    switch (i) {
    case 0: return mf_preprocess(ctx, &a->preprocess, stream);
    case 1: return mf_gemm(ctx, &a->gemm1, stream);
    case 2: return mf_silu_mul(ctx, &a->silu_mul, stream);
    case 3: return mf_gemm(ctx, &a->gemm2, stream);
    default: return mf_combine(ctx, &a->combine, stream);
    }
}

mf_status mf_layer_forward(mf_layer *layer, const mf_layer_io *io, mf_stream stream)
{
    MF_TRY(check_io(layer, io));
    if (io->tokens == 0)
        return MF_OK;
    mf_layer_op_args a;
    MF_TRY(bind(layer, io, &a));
    for (int i = 0; i < 5; i++)
        MF_TRY(run_stage(layer->ctx, &a, i, stream));
    return MF_OK;
}

mf_status mf_layer_forward_timed(mf_layer *layer, const mf_layer_io *io, mf_stream stream,
                                 mf_layer_stage_times *times)
{
    MF_TRY(check_io(layer, io));
    if (!times)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_forward_timed: times is NULL");
    memset(times, 0, sizeof *times);
    if (io->tokens == 0)
        return MF_OK;
    mf_layer_op_args a;
    MF_TRY(bind(layer, io, &a));
    float *slots[] = {&times->preprocess_ms, &times->gemm1_ms, &times->silu_mul_ms,
                      &times->gemm2_ms, &times->combine_ms};
    mf_timer *timer;
    MF_TRY(mf_timer_create(layer->ctx, &timer));
    mf_status s = MF_OK;
    for (int i = 0; i < 5 && s == MF_OK; i++) {
        s = mf_timer_start(timer, stream);
        if (s == MF_OK)
            s = run_stage(layer->ctx, &a, i, stream);
        if (s == MF_OK)
            s = mf_timer_stop(timer, stream);
        if (s == MF_OK)
            s = mf_timer_elapsed_ms(timer, slots[i]);
    }
    mf_timer_destroy(timer);
    return s;
}
