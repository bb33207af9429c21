/* The kernels a MoE layer's forward pass launches, as a function of its shape
 * and token count. Ops choose specializations with the same functions, so a
 * warmup that walks this list over a token range compiles exactly what the
 * runtime will ask for. */
#ifndef MF_PLAN_H
#define MF_PLAN_H

#include "moeforge.h"

typedef struct mf_layer_shape {
    int hidden;        /* H */
    int intermediate;  /* N (per expert, after the gate|up split) */
    int experts;       /* E */
    int topk;          /* K */
    mf_dtype dtype;    /* MF_DTYPE_BF16 or MF_DTYPE_E4M3 (activations and weights) */
    mf_layout layout;  /* MF_LAYOUT_MASKED or MF_LAYOUT_CONTIGUOUS */
    int ue8m0;         /* e4m3: power-of-two activation scales */
    int sm_count;      /* target device's SMs (0: 132, an H200): tile choice depends on it */
    int cc;            /* target compute capability, 10 * major + minor (0: 90): so does the GEMM family */
} mf_layer_shape;

typedef void (*mf_spec_sink)(void *user, const char *spec);

/* Calls sink once per kernel spec (canonical) a forward pass over `tokens`
 * tokens launches; the same spec may come more than once. */
__attribute__((visibility("default"))) mf_status
mf_layer_kernel_specs(const mf_layer_shape *shape, int tokens, mf_spec_sink sink, void *user);

/* Arguments of the five ops of a forward over `tokens` tokens, with every
 * size and choice filled in and every pointer NULL (the forward adds them).
 * max_m: masked capacity per expert. One function, so that the forward and
 * the spec list can never disagree. */
typedef struct mf_layer_op_args {
    mf_preprocess_args preprocess;
    mf_gemm_args gemm1;
    mf_silu_mul_args silu_mul;
    mf_gemm_args gemm2;
    mf_combine_args combine;
    int rows; /* rows of a, gate_up, act and down for this token count */
} mf_layer_op_args;

mf_status mf_layer_op_args_for(const mf_layer_shape *shape, int tokens, int max_m,
                               mf_layer_op_args *out);

#endif
