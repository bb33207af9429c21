/* Host-side numerics shared by the CPU references, the tests and the benchmarks:
 * bf16 conversion, a seeded random generator, ulp distance. */
#ifndef MF_REF_NUMERIC_H
#define MF_REF_NUMERIC_H

#include <stddef.h>
#include <stdint.h>

typedef uint16_t bf16_t;

float bf16_to_float(bf16_t v);
bf16_t float_to_bf16(float f); /* round to nearest even, NaN kept */
bf16_t double_to_bf16(double d); /* one rounding: double -> bf16 (via exact halfway check) */

/* Distance in bf16 ulps between two finite values (same sign line); large for NaN. */
int bf16_ulp_distance(bf16_t a, bf16_t b);

/* xorshift64*: reproducible, seed from the clock for "fresh" inputs. */
typedef struct mf_rng { uint64_t state; } mf_rng;
uint64_t mf_rng_seed_from_time(void);
void mf_rng_init(mf_rng *r, uint64_t seed);
uint64_t mf_rng_next(mf_rng *r);
float mf_rng_uniform(mf_rng *r, float lo, float hi);
int mf_rng_int(mf_rng *r, int lo, int hi_inclusive);
void mf_fill_bf16(mf_rng *r, bf16_t *dst, size_t n, float lo, float hi);

#endif
