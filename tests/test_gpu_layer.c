/* GPU suite: the whole MoE layer against the fp64 CPU reference, for small
 * versions of each preset, both layouts, both dtypes, skewed routing and -1
 * slots; and a CUDA graph replayed with new inputs. */
#include "layer_support.h"

Test(gpu_layer, deepseek_bf16_masked_t37) { run_layer(&(run){&deepseek, 0, MASKED, 37, 0, 2.5f}); }
Test(gpu_layer, deepseek_bf16_contiguous_t300) { run_layer(&(run){&deepseek, 0, CONTIG, 300, 0, 0}); }
Test(gpu_layer, deepseek_e4m3_masked_t300_skewed) { run_layer(&(run){&deepseek, 1, MASKED, 300, 1, 0}); }
Test(gpu_layer, deepseek_e4m3_contiguous_t37) { run_layer(&(run){&deepseek, 1, CONTIG, 37, 0, 2.5f}); }
Test(gpu_layer, qwen235_bf16_contiguous_t200_skewed) { run_layer(&(run){&qwen235, 0, CONTIG, 200, 1, 0}); }
Test(gpu_layer, qwen235_e4m3_masked_t64) { run_layer(&(run){&qwen235, 1, MASKED, 64, 0, 0}); }
Test(gpu_layer, qwen30_bf16_masked_t1) { run_layer(&(run){&qwen30, 0, MASKED, 1, 0, 0}); }
Test(gpu_layer, qwen30_e4m3_contiguous_t513) { run_layer(&(run){&qwen30, 1, CONTIG, 513, 1, 0}); }
Test(gpu_layer, mixtral_bf16_masked_t129_skewed) { run_layer(&(run){&mixtral, 0, MASKED, 129, 1, 0}); }
Test(gpu_layer, mixtral_e4m3_contiguous_t700) { run_layer(&(run){&mixtral, 1, CONTIG, 700, 0, 0}); }

Test(gpu_layer, zero_tokens_is_a_no_op)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    weights w;
    run r = {&qwen30, 0, MASKED, 4, 0, 0};
    make_weights(ctx, &rng, r.p, 0, &w);
    mf_layer *layer = make_layer(ctx, &r, &w, 8);
    io_buffers b;
    size_t ws;
    alloc_io(ctx, &r, layer, &b, &ws);
    mf_layer_io io = {b.d_hidden, b.d_ids, b.d_w, b.d_out, 0, b.d_ws, ws, b.d_flags};
    MF_OK_OR_FAIL(mf_layer_forward(layer, &io, NULL));
    MF_OK_OR_FAIL(mf_stream_synchronize(ctx, NULL));
    uint8_t *out = host_download(ctx, b.d_out, (size_t)4 * r.p->hidden * 2);
    for (size_t i = 0; i < (size_t)4 * r.p->hidden * 2; i++)
        cr_assert_eq(out[i], 0xFF, "T = 0 wrote output byte %zu", i);
    free(out);
    io.tokens = 9;
    cr_assert_eq(mf_layer_forward(layer, &io, NULL), MF_ERR_INVALID_ARGUMENT);
    free_io(ctx, &b);
    mf_layer_destroy(layer);
    free_weights(ctx, &w);
    mf_context_destroy(ctx);
}

/* Capture one forward in a graph, replay it with fresh routing and hidden
 * states copied into the same buffers, and check each replay. */
static void graph_replays(int fp8, mf_layout layout)
{
    mf_context *ctx = gpu_context_or_skip();
    mf_rng rng;
    mf_rng_init(&rng, mf_rng_seed_from_time());
    run r = {&deepseek, fp8, layout, 96, 0, 0};
    weights w;
    make_weights(ctx, &rng, r.p, fp8, &w);
    mf_layer *layer = make_layer(ctx, &r, &w, 96);
    io_buffers b;
    size_t ws;
    alloc_io(ctx, &r, layer, &b, &ws);
    mf_stream stream;
    MF_OK_OR_FAIL(mf_stream_create(ctx, &stream));
    mf_layer_io io = {b.d_hidden, b.d_ids, b.d_w, b.d_out, r.tokens, b.d_ws, ws, b.d_flags};
    mf_graph *graph;
    MF_OK_OR_FAIL(mf_graph_capture_begin(ctx, stream));
    MF_OK_OR_FAIL(mf_layer_forward(layer, &io, stream));
    MF_OK_OR_FAIL(mf_graph_capture_end(ctx, stream, &graph));
    for (int replay = 0; replay < 3; replay++) {
        fill_inputs(ctx, &rng, &r, &b);
        MF_OK_OR_FAIL(mf_graph_launch(graph, stream));
        MF_OK_OR_FAIL(mf_stream_synchronize(ctx, stream));
        check_output(ctx, &r, &w, &b);
    }
    mf_graph_destroy(graph);
    mf_stream_destroy(ctx, stream);
    free_io(ctx, &b);
    mf_layer_destroy(layer);
    free_weights(ctx, &w);
    mf_context_destroy(ctx);
}

Test(gpu_layer, graph_replay_bf16_masked) { graph_replays(0, MASKED); }
Test(gpu_layer, graph_replay_e4m3_contiguous) { graph_replays(1, CONTIG); }
