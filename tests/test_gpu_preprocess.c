/* GPU suite: preprocess (masked and contiguous, bf16 and e4m3) against the CPU
 * reference on fresh random routing and hidden states; poisoned outputs and
 * guard bytes past every output. */
#include "gpu_support.h"
#include "preprocess_ref.h"

#include <math.h>
#include <stdio.h>

enum { POISON = 0xA7, GUARD = 4096 };

typedef enum routing { RANDOM, SKEWED, EXPERT0, ALL_SKIPPED, EVEN_ONLY, HOSTILE } routing;

typedef struct pre_case {
    int tokens, topk, experts, hidden;
    int contiguous;
    mf_dtype dtype;
    int ue8m0;
    routing routing;
    int max_m; /* masked; 0: the largest count + 3 */
    int align; /* contiguous; 0: 128 */
} pre_case;

/* K distinct experts per token drawn by the routing pattern; -1 for some slots. */
static void make_ids(mf_rng *rng, const pre_case *c, int32_t *ids)
{
    for (int t = 0; t < c->tokens; t++)
        for (int k = 0; k < c->topk; k++) {
            int32_t *slot = &ids[t * c->topk + k], e;
            int fresh;
            do {
                switch (c->routing) {
                case SKEWED: e = mf_rng_int(rng, 0, 9) < 8 ? mf_rng_int(rng, 0, 3) : mf_rng_int(rng, 0, c->experts - 1); break;
                case EXPERT0: e = 0; break;
                case ALL_SKIPPED: e = -1; break;
                case EVEN_ONLY: e = 2 * mf_rng_int(rng, 0, (c->experts - 1) / 2); break;
                case HOSTILE: e = mf_rng_int(rng, -3, c->experts + 2); break;
                default: e = mf_rng_int(rng, 0, 19) == 0 ? -1 : mf_rng_int(rng, 0, c->experts - 1);
                }
                fresh = 1;
                for (int j = 0; j < k && c->routing != HOSTILE && c->routing != EXPERT0; j++)
                    fresh &= e < 0 || ids[t * c->topk + j] != e;
                if (c->routing == SKEWED && k >= 4)
                    fresh &= e >= 4 || e < 0; /* four hot experts at most once each */
            } while (!fresh);
            *slot = e;
        }
}

/* Hidden rows with group magnitudes spread over 2^-8..2^8 so scales vary. */
static void make_hidden(mf_rng *rng, bf16_t *h, size_t rows, int hidden)
{
    for (size_t r = 0; r < rows; r++)
        for (int g = 0; g < hidden; g += 128) {
            float mag = ldexpf(1.0f, mf_rng_int(rng, -8, 8));
            int n = hidden - g < 128 ? hidden - g : 128;
            mf_fill_bf16(rng, h + r * (size_t)hidden + g, (size_t)n, -mag, mag);
        }
}

typedef struct device_buffers {
    void *ids, *hidden, *a, *scale, *src2dst, *meta, *flags, *workspace;
    size_t a_bytes, scale_bytes, meta_bytes, workspace_bytes;
} device_buffers;

static void check_guard(mf_context *ctx, void *base, size_t offset, const char *what)
{
    uint8_t *g = host_download(ctx, (char *)base + offset, GUARD);
    for (int i = 0; i < GUARD; i++)
        cr_assert_eq(g[i], POISON, "guard byte %d past %s changed", i, what);
    free(g);
}

static int is_power_of_two(float f)
{
    int e;
    return f > 0 && frexpf(f, &e) == 0.5f;
}

/* Index of (row, group g) in a_scale's MN-major layout. */
static size_t scale_at(const pre_case *c, const preprocess_ref_shape *s, int row, int g)
{
    size_t groups = (size_t)c->hidden / 128;
    return s->contiguous ? (size_t)g * s->m_capacity + (size_t)row
                         : ((size_t)(row / s->max_m) * groups + g) * s->max_m +
                               (size_t)(row % s->max_m);
}

/* Row content of every placed slot: bf16 copied exactly; e4m3 within 1 ulp and
 * scales equal to the reference's fp32 scale. */
