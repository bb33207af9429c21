/* CPU references of SiLU-and-mul, masked ([E, max_m] rows, valid below
 * clamp(masked_m[e], 0, max_m)) and contiguous ([m_capacity] rows, valid where
 * m_indices[row] >= 0). Invalid rows of the outputs are left untouched.
 *   bf16 output: silu(g) * u in double, rounded once to bf16.
 *   e4m3 output: the fp32 product of silu_mul_product_f32, quantized per
 *                (row, 128 columns) with quant_group_ref; scales "MN-major" as
 *                moeforge.h lays them out. */
#ifndef MF_REF_SILU_MUL_H
#define MF_REF_SILU_MUL_H

#include "numeric.h"

/* The fp32 product the e4m3 kernel quantizes, rounded at the kernel's steps:
 * e = exp(-g) rounded once to fp32, then 1 + e, g / (1 + e) and (that) * u each
 * rounded to fp32. The device's expf is within 2 ulp of e and the difference is
 * damped by e / (1 + e) in the product: on an H200 every scale of 65536 random
 * groups matched bit for bit, and about 1 quantized value in 10^6 differed (by
 * 1 e4m3 ulp). A product computed in double and rounded once would differ from
 * these fp32 steps by up to 3 ulps and moved 5% of those scales by 2 ulps or
 * more: too far for the 1-ulp scale tolerance. */
float silu_mul_product_f32(float g, float u);

/* input [experts, max_m, 2n], output [experts, max_m, n]. */
void silu_mul_masked_ref(const bf16_t *input, bf16_t *output, const int32_t *masked_m,
                         int experts, int max_m, int n);

/* input [m_capacity, 2n], output [m_capacity, n]. */
void silu_mul_contiguous_ref(const bf16_t *input, bf16_t *output, const int32_t *m_indices,
                             int m_capacity, int n);

/* output e4m3 [experts, max_m, n], scales fp32 [experts, n/128, max_m]; n % 128 == 0. */
void silu_mul_masked_e4m3_ref(const bf16_t *input, uint8_t *output, float *scales,
                              const int32_t *masked_m, int experts, int max_m, int n, int ue8m0);

/* output e4m3 [m_capacity, n], scales fp32 [n/128, m_capacity]; n % 128 == 0. */
void silu_mul_contiguous_e4m3_ref(const bf16_t *input, uint8_t *output, float *scales,
                                  const int32_t *m_indices, int m_capacity, int n, int ue8m0);

#endif
