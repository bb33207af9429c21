/* CPU reference of preprocess: routing (masked_m / m_indices, src2dst, error
 * flags) and the expected content of one destination row. */
#ifndef MF_REF_PREPROCESS_H
#define MF_REF_PREPROCESS_H

#include "quant_ref.h"

typedef struct preprocess_ref_shape {
    int tokens, topk, experts;
    int contiguous;  /* 0: masked */
    int max_m;       /* masked */
    int align;       /* contiguous */
    int m_capacity;  /* contiguous */
} preprocess_ref_shape;

/* Fills src2dst [T*K], masked_m [E] (masked) or m_indices [m_capacity]
 * (contiguous), and returns the MF_DEVICE_ERR_* bits the kernel must raise:
 * 1 bad id, 2 duplicate id, 4 capacity. */
int preprocess_route_ref(const preprocess_ref_shape *s, const int32_t *topk_ids,
                         int32_t *src2dst, int32_t *masked_m, int32_t *m_indices);

/* Quantizes one bf16 row of H values into q [H] and scales [H/128]. */
void quantize_row_ref(const bf16_t *row, int hidden_size, int ue8m0, uint8_t *q, float *scales);

#endif
