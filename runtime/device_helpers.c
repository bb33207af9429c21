/* Device memory, copies, stream sync and event timers for tests, examples and
 * embedders that do not link the CUDA runtime themselves. */
#include "context.h"
#include "error.h"

#include <stdlib.h>

/* Arguments are checked before the context, as the ops do, so that a wrong
 * call names its own mistake whatever the context. */
#define CHECK_CTX(ctx, fn)                                                     \
    if (!(ctx))                                                                \
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, fn ": ctx is NULL");

/* A copy or fill of bytes > 0 needs both ends; 0 bytes touches nothing. */
#define CHECK_ENDS(fn, dst, src, bytes)                                        \
    if ((bytes) && (!(dst) || !(src)))                                         \
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, fn ": dst or src is NULL (%zu bytes)", \
                       (size_t)(bytes));

/* Runs one driver call with ctx current: CALL is an expression using `drv`. */
#define IN_CONTEXT(ctx, call_text, CALL)                                        \
    do {                                                                        \
        MF_TRY(mf_context_push(ctx));                                           \
        const mf_driver *drv = (ctx)->drv;                                      \
        CUresult in_context_r_ = (CALL);                                        \
        mf_context_pop(ctx);                                                    \
        if (in_context_r_ != CUDA_SUCCESS)                                      \
            return mf_cuda_fail_at(__FILE__, __LINE__, call_text, in_context_r_); \
    } while (0)

