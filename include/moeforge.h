/* moeforge runtime: load and launch the kernels of a Mixture-of-Experts layer.
 *
 * The runtime needs neither Lua nor NVRTC: it serves kernels from the set
 * embedded at build time, from archives the caller opens, and (only when the
 * JIT library is plugged in with mf_jit_enable) from the just-in-time compiler.
 * libcuda.so.1 is loaded with dlopen on first use, so every entry point works
 * on a machine with no driver and answers MF_ERR_NO_DRIVER / MF_ERR_NO_DEVICE.
 *
 * Conventions
 *  - Every function returns an mf_status; on failure mf_last_error() holds a
 *    per-thread message naming the failing check or call, file and line.
 *  - Device pointers are plain `void *` (what cudaMalloc or mf_malloc return).
 *  - Streams are `mf_stream`, the same type as CUstream and cudaStream_t;
 *    NULL is the legacy default stream.
 *  - Ops are asynchronous on the caller's stream, allocate nothing and never
 *    synchronize the host, so they can be captured in a CUDA graph.
 *  - Destroy/close functions accept NULL.
 *  - All calls are safe from several threads at once.
 */
#ifndef MOEFORGE_H
#define MOEFORGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOEFORGE_VERSION_MAJOR 0
#define MOEFORGE_VERSION_MINOR 1
#define MOEFORGE_VERSION_PATCH 0
#define MOEFORGE_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define MF_API __attribute__((visibility("default")))
#else
#define MF_API
#endif

/* ---- status ------------------------------------------------------------ */

typedef enum mf_status {
    MF_OK = 0,
    MF_ERR_INVALID_ARGUMENT,  /* null pointer, size out of range, bad enum      */
    MF_ERR_MISALIGNED,        /* pointer or size not aligned as the kernel needs */
    MF_ERR_UNSUPPORTED,       /* valid request this build or device cannot serve */
    MF_ERR_NO_DRIVER,         /* libcuda.so.1 could not be loaded                */
    MF_ERR_NO_DEVICE,         /* driver loaded but no (such) CUDA device         */
    MF_ERR_CUDA,              /* a driver call failed; message names it          */
    MF_ERR_OUT_OF_MEMORY,     /* host or device allocation failed                */
    MF_ERR_KERNEL_NOT_FOUND,  /* spec in no cache and no JIT available           */
    MF_ERR_SPEC,              /* malformed kernel spec string                    */
    MF_ERR_TEMPLATE,          /* template missing, failed or was stopped         */
    MF_ERR_COMPILE,           /* NVRTC rejected the rendered source (log kept)   */
    MF_ERR_COMPILER_CRASHED,  /* the isolated compiler process died              */
    MF_ERR_NO_COMPILER,       /* libnvrtc could not be loaded                    */
    MF_ERR_ARCHIVE,           /* archive or cache entry corrupt or truncated     */
    MF_ERR_ARCHIVE_VERSION,   /* archive written in another format version       */
    MF_ERR_ARCH_MISMATCH,     /* archive holds no code for this device's arch    */
    MF_ERR_IO,                /* file system error                               */
    MF_ERR_UNTRUSTED          /* kernel file or its folder writable by others    */
} mf_status;

/* Short constant description of a status ("invalid argument"). */
MF_API const char *mf_status_string(mf_status status);

/* Message of the last failure on this thread: "what failed (file:line)".
 * Empty string when nothing failed yet. Valid until the next failing call. */
MF_API const char *mf_last_error(void);

/* Library version, "MAJOR.MINOR.PATCH". */
MF_API const char *mf_version(void);

/* ---- context ------------------------------------------------------------ */

typedef struct mf_context mf_context;
typedef struct CUstream_st *mf_stream;

typedef struct mf_device_info {
    char name[128];
    int ordinal;
    int cc_major, cc_minor;       /* compute capability                      */
    int sm_count;                 /* multiprocessors                         */
    int max_smem_per_block_optin; /* bytes a block may ask for               */
    int l2_bytes;
    int driver_version;           /* e.g. 13000                              */
    char arch[16];                /* "sm_90a" on Hopper, "sm_80", ...        */
} mf_device_info;

/* Number of CUDA devices; MF_ERR_NO_DRIVER when libcuda.so.1 is missing. */
MF_API mf_status mf_device_count(int *count);

