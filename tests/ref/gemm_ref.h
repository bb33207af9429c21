/* CPU reference of the grouped GEMM (NT) in double over the dequantized inputs. */
#ifndef MF_REF_GEMM_H
#define MF_REF_GEMM_H

#include "quant_ref.h"

/* One group: d[m, n] = sum_k a[m, k] * b[n, k] for rows [0, rows), in double.
 * bf16: a, b are bf16. e4m3: a, b are e4m3 bytes; a's scale of (row r, k-block kb)
 * is a_scale[kb * a_scale_stride + r], b's is b_scale[(n / 128) * (k / 128) + kb]. */
void gemm_group_ref(int e4m3, const void *a, const float *a_scale, long a_scale_stride,
                    const void *b, const float *b_scale, int rows, int n, int k, double *d);

/* ||got - ref|| / ||ref|| over rows x n; got is bf16. Infinite when got has a NaN. */
double relative_error(const bf16_t *got, const double *ref, size_t count);

#endif
