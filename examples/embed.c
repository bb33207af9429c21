/* embed: the smallest program that runs one MoE layer with moeforge, linked
 * against the runtime only (no Lua, no NVRTC), its kernels served from a
 * deployment archive written by `precompile` or `moeforge pack`.
 *
 *   cc embed.c $(pkg-config --cflags --libs moeforge) -o embed
 *   ./build/examples/precompile qwen3-30b-a3b qwen3-30b.mfa
 *   MOEFORGE_BUILTIN=off ./build/examples/embed qwen3-30b.mfa
 * (MOEFORGE_BUILTIN=off hides the kernels built into the library, so every
 * kernel must come from the archive.) Runs a bf16 Qwen3-30B-A3B layer (H=2048,
 * N=768, E=128, top-8) on 4 tokens with patterned weights and prints a few
 * outputs and the device error flags. Without a GPU it says why and exits 0.
 */
#include <moeforge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                         \
    do {                                                                                    \
        mf_status s_ = (call);                                                              \
        if (s_ != MF_OK) {                                                                  \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, mf_last_error()); \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

enum { H = 2048, N = 768, E = 128, K = 8, T = 4 };

/* Device buffer filled with a repeating bf16 pattern of small values. */
static void *patterned(mf_context *ctx, size_t elems, unsigned seed)
{
    uint16_t *h = malloc(elems * 2);
    for (size_t i = 0; i < elems; i++)
        h[i] = (uint16_t)(0x3c00 | ((i * 2654435761u + seed) >> 16 & 0x807f));
    void *d;
    CHECK(mf_malloc(ctx, &d, elems * 2));
    CHECK(mf_memcpy_htod(ctx, d, h, elems * 2));
    free(h);
    return d;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: embed ARCHIVE.mfa\n");
        return 2;
    }
    mf_context *ctx;
    mf_status s = mf_context_create(0, &ctx);
    if (s != MF_OK) {
        printf("embed: %s: %s\n", mf_status_string(s), mf_last_error());
        return 0;
    }
    CHECK(mf_context_open_archive(ctx, argv[1]));

    mf_layer_desc desc = {.hidden = H, .intermediate = N, .experts = E, .topk = K,
                          .dtype = MF_DTYPE_BF16, .layout = MF_LAYOUT_AUTO, .max_tokens = T,
                          .w13 = patterned(ctx, (size_t)E * 2 * N * H, 1),
                          .w2 = patterned(ctx, (size_t)E * H * N, 2)};
    mf_layer *layer;
    CHECK(mf_layer_create(ctx, &desc, &layer));
    CHECK(mf_layer_prepare(layer)); /* every kernel loaded now, none on the forward path */

    int32_t ids[T * K];
    float weights[T * K];
    for (int i = 0; i < T * K; i++)
        ids[i] = (i * 37) % E, weights[i] = 1.0f / K;
    size_t ws_bytes;
    CHECK(mf_layer_workspace_size(layer, &ws_bytes));
    void *ws, *d_ids, *d_w, *out, *flags, *hidden = patterned(ctx, (size_t)T * H, 3);
    CHECK(mf_malloc(ctx, &ws, ws_bytes));
    CHECK(mf_malloc(ctx, &d_ids, sizeof ids));
    CHECK(mf_malloc(ctx, &d_w, sizeof weights));
    CHECK(mf_malloc(ctx, &out, (size_t)T * H * 2));
    CHECK(mf_malloc(ctx, &flags, 4));
    CHECK(mf_memset_d8(ctx, flags, 0, 4));
    CHECK(mf_memcpy_htod(ctx, d_ids, ids, sizeof ids));
    CHECK(mf_memcpy_htod(ctx, d_w, weights, sizeof weights));

    mf_layer_io io = {hidden, d_ids, d_w, out, T, ws, ws_bytes, flags};
    CHECK(mf_layer_forward(layer, &io, NULL));
    CHECK(mf_stream_synchronize(ctx, NULL));
    uint16_t first[4];
    int32_t f;
    CHECK(mf_memcpy_dtoh(ctx, first, out, sizeof first));
    CHECK(mf_error_flags_read(ctx, flags, &f));
    char why[128];
    printf("embed: %d tokens through the layer (%s); out[0][0..3] bf16 = %04x %04x %04x %04x; "
           "flags: %s\n", T, mf_layer_layout(layer) == MF_LAYOUT_MASKED ? "masked" : "contiguous",
           first[0], first[1], first[2], first[3], mf_error_flags_string(f, why, sizeof why));

    mf_layer_destroy(layer);
    void *all[] = {ws, d_ids, d_w, out, flags, hidden, (void *)desc.w13, (void *)desc.w2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        mf_free(ctx, all[i]);
    mf_context_destroy(ctx);
    return 0;
}
