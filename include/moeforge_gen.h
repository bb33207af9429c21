/* moeforge generator and JIT: render Lua templates, compile them with NVRTC,
 * and plug just-in-time compilation into a runtime context.
 *
 * Links Lua 5.4; NVRTC is loaded with dlopen on the first compile
 * ($MOEFORGE_NVRTC overrides the library path). Templates come embedded in the
 * library; $MOEFORGE_TEMPLATE_DIR points at a template folder for development.
 */
#ifndef MOEFORGE_GEN_H
#define MOEFORGE_GEN_H

#include "moeforge.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the generator; part of every cache key. */
#define MOEFORGE_GENERATOR_VERSION MOEFORGE_VERSION_STRING

/* What mf_gen_compile produces. */
enum { MF_EMIT_CUBIN = 1, MF_EMIT_PTX = 2 };

/* One compiled specialization. Owned by the caller: mf_kernel_binary_free. */
typedef struct mf_kernel_binary {
    char spec[1024];     /* canonical spec                                     */
    char entry[128];     /* extern "C" entry point                             */
    char arch[16];       /* real arch of the cubin, e.g. "sm_90a"              */
    char ptx_target[16]; /* virtual arch of the PTX, e.g. "compute_90a"        */
    void *cubin;         /* NULL unless MF_EMIT_CUBIN                          */
    size_t cubin_size;
    char *ptx;           /* NULL unless MF_EMIT_PTX; NUL-terminated            */
    size_t ptx_size;     /* bytes including the terminating NUL                */
    char *log;           /* NVRTC's log (warnings); "" when silent             */
    char options[512];   /* options but the target, canonical order, ' '-joined */
    int nvrtc_major, nvrtc_minor;
} mf_kernel_binary;

/* Rewrites any spec into its canonical form (parameters sorted by key). */
MF_API mf_status mf_gen_canonical_spec(const char *spec, char *out, size_t size);

/* Renders the CUDA C source of a spec; *source is malloc'd, caller frees. */
MF_API mf_status mf_gen_render(const char *spec, char **source, size_t *size);

/* Renders and compiles spec for arch ("sm_90a", "sm_80", ...), in this process. */
MF_API mf_status mf_gen_compile(const char *spec, const char *arch, unsigned emit,
                                mf_kernel_binary **out);

/* Same, in a child process: a crashing compiler returns MF_ERR_COMPILER_CRASHED
 * naming the spec instead of taking the caller down. */
MF_API mf_status mf_gen_compile_isolated(const char *spec, const char *arch, unsigned emit,
                                         mf_kernel_binary **out);

MF_API void mf_kernel_binary_free(mf_kernel_binary *binary);

/* Whole NVRTC log of this thread's last failed compile ("" if none). */
MF_API const char *mf_gen_last_log(void);

/* NVRTC's version (loads it); MF_ERR_NO_COMPILER when absent. */
MF_API mf_status mf_gen_nvrtc_version(int *major, int *minor);

/* Builds a deployment archive for a model: `model` is a preset name
 * ("deepseek-v3", "qwen3-30b-a3b", ...) or a model file (*.lua). Enumerates the
 * kernels its forward passes launch over its token range, compiles those the
 * cache lacks with `threads` threads (0: one per core; progress on a
 * terminal), and writes cubins for arch plus PTX to archive_path atomically.
 * *kernels (may be NULL) receives the number of distinct specs. */
MF_API mf_status mf_gen_precompile(const char *model, const char *arch, int threads,
                                   const char *archive_path, size_t *kernels);

/* Installs the JIT as ctx's kernel provider: a kernel missing from every
 * kernel set is rendered and compiled (isolated) for the device, then loaded. */
MF_API mf_status mf_jit_enable(mf_context *ctx);

#ifdef __cplusplus
}
#endif
#endif
