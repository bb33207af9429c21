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
    MF_ERR_IO                 /* file system error                               */
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
 * Lookup order: loaded kernels, the set embedded at build time, archives
 * opened with mf_context_open_archive (most recent first), then the JIT
 * provider when one is installed (see moeforge_gen.h). */

/* Maps an archive file (written by `moeforge pack` or the build) and serves
 * kernels from it. The context keeps it open until destroyed. */
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

/* SiLU-and-mul: out[e, r, j] = silu(in[e, r, j]) * in[e, r, n + j], in fp32,
 * rounded once to bf16, for rows r < masked_m[e] (masked layout).
 * Rows at or past masked_m[e] are left untouched.
 *   input   bf16 [experts, max_m, 2n]   16-byte aligned
 *   output  bf16 [experts, max_m, n]    16-byte aligned
 *   masked_m int32 [experts] (device)   values outside [0, max_m] are clamped
 * Constraints: experts >= 1, max_m >= 1, n >= 8 and n % 8 == 0.
 * expected_m is a host hint of the typical masked_m (0: unknown); it sizes the
 * grid only, never the result. */
typedef struct mf_silu_mul_args {
    mf_layout layout;      /* MF_LAYOUT_MASKED                        */
    const void *input;
    void *output;
    const int32_t *masked_m;
    int experts;
    int max_m;
    int n;
    int expected_m;
} mf_silu_mul_args;

MF_API mf_status mf_silu_mul(mf_context *ctx, const mf_silu_mul_args *args, mf_stream stream);

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
