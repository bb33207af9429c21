/* CPU suite: the grouped-GEMM tile heuristic on a table of shapes (H200: 132 SMs). */
#include <criterion/criterion.h>
#include <string.h>

#include "moeforge.h"

typedef struct row {
    mf_dtype dtype;
    int m, n, k, groups;
    mf_gemm_config want;
} row;

enum { PORTABLE_CC = 80, HOPPER_CC = 90 };

/* The portable family (a device without wgmma, cc 8.0).
 * Large per-expert M: 128x128 tiles fill the waves. Decode-sized M (a few rows
 * per expert, many experts): 32-row tiles waste least. Narrow N not a multiple
 * of 64: the 32-column config. */
static const row portable_table[] = {
    {MF_DTYPE_BF16, 1024, 4096, 7168, 1, {128, 128, 2, 2, 3, MF_GEMM_PORTABLE}},
    {MF_DTYPE_BF16, 8192, 4096, 7168, 4, {128, 128, 2, 2, 3, MF_GEMM_PORTABLE}},
    {MF_DTYPE_BF16, 256, 2048, 768, 128, {128, 128, 2, 2, 3, MF_GEMM_PORTABLE}},
    {MF_DTYPE_BF16, 64, 4096, 7168, 32, {64, 128, 2, 2, 4, MF_GEMM_PORTABLE}},
    {MF_DTYPE_BF16, 1, 4096, 7168, 256, {32, 128, 1, 4, 4, MF_GEMM_PORTABLE}},
    {MF_DTYPE_BF16, 16, 4096, 7168, 256, {32, 128, 1, 4, 4, MF_GEMM_PORTABLE}},
    {MF_DTYPE_BF16, 100, 96, 128, 1, {64, 32, 2, 1, 4, MF_GEMM_PORTABLE}},
    {MF_DTYPE_E4M3, 1024, 7168, 2048, 1, {128, 128, 4, 2, 3, MF_GEMM_PORTABLE}},
    {MF_DTYPE_E4M3, 64, 7168, 2048, 32, {64, 128, 2, 2, 4, MF_GEMM_PORTABLE}},
    {MF_DTYPE_E4M3, 4, 4096, 7168, 256, {32, 128, 1, 4, 4, MF_GEMM_PORTABLE}},
};

static void check_table_in(mf_layout layout, const row *table, size_t rows, int cc)
{
    for (size_t i = 0; i < rows; i++) {
        const row *r = &table[i];
        mf_gemm_config got;
        cr_assert_eq(mf_gemm_choose(r->dtype, layout, r->m, r->n, r->k, r->groups, 132, cc, &got),
                     MF_OK, "%s", mf_last_error());
        cr_expect(memcmp(&got, &r->want, sizeof got) == 0,
                  "cc %d row %zu (m=%d n=%d k=%d g=%d): got bm=%d bn=%d wm=%d wn=%d stages=%d "
                  "family=%d", cc, i, r->m, r->n, r->k, r->groups, got.bm, got.bn, got.wm, got.wn,
                  got.stages, (int)got.family);
    }
}

static void check_table(const row *table, size_t rows, int cc)
{
    check_table_in(MF_LAYOUT_MASKED, table, rows, cc);
}

/* Hopper (cc 9.0): each pick was the fastest config of its shape in the H200
 * sweeps (examples/NOTES.md); N = 96 fits no wgmma tile and falls back.
 * e4m3 decode (64 rows per expert): 64x256 split over two math warpgroups. */
static const row hopper_table[] = {
    {MF_DTYPE_BF16, 1024, 4096, 7168, 1, {128, 256, 2, 1, 3, MF_GEMM_SM90}},
    {MF_DTYPE_BF16, 8192, 4096, 7168, 4, {128, 256, 2, 1, 3, MF_GEMM_SM90}},
    {MF_DTYPE_BF16, 1024, 7168, 2048, 1, {128, 224, 2, 1, 3, MF_GEMM_SM90}},
    {MF_DTYPE_BF16, 64, 4096, 7168, 32, {64, 256, 1, 1, 4, MF_GEMM_SM90}},
    {MF_DTYPE_BF16, 100, 96, 128, 1, {64, 32, 2, 1, 4, MF_GEMM_PORTABLE}},
    {MF_DTYPE_E4M3, 1024, 4096, 7168, 1, {256, 128, 2, 1, 3, MF_GEMM_SM90}},
    {MF_DTYPE_E4M3, 1024, 7168, 2048, 1, {256, 128, 2, 1, 3, MF_GEMM_SM90}},
    {MF_DTYPE_E4M3, 64, 4096, 7168, 32, {64, 256, 2, 1, 4, MF_GEMM_SM90}},
    {MF_DTYPE_E4M3, 256, 1536, 2048, 128, {256, 128, 2, 1, 3, MF_GEMM_SM90}},
};

