/* Whole-layer reference. */
#include "layer_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int valid_slot(const int32_t *ids, int k, int experts)
{
    if (ids[k] < 0 || ids[k] >= experts)
        return 0;
    for (int j = 0; j < k; j++)
        if (ids[j] == ids[k])
            return 0;
    return 1;
}

/* y += w * W2_e (silu(gate) * up) for one token and expert. */
static void expert_ref(const layer_ref *l, int e, const double *x, double w, double *act,
                       double *y)
{
    int H = l->hidden, N = l->intermediate;
    const double *w13 = l->w13 + (size_t)e * 2 * N * H, *w2 = l->w2 + (size_t)e * H * N;
    for (int j = 0; j < N; j++) {
        double g = 0, u = 0;
        for (int i = 0; i < H; i++) {
            g += w13[(size_t)j * H + i] * x[i];
            u += w13[(size_t)(N + j) * H + i] * x[i];
        }
        act[j] = g / (1.0 + exp(-g)) * u;
    }
    for (int i = 0; i < H; i++) {
        double d = 0;
        for (int j = 0; j < N; j++)
            d += w2[(size_t)i * N + j] * act[j];
        y[i] += w * d;
    }
}

void layer_forward_ref(const layer_ref *l, const bf16_t *hidden, const int32_t *ids,
                       const float *weights, int tokens, double *out)
{
    int H = l->hidden, K = l->topk;
    double *x = malloc(sizeof(double) * (size_t)H), *act = malloc(sizeof(double) * (size_t)l->intermediate);
    double scaling = l->scaling == 0 ? 1.0 : l->scaling;
    for (int t = 0; t < tokens; t++) {
        double *y = out + (size_t)t * H;
        memset(y, 0, sizeof(double) * (size_t)H);
        for (int i = 0; i < H; i++)
            x[i] = bf16_to_float(hidden[(size_t)t * H + i]);
        for (int k = 0; k < K; k++)
            if (valid_slot(ids + (size_t)t * K, k, l->experts))
                expert_ref(l, ids[(size_t)t * K + k], x, weights[(size_t)t * K + k], act, y);
        for (int i = 0; i < H; i++)
            y[i] *= scaling;
    }
    free(x);
    free(act);
}
