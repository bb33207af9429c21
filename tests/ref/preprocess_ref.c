/* CPU reference of preprocess routing. */
#include "preprocess_ref.h"

#include <stdlib.h>

/* -1 for skipped slots, with the reason's flag bit. */
static int slot_expert(const int32_t *ids, int s, int topk, int experts, int *flags)
{
    int e = ids[s];
    if (e < -1 || e >= experts) {
        *flags |= 1;
        return -1;
    }
    if (e < 0)
        return -1;
    for (int j = s - s % topk; j < s; j++)
        if (ids[j] == e) {
            *flags |= 2;
            return -1;
        }
    return e;
}

int preprocess_route_ref(const preprocess_ref_shape *s, const int32_t *ids, int32_t *src2dst,
                         int32_t *masked_m, int32_t *m_indices)
{
    int slots = s->tokens * s->topk, flags = 0;
    int *count = calloc((size_t)s->experts, sizeof(int));
    int *rank = malloc(sizeof(int) * (size_t)(slots ? slots : 1));
    int *expert = malloc(sizeof(int) * (size_t)(slots ? slots : 1));
    for (int i = 0; i < slots; i++) {
        expert[i] = slot_expert(ids, i, s->topk, s->experts, &flags);
        rank[i] = expert[i] >= 0 ? count[expert[i]]++ : -1;
    }
    long long *start = calloc((size_t)s->experts + 1, sizeof(long long));
    for (int e = 0; e < s->experts; e++)
        start[e + 1] = start[e] + (count[e] + s->align - 1) / (s->align ? s->align : 1) *
                                      (s->align ? s->align : 1);
    for (int i = 0; i < slots; i++) {
        int e = expert[i];
        long long row = -1;
        if (e >= 0)
            row = s->contiguous ? start[e] + rank[i] : (rank[i] < s->max_m ? (long long)e * s->max_m + rank[i] : -1);
        if (e >= 0 && (row < 0 || (s->contiguous && row >= s->m_capacity))) {
            flags |= 4;
            row = -1;
        }
        src2dst[i] = (int32_t)row;
    }
    for (int e = 0; e < s->experts && !s->contiguous; e++)
        masked_m[e] = count[e] < s->max_m ? count[e] : s->max_m;
    for (int r = 0; r < s->m_capacity && s->contiguous; r++) {
        m_indices[r] = -1;
        for (int e = 0; e < s->experts; e++)
            if (r >= start[e] && r < start[e] + count[e])
                m_indices[r] = e;
    }
    free(count);
    free(rank);
    free(expert);
    free(start);
    return flags;
}

void quantize_row_ref(const bf16_t *row, int hidden_size, int ue8m0, uint8_t *q, float *scales)
{
    float group[128];
    for (int g = 0; g < hidden_size / 128; g++) {
        for (int i = 0; i < 128; i++)
            group[i] = bf16_to_float(row[g * 128 + i]);
        scales[g] = quant_group_ref(group, 128, ue8m0, q + g * 128);
    }
}
