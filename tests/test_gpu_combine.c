/* GPU suite: combine against the CPU reference on fresh random inputs, with a
 * poisoned output, guard bytes past it and the device error flag checked. */
#include "combine_ref.h"
#include "gpu_support.h"
#include "numeric.h"

#include <math.h>
#include <stdio.h>

enum { POISON = 0xA5, GUARD_BYTES = 4096, SPARE_ROWS = 3 };

typedef enum routing {
    ROUTE_PERMUTED,    /* each slot its own row, about 1 in 8 skipped (-1); row 0 used */
    ROUTE_ALL_SKIPPED, /* every slot -1: zeros                                         */
    ROUTE_ROW0,        /* every token's first slot on row 0, the others anywhere       */
    ROUTE_OUT_OF_RANGE /* permuted, then about 1 in 5 slots outside [-1, d_rows)       */
} routing;

typedef struct combine_case {
    int tokens, topk, hidden;
    float scaling;
    routing route;
    int no_flag_word; /* error_flags = NULL */
} combine_case;

static const char *routing_name(routing r)
{
    static const char *names[] = {"permuted", "all skipped", "row 0", "out of range"};
    return names[r];
}

static void shuffle(mf_rng *rng, int32_t *v, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mf_rng_next(rng) % (uint64_t)(i + 1));
        int32_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static int32_t bad_row(mf_rng *rng, int64_t d_rows)
{
    switch (mf_rng_int(rng, 0, 4)) {
    case 0: return (int32_t)d_rows;
    case 1: return (int32_t)d_rows + mf_rng_int(rng, 1, 1000);
    case 2: return INT32_MAX;
    case 3: return -2;
    default: return INT32_MIN;
    }
}

static void route(mf_rng *rng, const combine_case *c, int32_t *src2dst, int64_t d_rows)
{
    int64_t slots = (int64_t)c->tokens * c->topk;
    for (int64_t s = 0; s < slots; s++)
        src2dst[s] = c->route == ROUTE_ALL_SKIPPED ? -1 : (int32_t)s;
    if (c->route == ROUTE_ALL_SKIPPED)
        return;
    shuffle(rng, src2dst, slots);
    for (int64_t s = 0; s < slots; s++) {
        if (c->route == ROUTE_ROW0)
            src2dst[s] = s % c->topk == 0 ? 0 : mf_rng_int(rng, 0, (int)d_rows - 1);
        if (src2dst[s] != 0 && mf_rng_int(rng, 0, 7) == 0)
            src2dst[s] = -1; /* row 0 stays in use */
        if (c->route == ROUTE_OUT_OF_RANGE && mf_rng_int(rng, 0, 4) == 0)
            src2dst[s] = bad_row(rng, d_rows);
    }
}

/* fp32 accumulation (K fma, one scaling product) can differ from the fp64
 * reference by more than the last bit where a sum cancels: allow 1 bf16 ulp,
 * or that accumulation's error bound (K + 2) * 2^-24 * scale * sum |w * d|
 * plus one bf16 ulp. NaN never passes. */
static double bf16_ulp_at(double x)
{
    if (x == 0.0)
        return 0x1p-133;
    int e;
    frexp(fabs(x), &e);
    return ldexp(1.0, (e - 8) < -133 ? -133 : e - 8);
}

static double magnitude(const combine_case *c, const bf16_t *d, int64_t d_rows,
                        const int32_t *src2dst, const float *w, int t, int j)
{
    double m = 0.0;
    for (int k = 0; k < c->topk; k++) {
        int64_t s = (int64_t)t * c->topk + k, row = src2dst[s];
        if (row >= 0 && row < d_rows)
            m += fabs(w[s] * (double)bf16_to_float(d[row * c->hidden + j]));
    }
    return m * fabs(c->scaling == 0.0f ? 1.0 : c->scaling);
}

