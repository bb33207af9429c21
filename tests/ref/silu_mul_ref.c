/* CPU reference of SiLU-and-mul. */
#include "silu_mul_ref.h"

#include <math.h>

static int clamp_rows(int rows, int max_m)
{
    return rows < 0 ? 0 : (rows > max_m ? max_m : rows);
}

void silu_mul_masked_ref(const bf16_t *input, bf16_t *output, const int32_t *masked_m,
                         int experts, int max_m, int n)
{
    for (int e = 0; e < experts; e++) {
        int rows = clamp_rows(masked_m[e], max_m);
        for (int r = 0; r < rows; r++) {
            const bf16_t *in = input + ((size_t)e * max_m + r) * 2 * (size_t)n;
            bf16_t *out = output + ((size_t)e * max_m + r) * (size_t)n;
            for (int j = 0; j < n; j++) {
                double g = bf16_to_float(in[j]), u = bf16_to_float(in[n + j]);
                out[j] = double_to_bf16(g / (1.0 + exp(-g)) * u);
            }
        }
    }
}
