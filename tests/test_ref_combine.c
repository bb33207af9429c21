/* CPU suite: the combine reference on hand-computed cases. */
#include <criterion/criterion.h>
#include <math.h>

#include "combine_ref.h"

enum { H = 8 };

static void fill_row(bf16_t *row, const float values[H])
{
    for (int j = 0; j < H; j++)
        row[j] = float_to_bf16(values[j]);
}

static void expect_row(const bf16_t *got, const float want[H], int token)
{
    for (int j = 0; j < H; j++)
        cr_expect_eq(got[token * H + j], float_to_bf16(want[j]), "token %d col %d: got %g want %g",
                     token, j, bf16_to_float(got[token * H + j]), want[j]);
}

/* Four rows with exact bf16 values used by several cases. */
static void four_rows(bf16_t d[4 * H])
{
    fill_row(d + 0 * H, (float[H]){1, 2, 3, 4, 5, 6, 7, 8});
    fill_row(d + 1 * H, (float[H]){-1, -2, -3, -4, -5, -6, -7, -8});
    fill_row(d + 2 * H, (float[H]){0.5f, -0.5f, 0.25f, -0.25f, 1.5f, -1.5f, 3, -3});
    fill_row(d + 3 * H, (float[H]){16, 8, 4, 2, 1, 0.5f, 0.25f, 0.125f});
}

Test(ref_combine, two_tokens_two_slots_weighted_sum)
{
    bf16_t d[4 * H], out[2 * H];
    four_rows(d);
    const int32_t src2dst[] = {3, 0, 1, 2};
    const float w[] = {0.5f, 0.25f, 1.0f, 2.0f};
    cr_assert_eq(combine_ref(d, 4, src2dst, w, out, 2, 2, H, 0.0f), 0);
    /* 0.5 * row3 + 0.25 * row0 and row1 + 2 * row2 */
    expect_row(out, (float[H]){8.25f, 4.5f, 2.75f, 2, 1.75f, 1.75f, 1.875f, 2.0625f}, 0);
    expect_row(out, (float[H]){0, -3, -2.5f, -4.5f, -2, -9, -1, -14}, 1);
}

Test(ref_combine, skipped_slot_ignored_even_with_nan_weight)
{
    bf16_t d[4 * H], out[H];
    four_rows(d);
    const int32_t src2dst[] = {-1, 2, -1};
    const float w[] = {NAN, 4.0f, INFINITY};
    cr_assert_eq(combine_ref(d, 4, src2dst, w, out, 1, 3, H, 0.0f), 0);
    expect_row(out, (float[H]){2, -2, 1, -1, 6, -6, 12, -12}, 0);
}

Test(ref_combine, all_slots_skipped_give_zeros)
{
    bf16_t d[4 * H], out[2 * H];
    four_rows(d);
    for (int i = 0; i < 2 * H; i++)
        out[i] = 0xffff;
    const int32_t src2dst[] = {-1, -1, -1, -1, -1, -1};
    const float w[] = {1, 1, 1, 1, 1, 1};
    cr_assert_eq(combine_ref(d, 4, src2dst, w, out, 2, 3, H, 2.5f), 0);
    for (int i = 0; i < 2 * H; i++)
        cr_expect_eq(out[i], 0, "element %d: %#x", i, out[i]);
}

Test(ref_combine, row_zero_is_a_row_like_any_other)
{
    bf16_t d[4 * H], out[2 * H];
    four_rows(d);
    const int32_t src2dst[] = {0, 0, 0, 3};
    const float w[] = {0.25f, 0.5f, 1.0f, 0.0f};
    cr_assert_eq(combine_ref(d, 4, src2dst, w, out, 2, 2, H, 0.0f), 0);
    expect_row(out, (float[H]){0.75f, 1.5f, 2.25f, 3, 3.75f, 4.5f, 5.25f, 6}, 0);
    expect_row(out, (float[H]){1, 2, 3, 4, 5, 6, 7, 8}, 1);
}

