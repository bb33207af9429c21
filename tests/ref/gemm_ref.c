/* Grouped GEMM reference. */
#include "gemm_ref.h"

#include <math.h>
#include <stdlib.h>

/* Row r of a (or b) dequantized to double. */
static void dequantize_row(int e4m3, const void *src, const float *scales, long scale_stride,
                           int r, int k, double *out)
{
    for (int i = 0; i < k; i++) {
        if (!e4m3) {
            out[i] = bf16_to_float(((const bf16_t *)src)[(size_t)r * k + i]);
            continue;
        }
        double q = e4m3_to_float(((const uint8_t *)src)[(size_t)r * k + i]);
        out[i] = q * scales[(i / 128) * scale_stride];
    }
}

void gemm_group_ref(int e4m3, const void *a, const float *a_scale, long a_scale_stride,
                    const void *b, const float *b_scale, int rows, int n, int k, double *d)
{
    double *bt = malloc(sizeof(double) * (size_t)n * k), *ar = malloc(sizeof(double) * (size_t)k);
    for (int j = 0; j < n; j++)
        dequantize_row(e4m3, b, e4m3 ? b_scale + (j / 128) * (k / 128) : NULL, 1, j, k,
                       bt + (size_t)j * k);
    for (int r = 0; r < rows; r++) {
        dequantize_row(e4m3, a, e4m3 ? a_scale + r : NULL, a_scale_stride, r, k, ar);
        for (int j = 0; j < n; j++) {
            const double *bj = bt + (size_t)j * k;
            double sum = 0;
            for (int i = 0; i < k; i++)
                sum += ar[i] * bj[i];
            d[(size_t)r * n + j] = sum;
        }
    }
    free(bt);
    free(ar);
}

double relative_error(const bf16_t *got, const double *ref, size_t count)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        double g = bf16_to_float(got[i]);
        if (isnan(g))
            return INFINITY;
        num += (g - ref[i]) * (g - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
