/* GPU suite, alone in its binary (it takes all device memory, so nothing may
 * run beside it): device memory exhausted while preparing a layer. */
#include "layer_support.h"

/* Device memory exhausted: preparing a layer returns a status (or succeeds:
 * it needs no device memory of its own), leaks nothing, and once memory is
 * back the context still runs a forward correctly. */
Test(gpu_layer, out_of_device_memory_is_survived)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    run r = {&qwen30, 0, MASKED, 16, 0, 0};
    weights w;
    make_weights(ctx, &rng, r.p, 0, &w);
    void *hog[4096];
    int n = 0;
    for (size_t chunk = (size_t)16 << 30; chunk >= ((size_t)1 << 20) && n < 4096; chunk /= 2)
        while (n < 4096 && mf_malloc(ctx, &hog[n], chunk) == MF_OK)
            n++;
    cr_log_info("device memory taken in %d allocations", n);
    void *more = NULL;
    cr_assert_eq(mf_malloc(ctx, &more, (size_t)64 << 20), MF_ERR_OUT_OF_MEMORY);
    mf_layer_desc desc = {.hidden = r.p->hidden, .intermediate = r.p->intermediate,
                          .experts = r.p->experts, .topk = r.p->topk, .dtype = MF_DTYPE_BF16,
                          .layout = MASKED, .max_tokens = 16, .w13 = w.d_w13, .w2 = w.d_w2};
    mf_layer *layer = NULL;
    MF_OK_OR_FAIL(mf_layer_create(ctx, &desc, &layer));
    mf_status s = mf_layer_prepare(layer);
    cr_assert(s == MF_OK || s == MF_ERR_OUT_OF_MEMORY, "%s: %s", mf_status_string(s),
              mf_last_error());
    mf_layer_destroy(layer);
    while (n > 0)
        mf_free(ctx, hog[--n]);
    layer = make_layer(ctx, &r, &w, 16);
    io_buffers b;
    size_t ws;
    alloc_io(ctx, &r, layer, &b, &ws);
    fill_inputs(ctx, &rng, &r, &b);
    mf_layer_io io = {b.d_hidden, b.d_ids, b.d_w, b.d_out, r.tokens, b.d_ws, ws, b.d_flags};
    MF_OK_OR_FAIL(mf_layer_forward(layer, &io, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    check_output(ctx, &r, &w, &b);
    free_io(ctx, &b);
    mf_layer_destroy(layer);
    free_weights(ctx, &w);
    mf_context_destroy(ctx);
}