static void check_output(const combine_case *c, const uint8_t *got_bytes, const bf16_t *ref,
                         const bf16_t *d, int64_t d_rows, const int32_t *src2dst,
                         const float *w)
{
    const bf16_t *got = (const bf16_t *)got_bytes;
    for (int t = 0; t < c->tokens; t++) {
        for (int j = 0; j < c->hidden; j++) {
            size_t i = (size_t)t * c->hidden + j;
            double g = bf16_to_float(got[i]), r = bf16_to_float(ref[i]);
            cr_assert(!isnan(g), "T=%d K=%d H=%d token %d col %d: NaN (%#x)", c->tokens,
                      c->topk, c->hidden, t, j, got[i]);
            if (bf16_ulp_distance(got[i], ref[i]) <= 1)
                continue;
            double bound = bf16_ulp_at(fmax(fabs(g), fabs(r))) +
                           (c->topk + 2) * 0x1p-24 * magnitude(c, d, d_rows, src2dst, w, t, j);
            cr_assert_leq(fabs(g - r), bound,
                          "T=%d K=%d H=%d token %d col %d: got %g want %g (bound %g)", c->tokens,
                          c->topk, c->hidden, t, j, g, r, bound);
        }
    }
    size_t out_bytes = (size_t)c->tokens * c->hidden * 2;
    for (size_t i = 0; i < GUARD_BYTES; i++)
        cr_assert_eq(got_bytes[out_bytes + i], POISON, "guard byte %zu past the output changed",
                     i);
}

static void run_case(const combine_case *c)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    uint64_t seed = mf_rng_seed_from_time();
    mf_rng_init(&rng, seed);
    cr_log_info("seed %llu: T=%d K=%d H=%d scaling=%g routing %s", (unsigned long long)seed,
                c->tokens, c->topk, c->hidden, c->scaling, routing_name(c->route));
    int64_t slots = (int64_t)c->tokens * c->topk, d_rows = slots + SPARE_ROWS;
    size_t d_elems = (size_t)d_rows * c->hidden, out_bytes = (size_t)c->tokens * c->hidden * 2;
    bf16_t *d = malloc(d_elems * 2), *ref = malloc(out_bytes + 2);
    int32_t *src2dst = malloc(sizeof(int32_t) * (size_t)(slots + 1));
    float *w = malloc(sizeof(float) * (size_t)(slots + 1));
    cr_assert(d && ref && src2dst && w);
    mf_fill_bf16(&rng, d, d_elems, -4.0f, 4.0f);
    for (int64_t s = 0; s < slots; s++)
        w[s] = mf_rng_uniform(&rng, 0.0f, 1.0f);
    route(&rng, c, src2dst, d_rows);
    int64_t flagged = combine_ref(d, d_rows, src2dst, w, ref, c->tokens, c->topk, c->hidden,
                                  c->scaling);
    cr_assert_eq(flagged > 0, c->route == ROUTE_OUT_OF_RANGE && slots > 0,
                 "%lld flagged entries", (long long)flagged);

    void *d_d = gpu_upload(ctx, d, d_elems * 2);
    void *d_src2dst = gpu_upload(ctx, src2dst, sizeof(int32_t) * (size_t)slots);
    void *d_w = gpu_upload(ctx, w, sizeof(float) * (size_t)slots);
    void *d_out = gpu_alloc_poisoned(ctx, out_bytes + GUARD_BYTES, POISON);
    int32_t *d_flags = gpu_alloc_poisoned(ctx, sizeof(int32_t), 0);
    mf_combine_args args = {.d = d_d, .d_rows = d_rows, .src2dst = d_src2dst,
                            .topk_weights = d_w, .out = d_out, .tokens = c->tokens,
                            .topk = c->topk, .hidden_size = c->hidden,
                            .routed_scaling = c->scaling,
                            .error_flags = c->no_flag_word ? NULL : d_flags};
    MF_OK_OR_FAIL(mf_combine(ctx, &args, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    uint8_t *got = host_download(ctx, d_out, out_bytes + GUARD_BYTES);
    check_output(c, got, ref, d, d_rows, src2dst, w);
    int32_t flags = -1;
    MF_OK_OR_FAIL(mf_error_flags_read(ctx, d_flags, &flags));
    int32_t want_flags = flagged > 0 && !c->no_flag_word ? MF_DEVICE_ERR_BAD_DST : 0;
    cr_assert_eq(flags, want_flags, "error flags %#x, want %#x", flags, want_flags);

    free(got);
    mf_free(ctx, d_d);
    mf_free(ctx, d_src2dst);
    mf_free(ctx, d_w);
    mf_free(ctx, d_out);
    mf_free(ctx, d_flags);
    free(d);
    free(ref);
    free(src2dst);
    free(w);
    mf_context_destroy(ctx);
}

/* K x H grid, each over T = 1, 255, 256, 4097 (one and several tokens per
 * block, partial last group, grid-stride and column-slice launches). */
static void run_token_counts(int topk, int hidden)
{
    static const int tokens[] = {1, 255, 256, 4097};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++)
        run_case(&(combine_case){tokens[i], topk, hidden, 0.0f, ROUTE_PERMUTED, 0});
}

