/* The op arguments and kernel specs of a layer forward, per token count. */
#include "plan.h"

#include "error.h"
#include "op_specs.h"

#include <string.h>

enum { DEFAULT_SM_COUNT = 132, DEFAULT_CC = 90, SEGMENT_ALIGN = 128 };

static int sm_count_of(const mf_layer_shape *s)
{
    return s->sm_count > 0 ? s->sm_count : DEFAULT_SM_COUNT;
}

static int cc_of(const mf_layer_shape *s)
{
    return s->cc > 0 ? s->cc : DEFAULT_CC;
}

mf_status mf_layer_op_args_for(const mf_layer_shape *s, int tokens, int max_m,
                               mf_layer_op_args *out)
{
    memset(out, 0, sizeof *out);
    int masked = s->layout == MF_LAYOUT_MASKED, fp8 = s->dtype == MF_DTYPE_E4M3;
    int expected_m = mf_expected_m(tokens, s->topk, s->experts), m_capacity = 0;
    if (!masked)
        MF_TRY(mf_contiguous_capacity(tokens, s->topk, s->experts, SEGMENT_ALIGN, &m_capacity));
    out->rows = masked ? s->experts * max_m : m_capacity;
    out->preprocess = (mf_preprocess_args){
        .layout = s->layout, .tokens = tokens, .topk = s->topk, .experts = s->experts,
        .hidden_size = s->hidden, .a_dtype = s->dtype, .ue8m0 = s->ue8m0, .max_m = max_m,
        .m_capacity = m_capacity, .align = SEGMENT_ALIGN};
    mf_gemm_args gemm = {.layout = s->layout, .dtype = s->dtype, .experts = s->experts,
                         .max_m = max_m, .expected_m = expected_m, .m_capacity = m_capacity};
    out->gemm1 = gemm;
    out->gemm1.n = 2 * s->intermediate, out->gemm1.k = s->hidden;
    out->gemm2 = gemm;
    out->gemm2.n = s->hidden, out->gemm2.k = s->intermediate;
    out->silu_mul = (mf_silu_mul_args){
        .layout = s->layout, .experts = s->experts, .max_m = max_m, .n = s->intermediate,
        .expected_m = expected_m, .m_capacity = m_capacity,
        .out_dtype = fp8 ? MF_DTYPE_E4M3 : MF_DTYPE_BF16, .ue8m0 = fp8 && s->ue8m0};
    out->combine = (mf_combine_args){.d_rows = out->rows, .tokens = tokens, .topk = s->topk,
                                     .hidden_size = s->hidden};
    return MF_OK;
}

static mf_status emit(const mf_spec *spec, mf_spec_sink sink, void *user)
{
    char text[MF_SPEC_TEXT_MAX];
    MF_TRY(mf_spec_format(spec, text, sizeof text));
    sink(user, text);
    return MF_OK;
}

static mf_status emit_preprocess(const mf_layer_shape *s, int tokens, mf_spec_sink sink, void *user)
{
    static const char *chunked[] = {"rank", "scan", "scatter", "scales"};
    mf_spec spec;
    if ((long long)tokens * s->topk <= MF_PREPROCESS_FUSED_SLOTS) {
        MF_TRY(mf_preprocess_spec(s->layout, s->dtype, s->ue8m0, s->experts,
                                  (int64_t)tokens * s->topk, "fused", &spec));
        return emit(&spec, sink, user);
    }
    int64_t slots = (int64_t)tokens * s->topk;
    for (int i = 0; i < (s->dtype == MF_DTYPE_E4M3 ? 4 : 3); i++) {
        if (strcmp(chunked[i], "scan") == 0 && !mf_preprocess_scans(s->layout, slots))
            continue;
        MF_TRY(mf_preprocess_spec(s->layout, s->dtype, s->ue8m0, s->experts, slots, chunked[i],
                                  &spec));
        MF_TRY(emit(&spec, sink, user));
    }
    return MF_OK;
}

static mf_status emit_gemm(const mf_gemm_args *a, const mf_layer_shape *s, mf_spec_sink sink,
                           void *user)
{
    mf_gemm_config c;
    mf_spec spec;
    MF_TRY(mf_gemm_pick(a, sm_count_of(s), cc_of(s), &c));
    MF_TRY(mf_gemm_spec(a->dtype, a->layout, &c, &spec));
    return emit(&spec, sink, user);
}

mf_status mf_layer_kernel_specs(const mf_layer_shape *s, int tokens, mf_spec_sink sink, void *user)
{
    if (!s || !sink || tokens < 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_kernel_specs: null argument or tokens < 0");
    if (s->layout != MF_LAYOUT_MASKED && s->layout != MF_LAYOUT_CONTIGUOUS)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_layer_kernel_specs: layout must be masked or "
                       "contiguous");
    if (tokens == 0)
        return MF_OK;
    mf_layer_op_args a;
    /* masked: the capacity only sets strides; tile choices follow expected_m */
    MF_TRY(mf_layer_op_args_for(s, tokens, (tokens + 3) / 4 * 4, &a));
    mf_spec spec;
    MF_TRY(emit_preprocess(s, tokens, sink, user));
    MF_TRY(emit_gemm(&a.gemm1, s, sink, user));
    MF_TRY(mf_silu_mul_spec(&a.silu_mul, sm_count_of(s), &spec));
    MF_TRY(emit(&spec, sink, user));
    MF_TRY(emit_gemm(&a.gemm2, s, sink, user));
    MF_TRY(mf_combine_spec(s->topk, &spec));
    return emit(&spec, sink, user);
}