/* Creates a context on device `ordinal` (its primary CUDA context). The
 * caller owns *out and frees it with mf_context_destroy. */
MF_API mf_status mf_context_create(int ordinal, mf_context **out);
MF_API void mf_context_destroy(mf_context *ctx);
MF_API mf_status mf_context_info(const mf_context *ctx, mf_device_info *out);

/* ---- kernels -------------------------------------------------------------
 * A kernel is named by its canonical spec, e.g.
 *   "silu_mul:block=256,dtype=bf16,layout=masked,unroll=2"
 * Lookup order: loaded kernels, the set embedded at build time
 * (MOEFORGE_BUILTIN=off hides it), archives opened with mf_context_open_archive
 * (most recent first), the on-disk cache (MOEFORGE_CACHE_DIR; MOEFORGE_CACHE=off
 * disables it), then the JIT provider when one is installed (moeforge_gen.h). */

/* Maps an archive file (written by `moeforge pack` or the build) and serves
 * kernels from it. The context keeps it open until destroyed. The file and
 * its folder must belong to this user (or root) and be writable by nobody
 * else: MF_ERR_UNTRUSTED otherwise. */
MF_API mf_status mf_context_open_archive(mf_context *ctx, const char *path);

/* Makes sure `spec` is loaded (compiling it when JIT is installed).
 * Warmup before capture or timing; launches do this lazily. */
MF_API mf_status mf_kernel_prepare(mf_context *ctx, const char *spec);

/* One compiled kernel image, as handed to the runtime by a provider.
 * `data` is a cubin (is_ptx = 0) or NUL-terminated PTX (is_ptx = 1). */
typedef struct mf_kernel_image {
    const void *data;
    size_t size;
    int is_ptx;
    char entry[128]; /* extern "C" entry point name */
} mf_kernel_image;

/* A kernel provider compiles `spec` for `arch` (e.g. "sm_90a") when no cache
 * has it. It fills *image with memory it owns; `release` (may be NULL) is
 * called once the runtime has loaded the image. */
typedef struct mf_kernel_provider {
    mf_status (*compile)(void *user, const char *spec, const char *arch,
                         mf_kernel_image *image);
    void (*release)(void *user, mf_kernel_image *image);
    void *user;
} mf_kernel_provider;

/* Installs (or, with NULL, removes) the provider used on a full miss. */
MF_API mf_status mf_context_set_provider(mf_context *ctx, const mf_kernel_provider *provider);

/* ---- data types ------------------------------------------------------------ */

typedef enum mf_dtype {
    MF_DTYPE_BF16 = 1, /* __nv_bfloat16                          */
    MF_DTYPE_E4M3 = 2, /* __nv_fp8_e4m3 (+ fp32 scales)           */
    MF_DTYPE_F32 = 3
} mf_dtype;

typedef enum mf_layout {
    MF_LAYOUT_MASKED = 1,     /* [E, max_m, ...] + masked_m[E]            */
    MF_LAYOUT_CONTIGUOUS = 2  /* [M_pad, ...] + m_indices[M_pad]          */
} mf_layout;

/* ---- ops -------------------------------------------------------------------- */

/* Device error flags. Kernels never write out of bounds on bad routing data:
 * they skip the offending slot and OR one of these bits into the caller's
 * int32 flag word (device memory, zeroed by the caller, may be shared by all
 * ops of a layer and read whenever convenient with mf_error_flags_read). */
enum {
    MF_DEVICE_ERR_BAD_EXPERT_ID = 1,  /* topk id outside [-1, experts)             */
    MF_DEVICE_ERR_DUPLICATE_ID = 2,   /* same expert twice in one token            */
    MF_DEVICE_ERR_CAPACITY = 4,       /* more slots for an expert than max_m rows,
                                       * or contiguous rows past m_capacity        */
    MF_DEVICE_ERR_BAD_DST = 8         /* src2dst entry outside the rows it indexes */
};

/* Copies the flag word to the host (synchronous). */
MF_API mf_status mf_error_flags_read(mf_context *ctx, const int32_t *flags, int32_t *value);
/* "bad expert id | capacity overflow" for a flag word; "none" for 0. */
MF_API const char *mf_error_flags_string(int32_t value, char *buf, size_t size);

