/* CPU references of SiLU-and-mul. */
#include "silu_mul_ref.h"

#include "quant_ref.h"

#include <math.h>

enum { GROUP = 128 };

static int clamp_rows(int rows, int max_m)
{
    return rows < 0 ? 0 : (rows > max_m ? max_m : rows);
}

float silu_mul_product_f32(float g, float u)
{
    float e = (float)exp(-(double)g);
    float silu = g / (1.0f + e);
    return silu * u;
}

/* One row: in = gate | up (2n values), out n values. */
static void row_bf16(const bf16_t *in, bf16_t *out, int n)
{
    for (int j = 0; j < n; j++) {
        double g = bf16_to_float(in[j]), u = bf16_to_float(in[n + j]);
        out[j] = double_to_bf16(g / (1.0 + exp(-g)) * u);
    }
}

/* One row quantized per 128 columns; the scale of group k goes to scales[k * scale_stride]. */
static void row_e4m3(const bf16_t *in, uint8_t *out, float *scales, size_t scale_stride, int n,
                     int ue8m0)
{
    float x[GROUP];
    for (int k = 0; k < n / GROUP; k++) {
        for (int j = 0; j < GROUP; j++) {
            int col = k * GROUP + j;
            x[j] = silu_mul_product_f32(bf16_to_float(in[col]), bf16_to_float(in[n + col]));
        }
        scales[(size_t)k * scale_stride] = quant_group_ref(x, GROUP, ue8m0, out + k * GROUP);
    }
}

void silu_mul_masked_ref(const bf16_t *input, bf16_t *output, const int32_t *masked_m,
                         int experts, int max_m, int n)
{
    for (int e = 0; e < experts; e++) {
        int rows = clamp_rows(masked_m[e], max_m);
        for (int r = 0; r < rows; r++) {
            size_t row = (size_t)e * max_m + r;
            row_bf16(input + row * 2 * (size_t)n, output + row * (size_t)n, n);
        }
    }
}

void silu_mul_contiguous_ref(const bf16_t *input, bf16_t *output, const int32_t *m_indices,
                             int m_capacity, int n)
{
    for (int r = 0; r < m_capacity; r++)
        if (m_indices[r] >= 0)
            row_bf16(input + (size_t)r * 2 * (size_t)n, output + (size_t)r * (size_t)n, n);
}

void silu_mul_masked_e4m3_ref(const bf16_t *input, uint8_t *output, float *scales,
                              const int32_t *masked_m, int experts, int max_m, int n, int ue8m0)
{
    size_t groups = (size_t)n / GROUP;
    for (int e = 0; e < experts; e++) {
        int rows = clamp_rows(masked_m[e], max_m);
        for (int r = 0; r < rows; r++) {
            size_t row = (size_t)e * max_m + r;
            row_e4m3(input + row * 2 * (size_t)n, output + row * (size_t)n,
                     scales + (size_t)e * groups * max_m + r, (size_t)max_m, n, ue8m0);
        }
    }
}

void silu_mul_contiguous_e4m3_ref(const bf16_t *input, uint8_t *output, float *scales,
                                  const int32_t *m_indices, int m_capacity, int n, int ue8m0)
{
    for (int r = 0; r < m_capacity; r++)
        if (m_indices[r] >= 0)
            row_e4m3(input + (size_t)r * 2 * (size_t)n, output + (size_t)r * (size_t)n,
                     scales + r, (size_t)m_capacity, n, ue8m0);
}
