/* GPU suite: SiLU-and-mul (masked and contiguous rows, bf16 and e4m3 output)
 * against the CPU reference on fresh random inputs, with poisoned outputs and
 * scales, and guard bytes past both. */
#include "gpu_support.h"
#include "numeric.h"
#include "quant_ref.h"
#include "silu_mul_ref.h"

#include <math.h>
#include <stdio.h>

enum { POISON = 0xA5, GUARD_BYTES = 4096, GROUP = 128 };

typedef struct silu_case {
    mf_layout layout;
    mf_dtype out_dtype;       /* 0: bf16                                        */
    int ue8m0;
    int experts, max_m;       /* masked                                         */
    int m_capacity;           /* contiguous                                     */
    int n;
    int expected_m;           /* host hint; deliberately wrong in some cases    */
    const int32_t *counts;    /* masked: NULL = random in [0, max_m] with zeros and full rows */
    const int32_t *m_indices; /* contiguous: NULL = random (see random_m_indices) */
    int align;                /* contiguous random: segment alignment, 0 = rows invalid at random */
    float range;              /* inputs uniform in [-range, range]; 0 = 6       */
} silu_case;

/* Everything a case computes on the host: inputs, routing, which rows are valid. */
typedef struct silu_data {
    int64_t rows;
    size_t out_bytes, scale_bytes;
    bf16_t *input;
    int32_t *routing; /* masked_m [E] or m_indices [m_capacity] */
    size_t routing_count;
    uint8_t *valid;   /* [rows] */
} silu_data;

static int is_fp8(const silu_case *c)
{
    return c->out_dtype == MF_DTYPE_E4M3;
}

static int is_masked(const silu_case *c)
{
    return c->layout == MF_LAYOUT_MASKED;
}

static void random_counts(mf_rng *rng, int32_t *counts, int experts, int max_m)
{
    for (int e = 0; e < experts; e++) {
        int pick = mf_rng_int(rng, 0, 3);
        counts[e] = pick == 0 ? 0 : pick == 1 ? max_m : mf_rng_int(rng, 1, max_m);
    }
    counts[0] = experts > 1 ? max_m : counts[0]; /* expert 0 is an expert like any other */
}

/* align > 0: what preprocess builds, segments of experts 0, 1, ... (some empty)
 * starting at multiples of align, -1 between them and after the last; align 0:
 * each row invalid with probability 1/3, else a random id. */
static void random_m_indices(mf_rng *rng, int32_t *m_indices, int m_capacity, int align)
{
    for (int r = 0; r < m_capacity; r++)
        m_indices[r] = align ? -1 : mf_rng_int(rng, 0, 2) == 0 ? -1 : mf_rng_int(rng, 0, 300);
    for (int e = 0, pos = 0; align && pos < m_capacity; e++) {
        int count = mf_rng_int(rng, 0, 3) == 0 ? 0 : mf_rng_int(rng, 1, 3 * align);
        for (int r = pos; r < pos + count && r < m_capacity; r++)
            m_indices[r] = e;
        pos += (count + align - 1) / align * align;
    }
}

static silu_data make_data(mf_rng *rng, const silu_case *c)
{
    silu_data d = {.rows = is_masked(c) ? (int64_t)c->experts * c->max_m : c->m_capacity};
    d.out_bytes = (size_t)d.rows * c->n * (is_fp8(c) ? 1 : 2);
    d.scale_bytes = is_fp8(c) ? (size_t)d.rows * (c->n / GROUP) * sizeof(float) : 0;
    size_t in_elems = (size_t)d.rows * 2 * c->n;
    d.routing_count = is_masked(c) ? (size_t)c->experts : (size_t)c->m_capacity;
    d.input = malloc(in_elems * 2);
    d.routing = malloc(d.routing_count * sizeof(int32_t));
    d.valid = malloc((size_t)d.rows);
    cr_assert(d.input && d.routing && d.valid);
    float range = c->range ? c->range : 6.0f;
    mf_fill_bf16(rng, d.input, in_elems, -range, range);
    const int32_t *given = is_masked(c) ? c->counts : c->m_indices;
    if (given)
        memcpy(d.routing, given, d.routing_count * sizeof(int32_t));
    else if (is_masked(c))
        random_counts(rng, d.routing, c->experts, c->max_m);
    else
        random_m_indices(rng, d.routing, c->m_capacity, c->align);
    for (int64_t row = 0; row < d.rows; row++) {
        if (is_masked(c)) {
            int32_t count = d.routing[row / c->max_m];
            d.valid[row] = row % c->max_m < (count < 0 ? 0 : count);
        } else {
            d.valid[row] = d.routing[row] >= 0;
        }
    }
    return d;
}