Test(gpu_combine, k1_h128) { run_token_counts(1, 128); }
Test(gpu_combine, k1_h2048) { run_token_counts(1, 2048); }
Test(gpu_combine, k1_h7168) { run_token_counts(1, 7168); }
Test(gpu_combine, k2_h128) { run_token_counts(2, 128); }
Test(gpu_combine, k2_h2048) { run_token_counts(2, 2048); }
Test(gpu_combine, k2_h7168) { run_token_counts(2, 7168); }
Test(gpu_combine, k8_h128) { run_token_counts(8, 128); }
Test(gpu_combine, k8_h2048) { run_token_counts(8, 2048); }
Test(gpu_combine, k8_h7168) { run_token_counts(8, 7168); }

Test(gpu_combine, other_topk_and_odd_widths)
{
    run_case(&(combine_case){255, 3, 2048, 0.0f, ROUTE_PERMUTED, 0});
    run_case(&(combine_case){255, 4, 1032, 0.0f, ROUTE_PERMUTED, 0});
    run_case(&(combine_case){97, 32, 4096, 0.0f, ROUTE_PERMUTED, 0});
    run_case(&(combine_case){4097, 8, 8, 0.0f, ROUTE_PERMUTED, 0});
    run_case(&(combine_case){4097, 1, 8, 0.0f, ROUTE_PERMUTED, 0});
    run_case(&(combine_case){300, 32, 8, 0.0f, ROUTE_PERMUTED, 0});
}

Test(gpu_combine, all_slots_skipped_give_zeros)
{
    run_case(&(combine_case){256, 8, 2048, 2.5f, ROUTE_ALL_SKIPPED, 0});
    run_case(&(combine_case){1, 2, 7168, 0.0f, ROUTE_ALL_SKIPPED, 0});
}

Test(gpu_combine, row0_expert0_slots_included)
{
    run_case(&(combine_case){255, 8, 2048, 0.0f, ROUTE_ROW0, 0});
    run_case(&(combine_case){256, 1, 128, 0.0f, ROUTE_ROW0, 0});
}

Test(gpu_combine, routed_scaling_2_5)
{
    run_case(&(combine_case){256, 8, 7168, 2.5f, ROUTE_PERMUTED, 0});
    run_case(&(combine_case){255, 2, 2048, 2.5f, ROUTE_PERMUTED, 0});
}

Test(gpu_combine, out_of_range_dst_flagged_and_skipped)
{
    run_case(&(combine_case){255, 8, 2048, 0.0f, ROUTE_OUT_OF_RANGE, 0});
    run_case(&(combine_case){4097, 2, 128, 0.0f, ROUTE_OUT_OF_RANGE, 0});
    run_case(&(combine_case){256, 8, 7168, 0.0f, ROUTE_OUT_OF_RANGE, 1});
}