mf_status mf_malloc(mf_context *ctx, void **ptr, size_t bytes)
{
    if (!ptr || bytes == 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_malloc: ptr is NULL or bytes is 0");
    CHECK_CTX(ctx, "mf_malloc");
    CUdeviceptr d = 0;
    IN_CONTEXT(ctx, "cuMemAlloc", drv->cuMemAlloc(&d, bytes));
    *ptr = (void *)(uintptr_t)d;
    return MF_OK;
}

void mf_free(mf_context *ctx, void *ptr)
{
    if (!ctx || !ptr || mf_context_push(ctx) != MF_OK)
        return;
    ctx->drv->cuMemFree((CUdeviceptr)(uintptr_t)ptr);
    mf_context_pop(ctx);
}

mf_status mf_memcpy_htod(mf_context *ctx, void *dst, const void *src, size_t bytes)
{
    CHECK_ENDS("mf_memcpy_htod", dst, src, bytes);
    CHECK_CTX(ctx, "mf_memcpy_htod");
    IN_CONTEXT(ctx, "cuMemcpyHtoD", drv->cuMemcpyHtoD((CUdeviceptr)(uintptr_t)dst, src, bytes));
    return MF_OK;
}

mf_status mf_memcpy_dtoh(mf_context *ctx, void *dst, const void *src, size_t bytes)
{
    CHECK_ENDS("mf_memcpy_dtoh", dst, src, bytes);
    CHECK_CTX(ctx, "mf_memcpy_dtoh");
    IN_CONTEXT(ctx, "cuMemcpyDtoH", drv->cuMemcpyDtoH(dst, (CUdeviceptr)(uintptr_t)src, bytes));
    return MF_OK;
}

mf_status mf_memcpy_dtod_async(mf_context *ctx, void *dst, const void *src, size_t bytes,
                               mf_stream stream)
{
    CHECK_ENDS("mf_memcpy_dtod_async", dst, src, bytes);
    CHECK_CTX(ctx, "mf_memcpy_dtod_async");
    IN_CONTEXT(ctx, "cuMemcpyDtoDAsync",
               drv->cuMemcpyDtoDAsync((CUdeviceptr)(uintptr_t)dst, (CUdeviceptr)(uintptr_t)src,
                                      bytes, (CUstream)stream));
    return MF_OK;
}

mf_status mf_memset_d8(mf_context *ctx, void *dst, uint8_t value, size_t bytes)
{
    if (bytes && !dst)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_memset_d8: dst is NULL (%zu bytes)", bytes);
    CHECK_CTX(ctx, "mf_memset_d8");
    IN_CONTEXT(ctx, "cuMemsetD8", drv->cuMemsetD8((CUdeviceptr)(uintptr_t)dst, value, bytes));
    return MF_OK;
}

mf_status mf_stream_synchronize(mf_context *ctx, mf_stream stream)
{
    CHECK_CTX(ctx, "mf_stream_synchronize");
    IN_CONTEXT(ctx, "cuStreamSynchronize", drv->cuStreamSynchronize((CUstream)stream));
    return MF_OK;
}

struct mf_timer {
    mf_context *ctx;
    CUevent start, stop;
};

mf_status mf_timer_create(mf_context *ctx, mf_timer **out)
{
    if (!out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_timer_create: out is NULL");
    CHECK_CTX(ctx, "mf_timer_create");
    mf_timer *t = calloc(1, sizeof *t);
    if (!t)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "mf_timer_create: no host memory");
    t->ctx = ctx;
    mf_status s = mf_context_push(ctx);
    if (s != MF_OK) {
        free(t);
        return s;
    }
    CUresult r = ctx->drv->cuEventCreate(&t->start, CU_EVENT_DEFAULT);
    if (r == CUDA_SUCCESS && (r = ctx->drv->cuEventCreate(&t->stop, CU_EVENT_DEFAULT)) != CUDA_SUCCESS)
        ctx->drv->cuEventDestroy(t->start);
    mf_context_pop(ctx);
    if (r != CUDA_SUCCESS) {
        free(t);
        return mf_cuda_fail_at(__FILE__, __LINE__, "cuEventCreate", r);
    }
    *out = t;
    return MF_OK;
}

void mf_timer_destroy(mf_timer *t)
{
    if (!t)
        return;
    if (mf_context_push(t->ctx) == MF_OK) {
        t->ctx->drv->cuEventDestroy(t->start);
        t->ctx->drv->cuEventDestroy(t->stop);
        mf_context_pop(t->ctx);
    }
    free(t);
}

mf_status mf_timer_start(mf_timer *t, mf_stream stream)
{
    if (!t)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_timer_start: timer is NULL");
    IN_CONTEXT(t->ctx, "cuEventRecord", drv->cuEventRecord(t->start, (CUstream)stream));
    return MF_OK;
}

mf_status mf_timer_stop(mf_timer *t, mf_stream stream)
{
    if (!t)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_timer_stop: timer is NULL");
    IN_CONTEXT(t->ctx, "cuEventRecord", drv->cuEventRecord(t->stop, (CUstream)stream));
    return MF_OK;
}

mf_status mf_timer_elapsed_ms(mf_timer *t, float *ms)
{
    if (!t || !ms)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_timer_elapsed_ms: null argument");
    IN_CONTEXT(t->ctx, "cuEventSynchronize", drv->cuEventSynchronize(t->stop));
    IN_CONTEXT(t->ctx, "cuEventElapsedTime", drv->cuEventElapsedTime(ms, t->start, t->stop));
    return MF_OK;
}

mf_status mf_stream_create(mf_context *ctx, mf_stream *out)
{
    if (!out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_stream_create: out is NULL");
    CHECK_CTX(ctx, "mf_stream_create");
    CUstream s = NULL;
    IN_CONTEXT(ctx, "cuStreamCreate", drv->cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    *out = (mf_stream)s;
    return MF_OK;
}

void mf_stream_destroy(mf_context *ctx, mf_stream stream)
{
    if (!ctx || !stream || mf_context_push(ctx) != MF_OK)
        return;
    ctx->drv->cuStreamDestroy((CUstream)stream);
    mf_context_pop(ctx);
}

struct mf_graph {
    mf_context *ctx;
    CUgraph graph;
    CUgraphExec exec;
};

mf_status mf_graph_capture_begin(mf_context *ctx, mf_stream stream)
{
    CHECK_CTX(ctx, "mf_graph_capture_begin");
    IN_CONTEXT(ctx, "cuStreamBeginCapture",
               drv->cuStreamBeginCapture((CUstream)stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    return MF_OK;
}

mf_status mf_graph_capture_end(mf_context *ctx, mf_stream stream, mf_graph **out)
{
    if (!out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_graph_capture_end: out is NULL");
    CHECK_CTX(ctx, "mf_graph_capture_end");
    mf_graph *g = calloc(1, sizeof *g);
    if (!g)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "mf_graph_capture_end: no host memory");
    g->ctx = ctx;
    mf_status s = mf_context_push(ctx);
    CUresult r = CUDA_SUCCESS;
    if (s == MF_OK) {
        r = ctx->drv->cuStreamEndCapture((CUstream)stream, &g->graph);
        if (r == CUDA_SUCCESS && (r = ctx->drv->cuGraphInstantiateWithFlags(&g->exec, g->graph, 0)) != CUDA_SUCCESS)
            ctx->drv->cuGraphDestroy(g->graph);
        mf_context_pop(ctx);
    }
    if (s == MF_OK && r != CUDA_SUCCESS)
        s = mf_cuda_fail_at(__FILE__, __LINE__, "cuStreamEndCapture / cuGraphInstantiate", r);
    if (s != MF_OK) {
        free(g);
        return s;
    }
    *out = g;
    return MF_OK;
}

mf_status mf_graph_launch(mf_graph *g, mf_stream stream)
{
    if (!g)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_graph_launch: graph is NULL");
    IN_CONTEXT(g->ctx, "cuGraphLaunch", drv->cuGraphLaunch(g->exec, (CUstream)stream));
    return MF_OK;
}

void mf_graph_destroy(mf_graph *g)
{
    if (!g)
        return;
    if (mf_context_push(g->ctx) == MF_OK) {
        g->ctx->drv->cuGraphExecDestroy(g->exec);
        g->ctx->drv->cuGraphDestroy(g->graph);
        mf_context_pop(g->ctx);
    }
    free(g);
}
