/* CPU suite: the SiLU-and-mul references on hand-computed cases (values from
 * silu(x) = x / (1 + e^-x) worked out in double beforehand). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "quant_ref.h"
#include "silu_mul_ref.h"

enum { UNTOUCHED_BF16 = 0x7777, UNTOUCHED_BYTE = 0x55 };
static const float UNTOUCHED_SCALE = -1234.5f;

/* A row of 2n bf16: gate[j] then up[j]. */
static void set_pair(bf16_t *row, int n, int j, float gate, float up)
{
    row[j] = float_to_bf16(gate);
    row[n + j] = float_to_bf16(up);
}

static int f32_ulp_distance(float a, float b)
{
    int32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    x = x < 0 ? INT32_MIN - x : x;
    y = y < 0 ? INT32_MIN - y : y;
    return x > y ? x - y : y - x;
}

Test(ref_silu_mul, bf16_known_values)
{
    enum { N = 8 };
    const float gate[N] = {1, -1, 2, 0, -6, 6, 1, 1};
    const float up[N] = {1, 1, 3, 5, 1, -2, 0, -1};
    /* silu(g) * u in double, then bf16: 0.7310586 -> 0.73046875, -0.2689414 ->
     * -0.26953125, 5.2847825 -> 5.28125, 0, -0.0148357 -> -0.01483154296875,
     * -11.9703285 -> -12, 0, -0.7310586 -> -0.73046875. */
    const float want[N] = {0.73046875f, -0.26953125f, 5.28125f, 0.0f,
                           -0.01483154296875f, -12.0f, 0.0f, -0.73046875f};
    bf16_t in[2 * N], out[N];
    for (int j = 0; j < N; j++)
        set_pair(in, N, j, gate[j], up[j]);
    int32_t count = 1;
    silu_mul_masked_ref(in, out, &count, 1, 1, N);
    for (int j = 0; j < N; j++)
        cr_expect_eq(bf16_to_float(out[j]), want[j], "col %d: got %.9g want %.9g", j,
                     bf16_to_float(out[j]), want[j]);
}

Test(ref_silu_mul, fp32_product_follows_the_kernel_steps)
{
    cr_expect_eq(silu_mul_product_f32(0.0f, 5.0f), 0.0f);
    /* 1 / (1 + e^-1) = 0.73105857863: the nearest fp32 is 0.731058597564697. */
    cr_expect_eq(silu_mul_product_f32(1.0f, 1.0f), 0.731058597564697f);
    /* Every bf16 gate in [-8, 8] with a few ups: four fp32 roundings stay
     * within 3 ulp of the product computed in double. */
    for (int bits = 0; bits < 0x10000; bits++) {
        float g = bf16_to_float((bf16_t)bits);
        if (!(fabsf(g) <= 8.0f))
            continue;
        for (float u = -3.0f; u <= 3.0f; u += 0.625f) {
            double exact = g / (1.0 + exp(-(double)g)) * u;
            float got = silu_mul_product_f32(g, u);
            cr_assert_leq(f32_ulp_distance(got, (float)exact), 3, "g %g u %g: %.9g vs %.9g", g,
                          u, got, exact);
        }
    }
}

Test(ref_silu_mul, masked_rows_clamped_and_others_untouched)
{
    enum { E = 3, MAX_M = 2, N = 8 };
    bf16_t in[E * MAX_M * 2 * N], out[E * MAX_M * N];
    for (int i = 0; i < E * MAX_M * 2 * N; i++)
        in[i] = float_to_bf16(1.0f);
    for (int i = 0; i < E * MAX_M * N; i++)
        out[i] = UNTOUCHED_BF16;
    const int32_t counts[E] = {-3, 1, 1 << 30}; /* clamped to 0, 1, 2 */
    silu_mul_masked_ref(in, out, counts, E, MAX_M, N);
    const int written[E][MAX_M] = {{0, 0}, {1, 0}, {1, 1}};
    for (int e = 0; e < E; e++)
        for (int r = 0; r < MAX_M; r++)
            for (int j = 0; j < N; j++) {
                bf16_t v = out[(e * MAX_M + r) * N + j];
                cr_expect_eq(v, written[e][r] ? 0x3f3b : UNTOUCHED_BF16,
                             "expert %d row %d col %d: %#x", e, r, j, v);
            }
}