static void free_data(silu_data *d)
{
    free(d->input);
    free(d->routing);
    free(d->valid);
}

/* Index in out_scale of (row, group), as moeforge.h lays the scales out. */
static size_t scale_index(const silu_case *c, int64_t row, int group)
{
    if (!is_masked(c))
        return (size_t)group * c->m_capacity + (size_t)row;
    int64_t e = row / c->max_m, r = row % c->max_m;
    return ((size_t)e * (c->n / GROUP) + group) * c->max_m + (size_t)r;
}

static void expect_untouched(const uint8_t *bytes, size_t count, const char *what, int64_t row)
{
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(bytes[i], POISON, "%s of invalid row %lld written (byte %zu)", what,
                     (long long)row, i);
}

static void check_guard(const uint8_t *got, size_t bytes, const char *what)
{
    for (size_t i = 0; i < GUARD_BYTES; i++)
        cr_assert_eq(got[bytes + i], POISON, "guard byte %zu past the %s changed", i, what);
}

/* Written rows within 1 bf16 ulp of the reference; other rows still poisoned. */
static void check_bf16(const silu_case *c, const silu_data *d, const uint8_t *got)
{
    bf16_t *ref = malloc(d->out_bytes);
    cr_assert(ref);
    if (is_masked(c))
        silu_mul_masked_ref(d->input, ref, d->routing, c->experts, c->max_m, c->n);
    else
        silu_mul_contiguous_ref(d->input, ref, d->routing, c->m_capacity, c->n);
    const bf16_t *out = (const bf16_t *)got;
    for (int64_t row = 0; row < d->rows; row++) {
        size_t base = (size_t)row * c->n;
        if (!d->valid[row]) {
            expect_untouched(got + base * 2, (size_t)c->n * 2, "output", row);
            continue;
        }
        for (int j = 0; j < c->n; j++) {
            int ulps = bf16_ulp_distance(out[base + j], ref[base + j]);
            cr_assert_leq(ulps, 1, "row %lld col %d: got %g want %g (%d ulps)", (long long)row, j,
                          bf16_to_float(out[base + j]), bf16_to_float(ref[base + j]), ulps);
        }
    }
    check_guard(got, d->out_bytes, "output");
    free(ref);
}

static int f32_ulp_distance(float a, float b)
{
    if (isnan(a) || isnan(b))
        return 1 << 30;
    int32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    int64_t ox = x < 0 ? -(int64_t)(x & 0x7fffffff) : x;
    int64_t oy = y < 0 ? -(int64_t)(y & 0x7fffffff) : y;
    int64_t dist = ox > oy ? ox - oy : oy - ox;
    return dist > (1 << 30) ? 1 << 30 : (int)dist;
}

static int is_power_of_two(float s)
{
    uint32_t bits;
    memcpy(&bits, &s, 4);
    return s > 0.0f && isfinite(s) && (bits & 0x7fffffu) == 0;
}

/* Written values within 1 e4m3 ulp and scales within 1 fp32 ulp of the
 * reference (ue8m0: powers of two); invalid rows' values and scales poisoned. */