/* FP8 activation scales ("MN-major", what the grouped GEMM reads with TMA):
 *   masked      fp32 [E, cols / 128, max_m]      scale of (e, row r, group g) at
 *                                                 (e * cols/128 + g) * max_m + r
 *   contiguous  fp32 [cols / 128, m_capacity]    scale of (row r, group g) at
 *                                                 g * m_capacity + r
 * Per (row, 128 columns): amax = max |x| in fp32, scale = max(amax, 1e-10) / 448
 * (fp32 division), q = saturate_rne(x / scale); with ue8m0 the scale is rounded
 * up to a power of two: 2^ceil(log2(max(amax, 1e-10) / 448)). */

/* ---- preprocess: route tokens to experts --------------------------------------
 * From topk_ids [T, K] and hidden [T, H] bf16 builds the GEMM input:
 *   masked:     masked_m[E], src2dst[T*K] = e*max_m + r, a [E, max_m, H]
 *   contiguous: m_indices[m_capacity], src2dst[T*K] = row, a [m_capacity, H];
 *               expert e's rows start at a multiple of `align`, padding rows
 *               and rows past the last segment have m_indices = -1.
 * r is the rank of slot s = t*K + k among the slots of expert e in increasing s
 * (deterministic). Skipped slots (id -1, bad id, duplicate, overflow) get
 * src2dst = -1. a is bf16, or e4m3 with a_scale (layout above).
 * Launches 1 kernel when T*K <= 1024, else 3 (e4m3: 4, the last writing
 * a_scale from per-token scales staged in the workspace), one fewer in the
 * masked layout while T*K <= 32768 (no scan stage); no host synchronization. */
typedef struct mf_preprocess_args {
    mf_layout layout;
    const int32_t *topk_ids;  /* [T, K] device                               */
    const void *hidden;       /* [T, H] bf16, 16-byte aligned                 */
    int tokens;               /* T >= 0 (0: nothing is launched)              */
    int topk;                 /* K in [1, 32]                                 */
    int experts;              /* E in [1, 1024]                               */
    int hidden_size;          /* H: multiple of 8 (bf16) or 128 (e4m3)        */
    mf_dtype a_dtype;         /* MF_DTYPE_BF16 or MF_DTYPE_E4M3               */
    int ue8m0;                /* e4m3 only: power-of-two scales               */
    void *a;                  /* output rows, 16-byte aligned                 */
    float *a_scale;           /* e4m3 only                                    */
    int32_t *src2dst;         /* [T*K]                                        */
    int32_t *masked_m;        /* masked: [E]                                  */
    int max_m;                /* masked: rows per expert (>= 1)               */
    int32_t *m_indices;       /* contiguous: [m_capacity]                     */
    int m_capacity;           /* contiguous: rows of a (>= mf_contiguous_capacity) */
    int align;                /* contiguous: segment alignment, 0 = 128       */
    int32_t *error_flags;     /* device flag word or NULL                     */
    void *workspace;          /* device, mf_preprocess_workspace_size bytes   */
    size_t workspace_size;
} mf_preprocess_args;

/* Workspace bytes mf_preprocess needs for args (a 256-byte multiple; 0 when
 * T*K <= 1024). Reads only layout, tokens, topk, experts, a_dtype, hidden_size
 * and max_m (masked) or m_capacity and align (contiguous), and checks them as
 * mf_preprocess does; pointers may still be NULL. */
MF_API mf_status mf_preprocess_workspace_size(const mf_preprocess_args *args, size_t *bytes);
/* Rows a contiguous layout needs in the worst case: T*K + E*(align-1), rounded up to align. */
MF_API mf_status mf_contiguous_capacity(int tokens, int topk, int experts, int align,
                                        int *rows);
/* Host hint for tile selection without a device read: ceil(T*K / E), at least 1. */
MF_API int mf_expected_m(int tokens, int topk, int experts);

MF_API mf_status mf_preprocess(mf_context *ctx, const mf_preprocess_args *args, mf_stream stream);

