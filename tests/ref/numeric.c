/* bf16 conversion and random inputs for references, tests and benchmarks. */
#include "numeric.h"

#include <math.h>
#include <string.h>
#include <time.h>

float bf16_to_float(bf16_t v)
{
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

bf16_t float_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (bf16_t)((bits >> 16) | 0x40); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1);
    return (bf16_t)(bits >> 16);
}

/* A double rounded once to bf16: truncate to float with a sticky bit
 * (round-to-odd), then round to nearest even; float's 16 extra bits make the
 * double rounding exact. */
bf16_t double_to_bf16(double d)
{
    if (isnan(d))
        return 0x7fc0;
    float f = (float)d;
    if (fabs((double)f) > fabs(d))
        f = nextafterf(f, 0.0f);
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((double)f != d)
        bits |= 1;
    memcpy(&f, &bits, 4);
    return float_to_bf16(f);
}

static int32_t ordered(bf16_t v)
{
    return (v & 0x8000) ? -(int32_t)(v & 0x7fff) : (int32_t)v;
}

int bf16_ulp_distance(bf16_t a, bf16_t b)
{
    if (isnan(bf16_to_float(a)) || isnan(bf16_to_float(b)))
        return 1 << 30;
    int32_t d = ordered(a) - ordered(b);
    return d < 0 ? -d : d;
}

uint64_t mf_rng_seed_from_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
}

void mf_rng_init(mf_rng *r, uint64_t seed)
{
    r->state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t mf_rng_next(mf_rng *r)
{
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return r->state * 2685821657736338717ull;
}

float mf_rng_uniform(mf_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((mf_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

int mf_rng_int(mf_rng *r, int lo, int hi_inclusive)
{
    return lo + (int)(mf_rng_next(r) % (uint64_t)(hi_inclusive - lo + 1));
}

void mf_fill_bf16(mf_rng *r, bf16_t *dst, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = float_to_bf16(mf_rng_uniform(r, lo, hi));
}