static void check_e4m3(const silu_case *c, const silu_data *d, const uint8_t *got,
                       const uint8_t *got_scale)
{
    uint8_t *ref = malloc(d->out_bytes);
    float *ref_scale = malloc(d->scale_bytes);
    cr_assert(ref && ref_scale);
    if (is_masked(c))
        silu_mul_masked_e4m3_ref(d->input, ref, ref_scale, d->routing, c->experts, c->max_m, c->n,
                                 c->ue8m0);
    else
        silu_mul_contiguous_e4m3_ref(d->input, ref, ref_scale, d->routing, c->m_capacity, c->n,
                                     c->ue8m0);
    const float *scale = (const float *)got_scale;
    size_t groups = 0, scale_diffs = 0, value_diffs = 0;
    for (int64_t row = 0; row < d->rows; row++) {
        size_t base = (size_t)row * c->n;
        for (int g = 0; g < c->n / GROUP; g++) {
            size_t at = scale_index(c, row, g);
            if (!d->valid[row]) {
                expect_untouched(got_scale + at * sizeof(float), sizeof(float), "scale", row);
                continue;
            }
            groups++;
            scale_diffs += scale[at] != ref_scale[at];
            cr_assert_leq(f32_ulp_distance(scale[at], ref_scale[at]), 1,
                          "row %lld group %d: scale %.9g want %.9g", (long long)row, g, scale[at],
                          ref_scale[at]);
            if (c->ue8m0)
                cr_assert(is_power_of_two(scale[at]), "row %lld group %d: ue8m0 scale %.9g",
                          (long long)row, g, scale[at]);
        }
        if (!d->valid[row]) {
            expect_untouched(got + base, (size_t)c->n, "output", row);
            continue;
        }
        for (int j = 0; j < c->n; j++) {
            value_diffs += got[base + j] != ref[base + j];
            cr_assert_leq(e4m3_ulp_distance(got[base + j], ref[base + j]), 1,
                          "row %lld col %d: got %#x (%g) want %#x (%g)", (long long)row, j,
                          got[base + j], e4m3_to_float(got[base + j]), ref[base + j],
                          e4m3_to_float(ref[base + j]));
        }
    }
    cr_log_info("%zu groups: %zu scales and %zu of %zu values differ from the reference by 1 ulp",
                groups, scale_diffs, value_diffs, groups * GROUP);
    check_guard(got, d->out_bytes, "output");
    check_guard(got_scale, d->scale_bytes, "scales");
    free(ref);
    free(ref_scale);
}

static void run_case(const silu_case *c)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    uint64_t seed = mf_rng_seed_from_time();
    mf_rng_init(&rng, seed);
    cr_log_info("seed %llu: %s %s%s E=%d max_m=%d m_capacity=%d n=%d", (unsigned long long)seed,
                is_masked(c) ? "masked" : "contiguous", is_fp8(c) ? "e4m3" : "bf16",
                c->ue8m0 ? " ue8m0" : "", c->experts, c->max_m, c->m_capacity, c->n);
    silu_data d = make_data(&rng, c);

    void *d_in = gpu_upload(ctx, d.input, (size_t)d.rows * 2 * c->n * 2);
    void *d_routing = gpu_upload(ctx, d.routing, d.routing_count * sizeof(int32_t));
    void *d_out = gpu_alloc_poisoned(ctx, d.out_bytes + GUARD_BYTES, POISON);
    void *d_scale = is_fp8(c) ? gpu_alloc_poisoned(ctx, d.scale_bytes + GUARD_BYTES, POISON) : NULL;
    mf_silu_mul_args args = {.layout = c->layout, .input = d_in, .output = d_out,
                             .masked_m = is_masked(c) ? d_routing : NULL,
                             .experts = c->experts, .max_m = c->max_m, .n = c->n,
                             .expected_m = c->expected_m,
                             .m_indices = is_masked(c) ? NULL : d_routing,
                             .m_capacity = c->m_capacity, .out_dtype = c->out_dtype,
                             .out_scale = d_scale, .ue8m0 = c->ue8m0};
    MF_OK_OR_FAIL(mf_silu_mul(ctx, &args, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    uint8_t *got = host_download(ctx, d_out, d.out_bytes + GUARD_BYTES);
    if (is_fp8(c)) {
        uint8_t *got_scale = host_download(ctx, d_scale, d.scale_bytes + GUARD_BYTES);
        check_e4m3(c, &d, got, got_scale);
        free(got_scale);
        mf_free(ctx, d_scale);
    } else {
        check_bf16(c, &d, got);
    }

    free(got);
    mf_free(ctx, d_in);
    mf_free(ctx, d_routing);
    mf_free(ctx, d_out);
    free_data(&d);
    mf_context_destroy(ctx);
}

/* ---- masked, bf16 ---------------------------------------------------------- */

Test(gpu_silu_mul, single_expert_full_rows)
{
    int32_t counts[] = {37};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 1, .max_m = 37, .n = 2048,
                          .counts = counts});
}

Test(gpu_silu_mul, empty_partial_and_full_experts)
{
    int32_t counts[] = {0, 5, 64, 0, 1, 63, 64, 0};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 8, .max_m = 64, .n = 768,
                          .expected_m = 16, .counts = counts});
}

