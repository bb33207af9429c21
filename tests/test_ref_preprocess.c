/* CPU suite: the preprocess and quantization references on hand-computed cases. */
#include <criterion/criterion.h>
#include <math.h>

#include "preprocess_ref.h"

/* 3 tokens, K = 2, E = 3:  t0 -> {2, 0}, t1 -> {0, -1}, t2 -> {0, 2} */
static const int32_t ids[] = {2, 0, 0, -1, 0, 2};

Test(ref_preprocess, masked_ranks_follow_slot_order)
{
    preprocess_ref_shape s = {3, 2, 3, 0, 4, 128, 0};
    int32_t src2dst[6], masked_m[3];
    cr_assert_eq(preprocess_route_ref(&s, ids, src2dst, masked_m, NULL), 0);
    int32_t want[] = {2 * 4 + 0, 0, 1, -1, 2, 2 * 4 + 1};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(src2dst[i], want[i], "slot %d: %d", i, src2dst[i]);
    cr_expect_eq(masked_m[0], 3);
    cr_expect_eq(masked_m[1], 0);
    cr_expect_eq(masked_m[2], 2);
}

Test(ref_preprocess, contiguous_segments_aligned_with_padding_rows)
{
    preprocess_ref_shape s = {3, 2, 3, 1, 0, 4, 12};
    int32_t src2dst[6], m_indices[12];
    cr_assert_eq(preprocess_route_ref(&s, ids, src2dst, NULL, m_indices), 0);
    /* expert 0: rows 0..2 (+ pad 3), expert 1: none, expert 2: rows 4..5 (+ pad 6, 7) */
    int32_t want[] = {4, 0, 1, -1, 2, 5};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(src2dst[i], want[i], "slot %d: %d", i, src2dst[i]);
    int32_t want_m[] = {0, 0, 0, -1, 2, 2, -1, -1, -1, -1, -1, -1};
    for (int i = 0; i < 12; i++)
        cr_expect_eq(m_indices[i], want_m[i], "row %d: %d", i, m_indices[i]);
}

Test(ref_preprocess, bad_duplicate_and_overflow_flagged_and_skipped)
{
    const int32_t bad[] = {5, 1, 1, 1, 1, -2};
    preprocess_ref_shape s = {3, 2, 3, 0, 1, 128, 0};
    int32_t src2dst[6], masked_m[3];
    int flags = preprocess_route_ref(&s, bad, src2dst, masked_m, NULL);
    cr_expect_eq(flags, 1 | 2 | 4);
    /* slot 0 bad id, slot 1 expert 1 rank 0 (row 1), slot 2 rank 1 > capacity,
     * slot 3 duplicate of slot 2, slot 4 rank 2 > capacity, slot 5 bad id */
    int32_t want[] = {-1, 1, -1, -1, -1, -1};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(src2dst[i], want[i], "slot %d: %d", i, src2dst[i]);
    cr_expect_eq(masked_m[1], 1, "two slots for expert 1, capacity 1");
}

Test(ref_quant, e4m3_grid_round_trip_ties_and_saturation)
{
    for (int c = 0; c < 0x7f; c++)
        cr_expect_eq(e4m3_from_float(e4m3_to_float((uint8_t)c)), c, "code %#x", c);
    cr_expect_eq(e4m3_from_float(448.0f), 0x7e);
    cr_expect_eq(e4m3_from_float(1e6f), 0x7e);
    cr_expect_eq(e4m3_from_float(-1e6f), 0xfe);
    cr_expect_eq(e4m3_from_float(1.0625f), 0x38, "halfway 1..1.125 goes to even 1.0");
    cr_expect_eq(e4m3_from_float(1.1875f), 0x3a, "halfway 1.125..1.25 goes to even 1.25");
    cr_expect_float_eq(e4m3_to_float(0x01), 0x1p-9f, 0);
}

Test(ref_quant, group_scale_and_values)
{
    float x[128] = {0};
    x[3] = -3.5f, x[7] = 1.75f; /* amax 3.5: scale = 3.5/448 = 1/128 */
    uint8_t q[128];
    float scale = quant_group_ref(x, 128, 0, q);
    cr_expect_eq(scale, 3.5f / 448.0f);
    cr_expect_eq(q[3], 0xfe, "-3.5 / scale = -448");
    cr_expect_eq(q[7], 0x76, "1.75 / scale = 224");
    cr_expect_eq(q[0], 0);
    x[3] = -3.0f; /* ue8m0: 3/448 rounds up to 2^-7 */
    cr_expect_eq(quant_group_ref(x, 128, 1, q), 0x1p-7f);
    float zeros[128] = {0};
    cr_expect_eq(quant_group_ref(zeros, 128, 0, q), 1e-10f / 448.0f, "all-zero group keeps a tiny scale");
}