Test(ref_combine, routed_scaling_multiplies_and_zero_means_one)
{
    bf16_t d[4 * H], out[H];
    four_rows(d);
    const int32_t src2dst[] = {0, -1};
    const float w[] = {0.5f, 1.0f};
    cr_assert_eq(combine_ref(d, 4, src2dst, w, out, 1, 2, H, 2.5f), 0);
    expect_row(out, (float[H]){1.25f, 2.5f, 3.75f, 5, 6.25f, 7.5f, 8.75f, 10}, 0);
    cr_assert_eq(combine_ref(d, 4, src2dst, w, out, 1, 2, H, 0.0f), 0);
    expect_row(out, (float[H]){0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f, 4}, 0);
}

/* 1 + 2^-8 + 2^-30 lies just above the halfway point between bf16 1.0 and
 * 1 + 2^-7: rounded once it goes up; rounded to float first it would be the
 * tie 1 + 2^-8 and go to even 1.0. Exact ties go to even both ways. */
Test(ref_combine, rounded_once_to_nearest_even)
{
    bf16_t d[3 * H], out[3 * H];
    for (int j = 0; j < H; j++) {
        d[0 * H + j] = float_to_bf16(1.0f);
        d[1 * H + j] = float_to_bf16(0x1p-8f);
        d[2 * H + j] = float_to_bf16(0x3p-8f);
    }
    const int32_t src2dst[] = {0, 1, 0, 1, 0, 2};
    const float w[] = {1.0f, 1.0f + 0x1p-22f, 1.0f, 1.0f, 1.0f, 1.0f};
    cr_assert_eq(combine_ref(d, 3, src2dst, w, out, 3, 2, H, 0.0f), 0);
    cr_assert_eq(float_to_bf16(1.0f + 0x1p-8f), 0x3f80, "the float-first path would tie down");
    for (int j = 0; j < H; j++) {
        cr_expect_eq(out[0 * H + j], 0x3f81, "just above the tie: %#x", out[j]);
        cr_expect_eq(out[1 * H + j], 0x3f80, "1 + 2^-8 ties to even 1.0: %#x", out[H + j]);
        cr_expect_eq(out[2 * H + j], 0x3f82, "1 + 3 * 2^-8 ties to even: %#x", out[2 * H + j]);
    }
}

Test(ref_combine, sums_past_bf16_range_round_to_infinity)
{
    bf16_t d[H], out[H];
    for (int j = 0; j < H; j++)
        d[j] = float_to_bf16(j % 2 ? -3.0e38f : 3.0e38f);
    const int32_t src2dst[] = {0, 0};
    const float w[] = {1.0f, 1.0f};
    cr_assert_eq(combine_ref(d, 1, src2dst, w, out, 1, 2, H, 0.0f), 0);
    for (int j = 0; j < H; j++)
        cr_expect_eq(out[j], j % 2 ? 0xff80 : 0x7f80, "col %d: %#x", j, out[j]);
}

Test(ref_combine, out_of_range_entries_counted_and_skipped)
{
    bf16_t d[4 * H], out[3 * H];
    four_rows(d);
    const int32_t src2dst[] = {2, 0, -2, 1, INT32_MAX, INT32_MIN};
    const float w[] = {1.0f, 0.5f, 1.0f, 2.0f, 1.0f, 1.0f};
    cr_assert_eq(combine_ref(d, 2, src2dst, w, out, 3, 2, H, 0.0f), 4,
                 "rows 2 and INT32_MAX (>= d_rows = 2), -2 and INT32_MIN");
    expect_row(out, (float[H]){0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f, 4}, 0);
    expect_row(out, (float[H]){-2, -4, -6, -8, -10, -12, -14, -16}, 1);
    expect_row(out, (float[H]){0, 0, 0, 0, 0, 0, 0, 0}, 2);
}

Test(ref_combine, zero_tokens_write_nothing)
{
    bf16_t d[H] = {0}, out[H];
    for (int j = 0; j < H; j++)
        out[j] = 0xa5a5;
    cr_assert_eq(combine_ref(d, 1, NULL, NULL, out, 0, 8, H, 0.0f), 0);
    for (int j = 0; j < H; j++)
        cr_expect_eq(out[j], 0xa5a5);
}