Test(gpu_silu_mul, all_experts_empty)
{
    int32_t counts[4] = {0, 0, 0, 0};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 4, .max_m = 16, .n = 128,
                          .counts = counts});
}

Test(gpu_silu_mul, random_counts_many_experts_small_n)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 256, .max_m = 9, .n = 8,
                          .expected_m = 2});
}

Test(gpu_silu_mul, random_counts_deepseek_width)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 32, .max_m = 130, .n = 2048,
                          .expected_m = 64});
}

Test(gpu_silu_mul, wide_rows_h7168)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 3, .max_m = 20, .n = 7168});
}

Test(gpu_silu_mul, hint_far_below_actual_rows)
{
    int32_t counts[] = {1000, 999, 1};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 3, .max_m = 1000, .n = 1536,
                          .expected_m = 1, .counts = counts});
}

Test(gpu_silu_mul, out_of_range_counts_are_clamped)
{
    int32_t counts[] = {-5, 1 << 30, 7, -1};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .experts = 4, .max_m = 12, .n = 256,
                          .counts = counts});
}

/* ---- contiguous, bf16 --------------------------------------------------------- */

Test(gpu_silu_mul, contiguous_segments_with_padding)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .m_capacity = 1024, .n = 2048,
                          .align = 128});
}

Test(gpu_silu_mul, contiguous_invalid_rows_at_random_small_n)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .m_capacity = 3001, .n = 8});
}

Test(gpu_silu_mul, contiguous_first_and_last_rows)
{
    int32_t m_indices[] = {0, -1, -1, 5, -1, 2};
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .m_capacity = 6, .n = 776,
                          .m_indices = m_indices});
}

Test(gpu_silu_mul, contiguous_no_valid_rows)
{
    int32_t m_indices[256];
    for (int r = 0; r < 256; r++)
        m_indices[r] = -1;
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .m_capacity = 256, .n = 512,
                          .m_indices = m_indices});
}

/* ---- e4m3 ------------------------------------------------------------------------ */

Test(gpu_silu_mul, e4m3_masked_random_counts)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .out_dtype = MF_DTYPE_E4M3, .experts = 8,
                          .max_m = 70, .n = 2048, .expected_m = 32});
}

Test(gpu_silu_mul, e4m3_masked_ue8m0)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .out_dtype = MF_DTYPE_E4M3, .ue8m0 = 1,
                          .experts = 6, .max_m = 50, .n = 1536});
}

Test(gpu_silu_mul, e4m3_masked_single_group_many_experts)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .out_dtype = MF_DTYPE_E4M3,
                          .experts = 256, .max_m = 5, .n = 128, .expected_m = 2});
}

Test(gpu_silu_mul, e4m3_masked_empty_and_out_of_range_counts)
{
    int32_t counts[] = {-5, 1 << 30, 0, 7, -1, 3};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .out_dtype = MF_DTYPE_E4M3,
                          .experts = 6, .max_m = 12, .n = 384, .counts = counts});
}

Test(gpu_silu_mul, e4m3_masked_all_experts_empty)
{
    int32_t counts[3] = {0, 0, 0};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .out_dtype = MF_DTYPE_E4M3, .ue8m0 = 1,
                          .experts = 3, .max_m = 16, .n = 256, .counts = counts});
}

Test(gpu_silu_mul, e4m3_masked_hint_far_below_actual_rows)
{
    int32_t counts[] = {300, 1};
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .out_dtype = MF_DTYPE_E4M3,
                          .experts = 2, .max_m = 300, .n = 1024, .expected_m = 1,
                          .counts = counts});
}

Test(gpu_silu_mul, e4m3_tiny_values_use_the_floor_scale)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_MASKED, .out_dtype = MF_DTYPE_E4M3, .experts = 2,
                          .max_m = 16, .n = 512, .range = 1e-6f});
}

Test(gpu_silu_mul, e4m3_contiguous_segments_with_padding)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .out_dtype = MF_DTYPE_E4M3,
                          .m_capacity = 640, .n = 1536, .align = 64});
}

Test(gpu_silu_mul, e4m3_contiguous_ue8m0_invalid_rows_at_random)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .out_dtype = MF_DTYPE_E4M3,
                          .ue8m0 = 1, .m_capacity = 777, .n = 256});
}