static void check_rows(const pre_case *c, const preprocess_ref_shape *s, const bf16_t *hidden,
                       const int32_t *src2dst, const uint8_t *a, const float *scales)
{
    int H = c->hidden, groups = H / 128;
    uint8_t *q = malloc((size_t)H);
    float *sc = malloc(sizeof(float) * (size_t)(groups ? groups : 1));
    for (int slot = 0; slot < c->tokens * c->topk; slot++) {
        int row = src2dst[slot];
        if (row < 0)
            continue;
        const bf16_t *src = hidden + (size_t)(slot / c->topk) * H;
        if (c->dtype == MF_DTYPE_BF16) {
            cr_assert(memcmp(a + (size_t)row * H * 2, src, (size_t)H * 2) == 0,
                      "slot %d: row %d differs from token %d", slot, row, slot / c->topk);
            continue;
        }
        quantize_row_ref(src, H, c->ue8m0, q, sc);
        for (int i = 0; i < H; i++) {
            int d = e4m3_ulp_distance(a[(size_t)row * H + i], q[i]);
            cr_assert_leq(d, 1, "slot %d row %d col %d: %#x vs %#x", slot, row, i,
                          a[(size_t)row * H + i], q[i]);
        }
        for (int g = 0; g < groups; g++) {
            size_t at = scale_at(c, s, row, g);
            cr_assert_eq(scales[at], sc[g], "slot %d group %d: scale %a vs %a", slot, g,
                         scales[at], sc[g]);
            if (c->ue8m0)
                cr_assert(is_power_of_two(scales[at]), "scale %a is not a power of two", scales[at]);
        }
    }
    free(q);
    free(sc);
}

/* Rows of a no slot was placed in, and their scales, keep the poison. */
static void check_unplaced_rows_untouched(const pre_case *c, const preprocess_ref_shape *s,
                                          const int32_t *src2dst, const uint8_t *a,
                                          size_t a_bytes, const float *scales)
{
    int fp8 = c->dtype == MF_DTYPE_E4M3;
    size_t row_bytes = (size_t)c->hidden * (fp8 ? 1 : 2), rows = a_bytes / row_bytes;
    uint8_t *placed = calloc(rows, 1), *poison = malloc(row_bytes);
    memset(poison, POISON, row_bytes);
    for (int slot = 0; slot < c->tokens * c->topk; slot++)
        if (src2dst[slot] >= 0)
            placed[src2dst[slot]] = 1;
    for (size_t row = 0; row < rows; row++) {
        if (placed[row])
            continue;
        cr_assert(memcmp(a + row * row_bytes, poison, row_bytes) == 0,
                  "row %zu of a has no slot but was written", row);
        for (int g = 0; fp8 && g < c->hidden / 128; g++)
            cr_assert(memcmp(&scales[scale_at(c, s, (int)row, g)], poison, 4) == 0,
                      "scale of row %zu group %d has no slot but was written", row, g);
    }
    free(placed);
    free(poison);
}

static int largest_count(const int32_t *ids, const pre_case *c)
{
    int *count = calloc((size_t)c->experts, sizeof(int)), most = 0;
    for (int i = 0; i < c->tokens * c->topk; i++)
        if (ids[i] >= 0 && ids[i] < c->experts && ++count[ids[i]] > most)
            most = count[ids[i]];
    free(count);
    return most;
}

static void *alloc_guarded(mf_context *ctx, size_t bytes)
{
    return gpu_alloc_poisoned(ctx, bytes + GUARD, POISON);
}