/* ---- SiLU-and-mul --------------------------------------------------------------
 * out[row, j] = silu(in[row, j]) * in[row, n + j] in fp32, rounded once, for
 * the valid rows: r < masked_m[e] (masked, rows of [E, max_m]) or
 * m_indices[row] >= 0 (contiguous, rows of [m_capacity]). Other rows are left
 * untouched.
 *   input   bf16 [rows, 2n], 16-byte aligned
 *   output  bf16 [rows, n], or e4m3 [rows, n] + out_scale (layout above)
 * Constraints: n % 8 == 0 (bf16 out) or n % 128 == 0 (e4m3 out).
 * e4m3 out: the groups are quantized from the fp32 products themselves (no
 * rounding to bf16 first): amax and q = x / scale use those fp32 values.
 * masked_m values outside [0, max_m] are clamped. expected_m is a host hint of
 * the typical rows per expert (0: unknown): it sizes the grid, never the result. */
typedef struct mf_silu_mul_args {
    mf_layout layout;
    const void *input;
    void *output;
    const int32_t *masked_m;  /* masked                                   */
    int experts;              /* masked: E in [1, 65535]                 */
    int max_m;                /* masked: rows per expert                 */
    int n;
    int expected_m;
    const int32_t *m_indices; /* contiguous                              */
    int m_capacity;           /* contiguous: rows                        */
    mf_dtype out_dtype;       /* 0 or MF_DTYPE_BF16, or MF_DTYPE_E4M3    */
    float *out_scale;         /* e4m3 only                               */
    int ue8m0;                /* e4m3 only: power-of-two scales          */
} mf_silu_mul_args;

MF_API mf_status mf_silu_mul(mf_context *ctx, const mf_silu_mul_args *args, mf_stream stream);

/* ---- combine --------------------------------------------------------------------
 * out[t, :] = bf16( scaling * sum over k with src2dst[t*K+k] >= 0 of
 *                   w[t, k] * d[src2dst[t*K+k], :] ), accumulated in fp32.
 * A token with no valid slot gets zeros. Entries of src2dst at or past d_rows
 * are skipped and flagged (MF_DEVICE_ERR_BAD_DST).
 *   d        bf16 [d_rows, H] (GEMM 2 output, masked or contiguous rows)
 *   out      bf16 [T, H]; H % 8 == 0; 16-byte aligned */
typedef struct mf_combine_args {
    const void *d;
    int64_t d_rows;
    const int32_t *src2dst;      /* [T*K]                              */
    const float *topk_weights;   /* [T, K] fp32                        */
    void *out;
    int tokens;                  /* T >= 0                             */
    int topk;                    /* K in [1, 32]                       */
    int hidden_size;             /* H                                  */
    float routed_scaling;        /* 0 means 1                          */
    int32_t *error_flags;        /* device flag word or NULL           */
} mf_combine_args;

MF_API mf_status mf_combine(mf_context *ctx, const mf_combine_args *args, mf_stream stream);

/* ---- grouped GEMM (NT) ------------------------------------------------------------
 * D[g, m, n] = sum_k A[g, m, k] * B[g, n, k], fp32 accumulation, bf16 out.
 *   a        masked: [E, max_m, K]; contiguous: [m_capacity, K]   (bf16 or e4m3)
 *   a_scale  e4m3: fp32 MN-major, as preprocess / silu_mul write it (see above)
 *   b        [E, N, K]                                           (bf16 or e4m3)
 *   b_scale  e4m3: fp32 [E, N/128, K/128], one scale per 128x128 block
 *   d        bf16, masked [E, max_m, N] (rows r < masked_m[g] written, others
 *            untouched), contiguous [m_capacity, N] (rows of -1 padding unspecified)
 * e4m3: D = sum over 128-k blocks of scale_a[m, kb] * scale_b[nb, kb] * (A_kb . B_kb),
 * each block's partial sum promoted out of the tensor cores into fp32.
 * Constraints (MF_ERR_UNSUPPORTED names the one that failed): N % 32 == 0;
 * K % 64 == 0 (bf16) or K % 128 == 0 (e4m3); a, b, d 16-byte aligned; e4m3:
 * max_m % 4 == 0 (masked) / m_capacity % 4 == 0, device sm_89 or newer;
 * contiguous: m_capacity a multiple of the tile's block M (any multiple of 128
 * works: mf_contiguous_capacity with align 128). */