Test(gpu_silu_mul, e4m3_contiguous_wide_rows_h7168)
{
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .out_dtype = MF_DTYPE_E4M3,
                          .m_capacity = 48, .n = 7168, .align = 8});
}

Test(gpu_silu_mul, e4m3_contiguous_no_valid_rows)
{
    int32_t m_indices[128];
    for (int r = 0; r < 128; r++)
        m_indices[r] = -1;
    run_case(&(silu_case){.layout = MF_LAYOUT_CONTIGUOUS, .out_dtype = MF_DTYPE_E4M3,
                          .m_capacity = 128, .n = 128, .m_indices = m_indices});
}

/* ---- refused calls ------------------------------------------------------------------ */

Test(gpu_silu_mul, bad_arguments_launch_nothing)
{
    mf_context *ctx = gpu_context_or_skip();
    uint8_t *d = gpu_alloc_poisoned(ctx, 1 << 16, POISON);
    void *out = d + 4096;
    float *scale = (float *)(d + 8192), *odd_scale = (float *)(d + 8194);
    const mf_layout masked = MF_LAYOUT_MASKED, contiguous = MF_LAYOUT_CONTIGUOUS;
    const mf_dtype e4m3 = MF_DTYPE_E4M3;
    const struct {
        const char *what;
        mf_silu_mul_args args;
        mf_status want;
    } bad[] = {
        {"output + 2", {.layout = masked, .input = d, .output = d + 4098, .masked_m = (void *)d,
                        .experts = 1, .max_m = 4, .n = 128}, MF_ERR_MISALIGNED},
        {"n = 12", {.layout = masked, .input = d, .output = out, .masked_m = (void *)d,
                    .experts = 1, .max_m = 4, .n = 12}, MF_ERR_MISALIGNED},
        {"max_m = 0", {.layout = masked, .input = d, .output = out, .masked_m = (void *)d,
                       .experts = 1, .n = 128}, MF_ERR_INVALID_ARGUMENT},
        {"m_capacity = 0", {.layout = contiguous, .input = d, .output = out,
                            .m_indices = (void *)d, .n = 128}, MF_ERR_INVALID_ARGUMENT},
        {"m_indices NULL", {.layout = contiguous, .input = d, .output = out, .m_capacity = 4,
                            .n = 128}, MF_ERR_INVALID_ARGUMENT},
        {"e4m3, n = 192", {.layout = masked, .input = d, .output = out, .masked_m = (void *)d,
                           .experts = 1, .max_m = 4, .n = 192, .out_dtype = e4m3,
                           .out_scale = scale}, MF_ERR_MISALIGNED},
        {"e4m3, out_scale NULL", {.layout = masked, .input = d, .output = out,
                                  .masked_m = (void *)d, .experts = 1, .max_m = 4, .n = 128,
                                  .out_dtype = e4m3}, MF_ERR_INVALID_ARGUMENT},
        {"e4m3, out_scale + 2", {.layout = contiguous, .input = d, .output = out,
                                 .m_indices = (void *)d, .m_capacity = 4, .n = 128,
                                 .out_dtype = e4m3, .out_scale = odd_scale}, MF_ERR_MISALIGNED},
        {"bf16 with ue8m0", {.layout = masked, .input = d, .output = out, .masked_m = (void *)d,
                             .experts = 1, .max_m = 4, .n = 128, .ue8m0 = 1},
         MF_ERR_INVALID_ARGUMENT},
        {"out_dtype f32", {.layout = masked, .input = d, .output = out, .masked_m = (void *)d,
                           .experts = 1, .max_m = 4, .n = 128, .out_dtype = MF_DTYPE_F32},
         MF_ERR_UNSUPPORTED},
        {"out_dtype 42", {.layout = masked, .input = d, .output = out, .masked_m = (void *)d,
                          .experts = 1, .max_m = 4, .n = 128, .out_dtype = (mf_dtype)42},
         MF_ERR_INVALID_ARGUMENT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(mf_silu_mul(ctx, &bad[i].args, NULL), bad[i].want, "%s: %s", bad[i].what,
                     mf_last_error());
    expect_bytes_untouched(ctx, d, 1 << 16, POISON);
    mf_free(ctx, d);
    mf_context_destroy(ctx);
}
