/* e4m3 conversion and per-group quantization references. */
#include "quant_ref.h"

#include <math.h>
#include <string.h>

float e4m3_to_float(uint8_t v)
{
    int sign = v >> 7, exp = (v >> 3) & 15, man = v & 7;
    if (exp == 15 && man == 7)
        return NAN;
    float mag = exp == 0 ? ldexpf((float)man, -9) : ldexpf(1.0f + man / 8.0f, exp - 7);
    return sign ? -mag : mag;
}

/* Round to nearest even on the e4m3 grid: 3 mantissa bits, exponent bias 7,
 * subnormals below 2^-6, saturation at 448 (0x7e; 0x7f is NaN). */
uint8_t e4m3_from_float(float x)
{
    if (isnan(x))
        return 0x7f;
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float a = fabsf(x);
    if (a >= E4M3_MAX)
        return sign | 0x7e;
    if (a < 0x1p-6f)
        return sign | (uint8_t)rintf(a * 0x1p9f); /* steps of 2^-9; 8 is 2^-6 exactly */
    int e;
    frexpf(a, &e); /* a = f * 2^e, f in [0.5, 1): exponent of a is e - 1 */
    e -= 1;
    float steps = rintf(ldexpf(a, 3 - e)); /* 8..16: 1.mmm in eighths */
    if (steps == 16.0f) {
        steps = 8.0f;
        e += 1;
    }
    int code = ((e + 7) << 3) | ((int)steps - 8);
    return sign | (uint8_t)(code > 0x7e ? 0x7e : code);
}

int e4m3_ulp_distance(uint8_t a, uint8_t b)
{
    if ((a & 0x7f) == 0x7f || (b & 0x7f) == 0x7f)
        return 1 << 30;
    int oa = (a & 0x80) ? -(a & 0x7f) : (a & 0x7f);
    int ob = (b & 0x80) ? -(b & 0x7f) : (b & 0x7f);
    return oa > ob ? oa - ob : ob - oa;
}

float quant_scale_ref(float amax, int ue8m0)
{
    float s = fmaxf(amax, 1e-10f) / E4M3_MAX;
    if (!ue8m0)
        return s;
    int e;
    float m = frexpf(s, &e); /* s = m * 2^e, m in [0.5, 1) */
    return m == 0.5f ? s : ldexpf(1.0f, e);
}

float quant_group_ref(const float *x, int n, int ue8m0, uint8_t *q)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    float scale = quant_scale_ref(amax, ue8m0);
    for (int i = 0; i < n; i++)
        q[i] = e4m3_from_float(x[i] / scale);
    return scale;
}
