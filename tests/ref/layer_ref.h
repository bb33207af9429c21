/* CPU reference of a whole MoE layer forward in fp64: for each token,
 * out = scaling * sum over valid k of w[k] * W2_e (silu(W13_gate,e x) * W13_up,e x).
 * Weights come dequantized (double); ids outside [0, E) and repeats of an
 * expert within a token are skipped, as the kernels do. */
#ifndef MF_REF_LAYER_H
#define MF_REF_LAYER_H

#include "numeric.h"

typedef struct layer_ref {
    int hidden, intermediate, experts, topk;
    double scaling;      /* 0 means 1 */
    const double *w13;   /* [E, 2N, H] */
    const double *w2;    /* [E, H, N] */
} layer_ref;

void layer_forward_ref(const layer_ref *l, const bf16_t *hidden, const int32_t *ids,
                       const float *weights, int tokens, double *out);

#endif
