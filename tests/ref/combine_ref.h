/* CPU reference of combine, in double, rounded once to bf16. */
#ifndef MF_REF_COMBINE_H
#define MF_REF_COMBINE_H

#include "numeric.h"

/* out[t, :] = bf16(scaling * sum over k of w[t, k] * d[src2dst[t*K + k], :]) over
 * the slots whose src2dst is in [0, d_rows); scaling 0 means 1; a token with no
 * such slot gets zeros. d is [d_rows, hidden], out [tokens, hidden].
 * Returns the number of entries the kernel must flag (outside [-1, d_rows)). */
int64_t combine_ref(const bf16_t *d, int64_t d_rows, const int32_t *src2dst,
                    const float *weights, bf16_t *out, int tokens, int topk, int hidden,
                    float routed_scaling);

#endif