Test(gemm_heuristic, portable_table_of_shapes)
{
    check_table(portable_table, sizeof portable_table / sizeof portable_table[0], PORTABLE_CC);
}

Test(gemm_heuristic, hopper_table_of_shapes)
{
    check_table(hopper_table, sizeof hopper_table / sizeof hopper_table[0], HOPPER_CC);
}

/* Contiguous e4m3 on Hopper: segments are 128-row aligned, so no 256-row
 * tiles; 128x256 (two column chunks) was the fastest there in the H200 sweeps. */
static const row hopper_contiguous_table[] = {
    {MF_DTYPE_E4M3, 1024, 4096, 7168, 1, {128, 256, 2, 1, 3, MF_GEMM_SM90}},
    {MF_DTYPE_E4M3, 1024, 7168, 2048, 1, {128, 256, 2, 1, 3, MF_GEMM_SM90}},
    {MF_DTYPE_E4M3, 256, 1536, 2048, 128, {128, 256, 2, 1, 3, MF_GEMM_SM90}},
};

Test(gemm_heuristic, hopper_contiguous_table_of_shapes)
{
    check_table_in(MF_LAYOUT_CONTIGUOUS, hopper_contiguous_table,
                   sizeof hopper_contiguous_table / sizeof hopper_contiguous_table[0], HOPPER_CC);
}

/* Every choice, on either kind of device, is a config of the families and
 * divides N; the same inputs give the same choice. */
static void check_choices(int cc, mf_dtype dtype)
{
    mf_gemm_config family[32];
    int count;
    cr_assert_eq(mf_gemm_configs(dtype, family, 32, &count), MF_OK);
    for (int m = 1; m <= 16384; m = m * 3 + 1)
        for (int n = 32; n <= 8192; n += 224) {
            mf_gemm_config c, again;
            cr_assert_eq(mf_gemm_choose(dtype, MF_LAYOUT_MASKED, m, n, 1024, 8, 132, cc, &c), MF_OK);
            mf_gemm_choose(dtype, MF_LAYOUT_MASKED, m, n, 1024, 8, 132, cc, &again);
            cr_assert(memcmp(&c, &again, sizeof c) == 0, "not deterministic");
            cr_assert_eq(n % c.bn, 0, "bn=%d does not divide n=%d", c.bn, n);
            cr_assert(cc == HOPPER_CC || c.family == MF_GEMM_PORTABLE, "sm90 family on cc %d", cc);
            int found = 0;
            for (int i = 0; i < count; i++)
                found |= memcmp(&family[i], &c, sizeof c) == 0;
            cr_assert(found, "choice outside the families");
        }
}

Test(gemm_heuristic, choice_is_one_of_the_families_and_divides_n)
{
    for (int dtype = MF_DTYPE_BF16; dtype <= MF_DTYPE_E4M3; dtype++) {
        check_choices(PORTABLE_CC, (mf_dtype)dtype);
        check_choices(HOPPER_CC, (mf_dtype)dtype);
    }
}

Test(gemm_heuristic, bad_inputs_refused)
{
    mf_gemm_config c;
    cr_expect_eq(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 100, 128, 1, 132, 90, &c),
                 MF_ERR_UNSUPPORTED);
    cr_expect_eq(mf_gemm_choose(MF_DTYPE_F32, MF_LAYOUT_MASKED, 4, 128, 128, 1, 132, 90, &c),
                 MF_ERR_INVALID_ARGUMENT);
    cr_expect_eq(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 128, 128, 0, 132, 90, &c),
                 MF_ERR_INVALID_ARGUMENT);
    cr_expect_eq(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 128, 128, 1, 132, 90, NULL),
                 MF_ERR_INVALID_ARGUMENT);
}