static void run_case(const pre_case *c)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    uint64_t seed = mf_rng_seed_from_time();
    mf_rng_init(&rng, seed);
    cr_log_info("seed %llu: T=%d K=%d E=%d H=%d %s %s%s", (unsigned long long)seed, c->tokens,
                c->topk, c->experts, c->hidden, c->contiguous ? "contiguous" : "masked",
                c->dtype == MF_DTYPE_E4M3 ? "e4m3" : "bf16", c->ue8m0 ? " ue8m0" : "");
    size_t slots = (size_t)c->tokens * c->topk;
    int32_t *ids = malloc(sizeof(int32_t) * (slots ? slots : 1));
    bf16_t *hidden = malloc(sizeof(bf16_t) * (size_t)c->hidden * (c->tokens ? c->tokens : 1));
    make_ids(&rng, c, ids);
    make_hidden(&rng, hidden, (size_t)c->tokens, c->hidden);

    int align = c->align ? c->align : 128;
    preprocess_ref_shape s = {c->tokens, c->topk, c->experts, c->contiguous, 0, align, 0};
    s.max_m = c->max_m ? c->max_m : largest_count(ids, c) + 3;
    if (c->contiguous)
        MF_OK_OR_FAIL(mf_contiguous_capacity(c->tokens, c->topk, c->experts, align, &s.m_capacity));
    size_t rows = c->contiguous ? (size_t)s.m_capacity : (size_t)c->experts * s.max_m;
    size_t elem = c->dtype == MF_DTYPE_E4M3 ? 1 : 2, groups = (size_t)c->hidden / 128;
    size_t meta_n = c->contiguous ? (size_t)s.m_capacity : (size_t)c->experts;
    int32_t *want_src2dst = malloc(sizeof(int32_t) * (slots ? slots : 1));
    int32_t *want_meta = malloc(sizeof(int32_t) * meta_n);
    int want_flags = preprocess_route_ref(&s, ids, want_src2dst, c->contiguous ? NULL : want_meta,
                                          c->contiguous ? want_meta : NULL);

    device_buffers d = {0};
    d.ids = gpu_upload(ctx, ids, slots * 4);
    d.hidden = gpu_upload(ctx, hidden, (size_t)c->tokens * c->hidden * 2);
    d.a_bytes = rows * c->hidden * elem;
    d.scale_bytes = c->dtype == MF_DTYPE_E4M3 ? rows * groups * 4 : 0;
    d.meta_bytes = meta_n * 4;
    d.a = alloc_guarded(ctx, d.a_bytes);
    d.scale = alloc_guarded(ctx, d.scale_bytes);
    d.src2dst = alloc_guarded(ctx, slots * 4);
    d.meta = alloc_guarded(ctx, d.meta_bytes);
    d.flags = gpu_alloc_poisoned(ctx, 4, 0);
    mf_layout layout = c->contiguous ? MF_LAYOUT_CONTIGUOUS : MF_LAYOUT_MASKED;
    mf_preprocess_args args = {
        .layout = layout, .topk_ids = d.ids, .hidden = d.hidden, .tokens = c->tokens,
        .topk = c->topk, .experts = c->experts, .hidden_size = c->hidden, .a_dtype = c->dtype,
        .ue8m0 = c->ue8m0, .a = d.a, .a_scale = c->dtype == MF_DTYPE_E4M3 ? d.scale : NULL,
        .src2dst = d.src2dst, .masked_m = c->contiguous ? NULL : d.meta, .max_m = s.max_m,
        .m_indices = c->contiguous ? d.meta : NULL, .m_capacity = s.m_capacity, .align = align,
        .error_flags = d.flags};
    MF_OK_OR_FAIL(mf_preprocess_workspace_size(&args, &d.workspace_bytes));
    d.workspace = alloc_guarded(ctx, d.workspace_bytes);
    args.workspace = d.workspace, args.workspace_size = d.workspace_bytes;
    MF_OK_OR_FAIL(mf_preprocess(ctx, &args, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));

    int32_t *src2dst = host_download(ctx, d.src2dst, slots * 4);
    int32_t *meta = host_download(ctx, d.meta, d.meta_bytes);
    int32_t flags;
    MF_OK_OR_FAIL(mf_error_flags_read(ctx, d.flags, &flags));
    cr_assert_eq(flags, c->tokens ? want_flags : 0, "error flags %d, want %d", flags, want_flags);
    if (c->tokens) {
        for (size_t i = 0; i < slots; i++)
            cr_assert_eq(src2dst[i], want_src2dst[i], "src2dst[%zu] = %d, want %d (id %d)", i,
                         src2dst[i], want_src2dst[i], ids[i]);
        for (size_t i = 0; i < meta_n; i++)
            cr_assert_eq(meta[i], want_meta[i], "%s[%zu] = %d, want %d",
                         c->contiguous ? "m_indices" : "masked_m", i, meta[i], want_meta[i]);
        uint8_t *a = host_download(ctx, d.a, d.a_bytes);
        float *scales = host_download(ctx, d.scale, d.scale_bytes);
        check_rows(c, &s, hidden, src2dst, a, scales);
        check_unplaced_rows_untouched(c, &s, src2dst, a, d.a_bytes, scales);
        free(a);
        free(scales);
    } else {
        check_guard(ctx, d.src2dst, 0, "src2dst (T = 0 writes nothing)");
    }
    check_guard(ctx, d.a, d.a_bytes, "a");
    check_guard(ctx, d.scale, d.scale_bytes, "a_scale");
    check_guard(ctx, d.src2dst, slots * 4, "src2dst");
    check_guard(ctx, d.meta, d.meta_bytes, c->contiguous ? "m_indices" : "masked_m");
    check_guard(ctx, d.workspace, d.workspace_bytes, "workspace");

    void *all[] = {d.ids, d.hidden, d.a, d.scale, d.src2dst, d.meta, d.flags, d.workspace};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mf_free(ctx, all[i]);
    free(src2dst), free(meta), free(ids), free(hidden), free(want_src2dst), free(want_meta);
    mf_context_destroy(ctx);
}