typedef enum mf_gemm_family {
    MF_GEMM_PORTABLE = 0, /* mma.sync + cp.async (templates/gemm.cu), sm_80+      */
    MF_GEMM_SM90 = 1      /* TMA + wgmma, warp-specialized, persistent
                             (templates/gemm_sm90.cu), compute capability 9.0 only */
} mf_gemm_family;

typedef struct mf_gemm_config {
    int bm, bn;     /* block tile                                                 */
    int wm, wn;     /* portable: warps along M and N (threads = 32 * wm * wn);
                       sm90: math warpgroups (threads = 128 * (wm + 1)), each taking
                       bm / wm rows (e4m3 bm = 64 with wm = 2: half the columns), and
                       wn CTAs per cluster along N (1, or 2: the pair shares each
                       A tile through TMA multicast; needs an even count of n-tiles) */
    int stages;     /* pipeline depth (cp.async groups / TMA ring stages)          */
    mf_gemm_family family;
} mf_gemm_config;

typedef struct mf_gemm_args {
    mf_layout layout;
    mf_dtype dtype;             /* MF_DTYPE_BF16 or MF_DTYPE_E4M3 (A and B) */
    const void *a;
    const float *a_scale;
    const void *b;
    const float *b_scale;
    void *d;
    int experts, n, k;
    const int32_t *masked_m;    /* masked                                   */
    int max_m;                  /* masked                                   */
    int expected_m;             /* host hint of rows per expert, contiguous padding
                                   excluded (0: masked max_m, contiguous
                                   m_capacity / experts); tiles follow it   */
    const int32_t *m_indices;   /* contiguous                               */
    int m_capacity;             /* contiguous                               */
    const mf_gemm_config *config; /* NULL: the heuristic's choice           */
} mf_gemm_args;

/* The heuristic: picks the family and tile config for (rows per expert m, N,
 * K, groups, dtype) on a device with sm_count SMs of compute capability cc
 * (10 * major + minor: 90 for H100/H200, which get the sm90 family when a
 * config of it fits). Deterministic; the warmup uses it too. */
MF_API mf_status mf_gemm_choose(mf_dtype dtype, mf_layout layout, int m, int n, int k, int groups,
                                int sm_count, int cc, mf_gemm_config *out);
/* Every config both families offer for a dtype (for exploration; sm90 ones
 * run on compute capability 9.0 only): writes up to max entries, returns the
 * count in *count. */
MF_API mf_status mf_gemm_configs(mf_dtype dtype, mf_gemm_config *out, int max, int *count);

MF_API mf_status mf_gemm(mf_context *ctx, const mf_gemm_args *args, mf_stream stream);

/* ---- the MoE layer ------------------------------------------------------------------
 * One forward pass = preprocess -> GEMM 1 (w13) -> SiLU-and-mul -> GEMM 2 (w2)
 * -> combine, all on the caller's stream, with no allocation, no host
 * synchronization and (after mf_layer_prepare) no JIT: capturable in a CUDA
 * graph and replayable with new routing.
 *   w13  [E, 2N, H] (gate rows 0..N-1, up rows N..2N-1), w2 [E, H, N]
 *   e4m3 weights carry fp32 scales per 128x128 block: w13_scale [E, 2N/128, H/128],
 *   w2_scale [E, H/128, N/128]; activations are quantized per (row, 128) on the way.
 * Layout MF_LAYOUT_AUTO picks masked when its rows (E * max_tokens) are at most
 * twice the contiguous worst case (max_tokens * K + E * 127): decode-sized
 * batches get the masked layout, large ones the compact contiguous layout. */
#define MF_LAYOUT_AUTO ((mf_layout)0)

typedef struct mf_layer mf_layer;

typedef struct mf_layer_desc {
    int hidden;              /* H: multiple of 128                        */
    int intermediate;        /* N: multiple of 128                        */
    int experts;             /* E in [1, 1024]                            */
    int topk;                /* K in [1, 32]                              */
    mf_dtype dtype;          /* MF_DTYPE_BF16 or MF_DTYPE_E4M3            */
    mf_layout layout;        /* masked, contiguous or MF_LAYOUT_AUTO      */
    int ue8m0;               /* e4m3: power-of-two activation scales      */
    int max_tokens;          /* largest T a forward will see (>= 1)       */
    float routed_scaling;    /* 0 means 1                                 */
    const void *w13;
    const float *w13_scale;
    const void *w2;
    const float *w2_scale;
} mf_layer_desc;

