/* CPU reference of FP8 (e4m3) per-group quantization, as DESIGN.md states it:
 * amax = max |x| (fp32), scale = max(amax, 1e-10) / 448 (fp32 division),
 * ue8m0: scale = 2^ceil(log2(that)), q = saturate_rne(x / scale) (fp32 division). */
#ifndef MF_REF_QUANT_H
#define MF_REF_QUANT_H

#include "numeric.h"

#define E4M3_MAX 448.0f

uint8_t e4m3_from_float(float x); /* round to nearest even, saturate to +-448, NaN -> 0x7f */
float e4m3_to_float(uint8_t v);
/* Distance in e4m3 steps (same sign line); huge for NaN. */
int e4m3_ulp_distance(uint8_t a, uint8_t b);

/* The scale of a group whose |max| is amax. */
float quant_scale_ref(float amax, int ue8m0);

/* Quantizes n values (fp32, already rounded as the kernel sees them) into q;
 * returns the scale. */
float quant_group_ref(const float *x, int n, int ue8m0, uint8_t *q);

#endif