#define BF16 MF_DTYPE_BF16
#define E4M3 MF_DTYPE_E4M3
/* tokens, topk, experts, hidden, contiguous, dtype, ue8m0, routing, max_m */
Test(gpu_preprocess, masked_bf16_decode_t1_h7168) { run_case(&(pre_case){1, 8, 256, 7168, 0, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, masked_bf16_one_chunk_exactly) { run_case(&(pre_case){128, 8, 256, 2048, 0, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, masked_bf16_just_past_one_chunk) { run_case(&(pre_case){129, 8, 256, 2048, 0, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, masked_bf16_t255_k8) { run_case(&(pre_case){255, 8, 256, 2048, 0, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, masked_bf16_t256_k2_h128) { run_case(&(pre_case){256, 2, 8, 128, 0, BF16, 0, RANDOM, 0}); }
/* K past 8: the fused stage counts its own ranks 8 slots at a time. */
Test(gpu_preprocess, masked_bf16_k16_fused) { run_case(&(pre_case){60, 16, 64, 128, 0, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, contiguous_e4m3_k12_fused) { run_case(&(pre_case){80, 12, 32, 256, 1, E4M3, 0, RANDOM, 0}); }
Test(gpu_preprocess, masked_e4m3_t4097_k8_h7168, .timeout = 300) { run_case(&(pre_case){4097, 8, 256, 7168, 0, E4M3, 0, RANDOM, 0}); }
Test(gpu_preprocess, masked_e4m3_ue8m0_skewed) { run_case(&(pre_case){4097, 8, 256, 2048, 0, E4M3, 1, SKEWED, 0}); }
Test(gpu_preprocess, contiguous_e4m3_ue8m0_t4097_skewed) { run_case(&(pre_case){4097, 8, 256, 2048, 1, E4M3, 1, SKEWED, 0}); }
Test(gpu_preprocess, contiguous_e4m3_t64_h7168) { run_case(&(pre_case){64, 8, 256, 7168, 1, E4M3, 0, RANDOM, 0}); }
Test(gpu_preprocess, contiguous_bf16_k1_empty_experts) { run_case(&(pre_case){255, 1, 16, 128, 1, BF16, 0, EVEN_ONLY, 0}); }
/* Chunked path at DeepSeek's width: 3.5 passes of the 256-thread scatter block per row. */
Test(gpu_preprocess, contiguous_bf16_t2000_k8_h7168) { run_case(&(pre_case){2000, 8, 256, 7168, 1, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, contiguous_bf16_t4097_k2) { run_case(&(pre_case){4097, 2, 64, 2048, 1, BF16, 0, RANDOM, 0}); }
/* H = 4096: two tokens per scatter block, the last block with one. */
Test(gpu_preprocess, contiguous_bf16_t1001_h4096) { run_case(&(pre_case){1001, 4, 64, 4096, 1, BF16, 0, RANDOM, 0}); }
/* Scatter prefetch: rows of 6 and 5 passes (H > 8192: the passes past the
 * 4 prefetched load later), and 2 tokens of 1.5 passes each. */
Test(gpu_preprocess, masked_e4m3_rows_past_prefetch_h12288) { run_case(&(pre_case){300, 4, 32, 12288, 0, E4M3, 0, RANDOM, 0}); }
Test(gpu_preprocess, contiguous_bf16_rows_past_prefetch_h10240) { run_case(&(pre_case){301, 4, 32, 10240, 1, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, contiguous_e4m3_two_tokens_partial_pass_h3072) { run_case(&(pre_case){601, 2, 16, 3072, 1, E4M3, 0, RANDOM, 0}); }
/* Scales stage: each warp of a 32-row tile takes consecutive groups, as
 * 16-byte loads where H / 128 is a multiple of 4 (the H = 12288 case above:
 * 12 groups a warp, a load of 8 then of 4) and one by one where not (H =
 * 1152: 9 groups, 5 and 4 per warp). */
Test(gpu_preprocess, masked_e4m3_scales_nine_groups_h1152) { run_case(&(pre_case){1100, 2, 16, 1152, 0, E4M3, 0, RANDOM, 0}); }
Test(gpu_preprocess, contiguous_e4m3_scales_nine_groups_h1152) { run_case(&(pre_case){1100, 2, 16, 1152, 1, E4M3, 0, SKEWED, 0}); }
/* Segments aligned to 8 rows, not 128: the scales stage's 32-row tiles of
 * a_scale hold rows of several experts and padding. */
Test(gpu_preprocess, contiguous_e4m3_align8_skewed) { run_case(&(pre_case){1500, 4, 16, 256, 1, E4M3, 0, SKEWED, 0, 8}); }
/* Masked with 32 chunks of slots (the most the scatter sums itself, no scan)
 * and with 33 (scan). */
Test(gpu_preprocess, masked_bf16_32_chunks_summed) { run_case(&(pre_case){4096, 8, 256, 256, 0, BF16, 0, SKEWED, 0}); }
Test(gpu_preprocess, masked_e4m3_33_chunks_scanned) { run_case(&(pre_case){4097, 8, 256, 256, 0, E4M3, 0, SKEWED, 0}); }
Test(gpu_preprocess, contiguous_1024_experts) { run_case(&(pre_case){64, 8, 1024, 128, 1, BF16, 0, RANDOM, 0}); }
/* An expert count that is no multiple of 4 (segment starts: 4 experts per
 * thread), and segments aligned to 1 row in the one-launch path. */
Test(gpu_preprocess, contiguous_bf16_37_experts_chunked) { run_case(&(pre_case){3000, 2, 37, 128, 1, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, contiguous_e4m3_37_experts_fused) { run_case(&(pre_case){100, 4, 37, 256, 1, E4M3, 0, SKEWED, 0}); }
Test(gpu_preprocess, contiguous_bf16_align1_fused) { run_case(&(pre_case){90, 3, 20, 128, 1, BF16, 0, SKEWED, 0, 1}); }
/* The scan's parts (1024 threads, 1024 / E ranges of chunks per expert, each
 * one batch of loads): 94 chunks in 8 ranges for 128 experts; 79 chunks for
 * 37 experts in 27 ranges of 3, 999 threads (25 hold no expert). Past them,
 * one thread per expert walks 141 chunks in 5 batches. */
Test(gpu_preprocess, masked_bf16_scan_parts_128_experts)
{
    run_case(&(pre_case){12000, 8, 128, 128, 0, BF16, 0, RANDOM, 0, 0});
}
Test(gpu_preprocess, contiguous_e4m3_scan_parts_37_experts)
{
    run_case(&(pre_case){40000, 2, 37, 256, 1, E4M3, 0, SKEWED, 0, 0});
}
Test(gpu_preprocess, masked_bf16_scan_many_batches)
{
    run_case(&(pre_case){18000, 8, 256, 128, 0, BF16, 0, RANDOM, 0, 0});
}
/* More than 256 experts: the chunked path ranks with 256-thread blocks. */
Test(gpu_preprocess, masked_bf16_t2000_512_experts) { run_case(&(pre_case){2000, 8, 512, 128, 0, BF16, 0, RANDOM, 0}); }
Test(gpu_preprocess, all_slots_to_expert0_k1) { run_case(&(pre_case){4097, 1, 4, 128, 0, E4M3, 0, EXPERT0, 0}); }
Test(gpu_preprocess, all_slots_to_expert0_k2_duplicates_flagged) { run_case(&(pre_case){300, 2, 4, 128, 1, BF16, 0, EXPERT0, 0}); }
Test(gpu_preprocess, all_slots_skipped) { run_case(&(pre_case){300, 2, 8, 128, 0, BF16, 0, ALL_SKIPPED, 0}); }
Test(gpu_preprocess, all_slots_skipped_contiguous_small) { run_case(&(pre_case){5, 2, 8, 128, 1, E4M3, 0, ALL_SKIPPED, 0}); }
Test(gpu_preprocess, hostile_ids_flagged_fused) { run_case(&(pre_case){100, 4, 16, 256, 0, E4M3, 0, HOSTILE, 0}); }
Test(gpu_preprocess, hostile_ids_flagged_chunked) { run_case(&(pre_case){1000, 4, 16, 256, 1, BF16, 0, HOSTILE, 0}); }
Test(gpu_preprocess, hostile_ids_flagged_chunked_e4m3) { run_case(&(pre_case){1000, 4, 16, 256, 0, E4M3, 0, HOSTILE, 0}); }
Test(gpu_preprocess, capacity_overflow_flagged_fused) { run_case(&(pre_case){100, 4, 8, 128, 0, BF16, 0, SKEWED, 3}); }
Test(gpu_preprocess, capacity_overflow_flagged_chunked) { run_case(&(pre_case){2000, 4, 8, 128, 0, E4M3, 0, SKEWED, 5}); }
Test(gpu_preprocess, zero_tokens_launch_nothing) { run_case(&(pre_case){0, 8, 256, 2048, 0, BF16, 0, RANDOM, 4}); }

Test(gpu_preprocess, bad_arguments_write_nothing)
{
    mf_context *ctx = gpu_context_or_skip();
    void *d = gpu_alloc_poisoned(ctx, 1 << 16, POISON);
    char *b = d;
    mf_preprocess_args ok = {.layout = MF_LAYOUT_MASKED, .topk_ids = (void *)b, .hidden = b + 1024,
                             .tokens = 4, .topk = 2, .experts = 4, .hidden_size = 128,
                             .a_dtype = MF_DTYPE_BF16, .a = b + 4096, .src2dst = (void *)(b + 256),
                             .masked_m = (void *)(b + 512), .max_m = 8};
    mf_preprocess_args a = ok;
    a.hidden = b + 1032;
    cr_expect_eq(mf_preprocess(ctx, &a, NULL), MF_ERR_MISALIGNED);
    a = ok, a.a_dtype = MF_DTYPE_E4M3, a.a_scale = (void *)(b + 768), a.hidden_size = 136;
    cr_expect_eq(mf_preprocess(ctx, &a, NULL), MF_ERR_MISALIGNED);
    a = ok, a.topk = 33;
    cr_expect_eq(mf_preprocess(ctx, &a, NULL), MF_ERR_INVALID_ARGUMENT);
    a = ok, a.layout = MF_LAYOUT_CONTIGUOUS, a.m_indices = (void *)(b + 512), a.m_capacity = 100;
    cr_expect_eq(mf_preprocess(ctx, &a, NULL), MF_ERR_INVALID_ARGUMENT);
    cr_expect(strstr(mf_last_error(), "m_capacity = 100"), "%s", mf_last_error());
    a = ok, a.tokens = 1000; /* needs a workspace */
    cr_expect_eq(mf_preprocess(ctx, &a, NULL), MF_ERR_INVALID_ARGUMENT);
    cr_expect(strstr(mf_last_error(), "workspace"), "%s", mf_last_error());
    expect_bytes_untouched(ctx, d, 1 << 16, POISON);
    mf_free(ctx, d);
    mf_context_destroy(ctx);
}