/* Checks the description and keeps a copy (weights are borrowed, not copied). */
MF_API mf_status mf_layer_create(mf_context *ctx, const mf_layer_desc *desc, mf_layer **out);
MF_API void mf_layer_destroy(mf_layer *layer);
/* The layout the layer runs (resolves MF_LAYOUT_AUTO). */
MF_API mf_layout mf_layer_layout(const mf_layer *layer);
/* Device workspace bytes a forward of up to max_tokens tokens needs. */
MF_API mf_status mf_layer_workspace_size(const mf_layer *layer, size_t *bytes);
/* Loads every kernel a forward of 0..max_tokens tokens can launch (compiling
 * them when JIT is installed), so the forward path never loads or compiles. */
MF_API mf_status mf_layer_prepare(mf_layer *layer);

typedef struct mf_layer_io {
    const void *hidden;          /* [T, H] bf16                          */
    const int32_t *topk_ids;     /* [T, K], -1 = not on this rank        */
    const float *topk_weights;   /* [T, K] fp32                          */
    void *out;                   /* [T, H] bf16                          */
    int tokens;                  /* T in [0, max_tokens]                 */
    void *workspace;             /* mf_layer_workspace_size bytes        */
    size_t workspace_size;
    int32_t *error_flags;        /* device flag word or NULL             */
} mf_layer_io;

MF_API mf_status mf_layer_forward(mf_layer *layer, const mf_layer_io *io, mf_stream stream);

/* Time of each stage of the last forward (bench_layer): call with timing on. */
typedef struct mf_layer_stage_times {
    float preprocess_ms, gemm1_ms, silu_mul_ms, gemm2_ms, combine_ms;
} mf_layer_stage_times;
MF_API mf_status mf_layer_forward_timed(mf_layer *layer, const mf_layer_io *io, mf_stream stream,
                                        mf_layer_stage_times *times);

/* ---- device helpers (tests, examples, simple embedders) ------------------
 * Thin wrappers over the driver that act in ctx's CUDA context. */

MF_API mf_status mf_malloc(mf_context *ctx, void **ptr, size_t bytes);
MF_API void mf_free(mf_context *ctx, void *ptr);
MF_API mf_status mf_memcpy_htod(mf_context *ctx, void *dst, const void *src, size_t bytes);
MF_API mf_status mf_memcpy_dtoh(mf_context *ctx, void *dst, const void *src, size_t bytes);
MF_API mf_status mf_memcpy_dtod_async(mf_context *ctx, void *dst, const void *src, size_t bytes,
                                      mf_stream stream);
MF_API mf_status mf_memset_d8(mf_context *ctx, void *dst, uint8_t value, size_t bytes);
MF_API mf_status mf_stream_synchronize(mf_context *ctx, mf_stream stream);

/* A non-blocking stream of ctx's CUDA context. */
MF_API mf_status mf_stream_create(mf_context *ctx, mf_stream *out);
MF_API void mf_stream_destroy(mf_context *ctx, mf_stream stream);

/* CUDA graphs: capture the work enqueued on a stream, then replay it. */
typedef struct mf_graph mf_graph;
MF_API mf_status mf_graph_capture_begin(mf_context *ctx, mf_stream stream);
MF_API mf_status mf_graph_capture_end(mf_context *ctx, mf_stream stream, mf_graph **out);
MF_API mf_status mf_graph_launch(mf_graph *graph, mf_stream stream);
MF_API void mf_graph_destroy(mf_graph *graph);

/* Elapsed-time measurement with CUDA events on a stream. */
typedef struct mf_timer mf_timer;
MF_API mf_status mf_timer_create(mf_context *ctx, mf_timer **out);
MF_API void mf_timer_destroy(mf_timer *timer);
MF_API mf_status mf_timer_start(mf_timer *timer, mf_stream stream);
MF_API mf_status mf_timer_stop(mf_timer *timer, mf_stream stream);
/* Waits for the stop event and returns the milliseconds between the two. */
MF_API mf_status mf_timer_elapsed_ms(mf_timer *timer, float *ms);

#ifdef __cplusplus
}
#endif
#endif
