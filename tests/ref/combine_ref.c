/* CPU reference of combine. */
#include "combine_ref.h"

#include <stdlib.h>

int64_t combine_ref(const bf16_t *d, int64_t d_rows, const int32_t *src2dst,
                    const float *weights, bf16_t *out, int tokens, int topk, int hidden,
                    float routed_scaling)
{
    double scale = routed_scaling == 0.0f ? 1.0 : routed_scaling;
    double *sum = malloc(sizeof(double) * (size_t)(hidden > 0 ? hidden : 1));
    if (!sum)
        abort();
    int64_t flagged = 0;
    for (int t = 0; t < tokens; t++) {
        for (int j = 0; j < hidden; j++)
            sum[j] = 0.0;
        for (int k = 0; k < topk; k++) {
            int64_t slot = (int64_t)t * topk + k, row = src2dst[slot];
            if (row < 0 || row >= d_rows) {
                flagged += row != -1;
                continue;
            }
            const bf16_t *src = d + row * hidden;
            for (int j = 0; j < hidden; j++)
                sum[j] += weights[slot] * (double)bf16_to_float(src[j]);
        }
        for (int j = 0; j < hidden; j++)
            out[(int64_t)t * hidden + j] = double_to_bf16(scale * sum[j]);
    }
    free(sum);
    return flagged;
}