Test(ref_silu_mul, contiguous_rows_by_m_indices)
{
    enum { ROWS = 5, N = 8 };
    bf16_t in[ROWS * 2 * N], out[ROWS * N];
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < N; j++)
            set_pair(in + r * 2 * N, N, j, 2.0f, (float)(r + 1));
    for (int i = 0; i < ROWS * N; i++)
        out[i] = UNTOUCHED_BF16;
    const int32_t m_indices[ROWS] = {-1, 0, 7, -1, 0}; /* any id >= 0 is a valid row */
    silu_mul_contiguous_ref(in, out, m_indices, ROWS, N);
    /* silu(2) = 1.7615942: times 2 -> 3.5231884 (bf16 3.515625), times 3 ->
     * 5.2847825 (5.28125), times 5 -> 8.8079708 (8.8125). */
    const float want[ROWS] = {0, 3.515625f, 5.28125f, 0, 8.8125f};
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < N; j++) {
            bf16_t v = out[r * N + j];
            if (m_indices[r] < 0)
                cr_expect_eq(v, UNTOUCHED_BF16, "padding row %d col %d written", r, j);
            else
                cr_expect_eq(bf16_to_float(v), want[r], "row %d col %d: %g", r, j,
                             bf16_to_float(v));
        }
}

/* One masked row of 128 columns: zeros but for col 5 = silu(4) * 2 (the amax),
 * col 9 = silu(4) * -1 (exactly -amax / 2) and col 100 = silu(-1) * 1. */
static void quantize_known_group(int ue8m0, uint8_t q[128], float *scale)
{
    enum { N = 128 };
    bf16_t in[2 * N];
    for (int j = 0; j < N; j++)
        set_pair(in, N, j, 0.0f, 0.0f);
    set_pair(in, N, 5, 4.0f, 2.0f);
    set_pair(in, N, 9, 4.0f, -1.0f);
    set_pair(in, N, 100, -1.0f, 1.0f);
    int32_t count = 1;
    silu_mul_masked_e4m3_ref(in, q, scale, &count, 1, 1, N, ue8m0);
}

Test(ref_silu_mul, e4m3_group_with_known_amax)
{
    uint8_t q[128];
    float scale;
    quantize_known_group(0, q, &scale);
    /* amax = 8 / (1 + e^-4) = 7.8561103; scale = amax / 448 = 0.0175359603. */
    float amax = silu_mul_product_f32(4.0f, 2.0f);
    cr_expect_lt(fabsf(amax - 7.8561103f), 1e-6f);
    cr_expect_eq(scale, amax / 448.0f, "scale %.9g", scale);
    cr_expect_lt(fabsf(scale - 0.0175359603f), 1e-9f);
    cr_expect_eq(q[5], 0x7e, "amax -> 448, got %#x", q[5]);
    cr_expect_eq(q[9], 0xf6, "-amax/2 -> -224, got %#x", q[9]);
    /* -0.2689414 / 0.01753596 = -15.3365 -> -15 (e4m3 steps of 1 in [8, 16)). */
    cr_expect_eq(q[100], 0xd7, "got %#x (%g)", q[100], e4m3_to_float(q[100]));
    for (int j = 0; j < 128; j++)
        if (j != 5 && j != 9 && j != 100)
            cr_expect_eq(q[j], 0, "col %d: %#x", j, q[j]);
}

Test(ref_silu_mul, e4m3_ue8m0_scale_is_a_power_of_two)
{
    uint8_t q[128];
    float scale;
    quantize_known_group(1, q, &scale);
    /* 0.01753596 rounds up to 2^-5; 7.8561103 / 2^-5 = 251.4 -> 256, -125.7 -> -128,
     * -0.2689414 / 2^-5 = -8.606 -> -9 (steps of 1 in [8, 16)). */
    cr_expect_eq(scale, 0.03125f, "scale %.9g", scale);
    cr_expect_eq(q[5], 0x78, "got %#x", q[5]);
    cr_expect_eq(q[9], 0xf0, "got %#x", q[9]);
    cr_expect_eq(q[100], 0xd1, "got %#x (%g)", q[100], e4m3_to_float(q[100]));
    /* A scale that is already a power of two stays as it is, not doubled. */
    cr_expect_eq(quant_scale_ref(448.0f * 0.25f, 1), 0.25f);
    cr_expect_eq(quant_scale_ref(448.0f * 0.25f * 1.0000001f, 1), 0.5f);
}

Test(ref_silu_mul, e4m3_amax_saturates_never_nan)
{
    enum { N = 128 };
    bf16_t in[2 * N];
    /* Odd columns are silu(6) * -6 = -35.910988 (the amax, negative), even ones
     * silu(6) * -5.5. amax / scale divides to -448 and must give -448 (0xfe),
     * never NaN (0xff). With ue8m0 the scale is 0.0801585 -> 2^-3: -287.3 -> -288. */
    for (int j = 0; j < N; j++)
        set_pair(in, N, j, 6.0f, j % 2 ? -6.0f : -5.5f);
    uint8_t q[N];
    float scale;
    int32_t count = 1;
    for (int ue8m0 = 0; ue8m0 <= 1; ue8m0++) {
        silu_mul_masked_e4m3_ref(in, q, &scale, &count, 1, 1, N, ue8m0);
        cr_expect_eq(scale, ue8m0 ? 0.125f : silu_mul_product_f32(6.0f, 6.0f) / 448.0f);
        for (int j = 1; j < N; j += 2)
            cr_expect_eq(q[j], ue8m0 ? 0xf9 : 0xfe, "ue8m0 %d col %d: %#x (%g) scale %g", ue8m0,
                         j, q[j], e4m3_to_float(q[j]), scale);
    }
    /* Past the largest finite value the conversion saturates. */
    cr_expect_eq(e4m3_from_float(1e6f), 0x7e);
    cr_expect_eq(e4m3_from_float(-500.0f), 0xfe);
}