Test(gpu_combine, zero_tokens_launch_nothing)
{
    mf_context *ctx = gpu_context_or_skip();
    enum { BYTES = 1 << 16 };
    uint8_t *buf = gpu_alloc_poisoned(ctx, BYTES, POISON);
    mf_combine_args args = {.d = buf, .d_rows = 0, .src2dst = (int32_t *)(buf + 4096),
                            .topk_weights = (float *)(buf + 8192), .out = buf + 16384,
                            .tokens = 0, .topk = 8, .hidden_size = 7168,
                            .error_flags = (int32_t *)(buf + 32768)};
    MF_OK_OR_FAIL(mf_combine(ctx, &args, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    uint8_t *after = host_download(ctx, buf, BYTES);
    for (size_t i = 0; i < BYTES; i++)
        cr_assert_eq(after[i], POISON, "byte %zu changed with T = 0", i);
    free(after);
    mf_free(ctx, buf);
    mf_context_destroy(ctx);
}

static void expect_refused(mf_context *ctx, const mf_combine_args *args, mf_status want,
                           const char *field)
{
    mf_status s = mf_combine(ctx, args, NULL);
    cr_expect_eq(s, want, "%s: got %s, want %s", field, mf_status_string(s),
                 mf_status_string(want));
    cr_expect(strstr(mf_last_error(), field), "message \"%s\" does not name %s", mf_last_error(),
              field);
}

Test(gpu_combine, bad_arguments_change_nothing)
{
    mf_context *ctx = gpu_context_or_skip();
    enum { BYTES = 1 << 16 };
    uint8_t *buf = gpu_alloc_poisoned(ctx, BYTES, POISON);
    const mf_combine_args ok = {.d = buf, .d_rows = 4, .src2dst = (int32_t *)(buf + 4096),
                                .topk_weights = (float *)(buf + 8192), .out = buf + 16384,
                                .tokens = 2, .topk = 2, .hidden_size = 64,
                                .error_flags = (int32_t *)(buf + 32768)};
    mf_combine_args bad;
#define REFUSED(field, value, status)                      \
    do {                                                   \
        bad = ok;                                          \
        bad.field = value;                                 \
        expect_refused(ctx, &bad, status, #field);         \
    } while (0)
    REFUSED(d, NULL, MF_ERR_INVALID_ARGUMENT);
    REFUSED(src2dst, NULL, MF_ERR_INVALID_ARGUMENT);
    REFUSED(topk_weights, NULL, MF_ERR_INVALID_ARGUMENT);
    REFUSED(out, NULL, MF_ERR_INVALID_ARGUMENT);
    REFUSED(d, buf + 2, MF_ERR_MISALIGNED);
    REFUSED(out, buf + 16392, MF_ERR_MISALIGNED);
    REFUSED(hidden_size, 0, MF_ERR_INVALID_ARGUMENT);
    REFUSED(hidden_size, 4, MF_ERR_INVALID_ARGUMENT);
    REFUSED(hidden_size, -8, MF_ERR_INVALID_ARGUMENT);
    REFUSED(hidden_size, 12, MF_ERR_MISALIGNED);
    REFUSED(topk, 0, MF_ERR_INVALID_ARGUMENT);
    REFUSED(topk, 33, MF_ERR_INVALID_ARGUMENT);
    REFUSED(tokens, -1, MF_ERR_INVALID_ARGUMENT);
    REFUSED(d_rows, 0, MF_ERR_INVALID_ARGUMENT);
    REFUSED(d_rows, -5, MF_ERR_INVALID_ARGUMENT);
#undef REFUSED
    cr_expect_eq(mf_combine(ctx, NULL, NULL), MF_ERR_INVALID_ARGUMENT);
    expect_refused(NULL, &ok, MF_ERR_INVALID_ARGUMENT, "ctx");
    expect_bytes_untouched(ctx, buf, BYTES, POISON);
    mf_free(ctx, buf);
    mf_context_destroy(ctx);
}
