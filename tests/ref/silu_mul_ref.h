/* CPU reference of SiLU-and-mul (masked layout), in double, rounded once to bf16. */
#ifndef MF_REF_SILU_MUL_H
#define MF_REF_SILU_MUL_H

#include "numeric.h"

/* input [experts, max_m, 2n], output [experts, max_m, n]; only rows
 * r < clamp(masked_m[e], 0, max_m) are written. */
void silu_mul_masked_ref(const bf16_t *input, bf16_t *output, const int32_t *masked_m,
                         int experts, int max_m, int n);

#endif