Test(ref_silu_mul, e4m3_zero_group_uses_the_floor_scale)
{
    enum { N = 256 };
    bf16_t in[2 * N];
    for (int j = 0; j < N; j++)
        set_pair(in, N, j, j < 128 ? 3.0f : 0.0f, j < 128 ? 0.0f : 2.0f);
    uint8_t q[N];
    float scales[2];
    int32_t count = 1;
    silu_mul_masked_e4m3_ref(in, q, scales, &count, 1, 1, N, 0);
    for (int g = 0; g < 2; g++)
        cr_expect_eq(scales[g], 1e-10f / 448.0f, "group %d scale %g", g, scales[g]);
    for (int j = 0; j < N; j++)
        cr_expect_eq(q[j], 0, "col %d: %#x", j, q[j]);
}

/* Rows of gate 4 whose group k of row r peaks at its first column with up =
 * r * (n/128) + k + 1 (other ups 0): every (row, group) gets its own amax,
 * silu(4) * that, quantized to 448 (0x7e). */
static void fill_group_peaks(bf16_t *in, int rows, int n)
{
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++)
            set_pair(in + (size_t)r * 2 * n, n, j, 4.0f,
                     j % 128 ? 0.0f : (float)(r * (n / 128) + j / 128 + 1));
}

/* Scale of (e, r, g) at (e * n/128 + g) * max_m + r; rows past masked_m untouched. */
Test(ref_silu_mul, e4m3_masked_scale_layout)
{
    enum { E = 2, MAX_M = 3, N = 256, G = N / 128 };
    bf16_t in[E * MAX_M * 2 * N];
    fill_group_peaks(in, E * MAX_M, N);
    uint8_t q[E * MAX_M * N];
    float scales[E * G * MAX_M];
    memset(q, UNTOUCHED_BYTE, sizeof q);
    for (int i = 0; i < E * G * MAX_M; i++)
        scales[i] = UNTOUCHED_SCALE;
    const int32_t counts[E] = {2, 9}; /* expert 1 clamped to 3 rows */
    silu_mul_masked_e4m3_ref(in, q, scales, counts, E, MAX_M, N, 0);
    for (int e = 0; e < E; e++)
        for (int r = 0; r < MAX_M; r++)
            for (int g = 0; g < G; g++) {
                float got = scales[(e * G + g) * MAX_M + r];
                int row = e * MAX_M + r;
                if (r >= (e == 0 ? 2 : 3)) {
                    cr_expect_eq(got, UNTOUCHED_SCALE, "expert %d row %d group %d written", e,
                                 r, g);
                    cr_expect_eq(q[row * N + g * 128], UNTOUCHED_BYTE);
                    continue;
                }
                float want = silu_mul_product_f32(4.0f, (float)(row * G + g + 1)) / 448.0f;
                cr_expect_eq(got, want, "expert %d row %d group %d: %g want %g", e, r, g, got,
                             want);
                cr_expect_eq(q[row * N + g * 128], 0x7e);
            }
}

/* Scale of (r, g) at g * m_capacity + r; padding rows untouched. */
Test(ref_silu_mul, e4m3_contiguous_scale_layout)
{
    enum { ROWS = 4, N = 256, G = N / 128 };
    bf16_t in[ROWS * 2 * N];
    fill_group_peaks(in, ROWS, N);
    uint8_t q[ROWS * N];
    float scales[G * ROWS];
    memset(q, UNTOUCHED_BYTE, sizeof q);
    for (int i = 0; i < G * ROWS; i++)
        scales[i] = UNTOUCHED_SCALE;
    const int32_t m_indices[ROWS] = {-1, 3, -1, 0};
    silu_mul_contiguous_e4m3_ref(in, q, scales, m_indices, ROWS, N, 0);
    for (int r = 0; r < ROWS; r++)
        for (int g = 0; g < G; g++) {
            float got = scales[g * ROWS + r];
            if (m_indices[r] < 0) {
                cr_expect_eq(got, UNTOUCHED_SCALE, "padding row %d group %d written", r, g);
                for (int j = 0; j < 128; j++)
                    cr_expect_eq(q[r * N + g * 128 + j], UNTOUCHED_BYTE);
                continue;
            }
            float want = silu_mul_product_f32(4.0f, (float)(r * G + g + 1)) / 448.0f;
            cr_expect_eq(got, want, "row %d group %d: %g want %g", r, g, got, want);
        }
}
