/* The Hopper grouped GEMM family (templates/gemm_sm90.cu): its shared-memory
 * size and its launch (tensor maps encoded on the host, a persistent grid). */
#ifndef MF_GEMM_SM90_H
#define MF_GEMM_SM90_H

#include "kernels.h"

/* K-major tiles move through shared memory in rows of 128 bytes (the sm90
 * family's swizzle row; the portable family's stage row). */
#define MF_GEMM_ROW_BYTES 128

/* The most dynamic shared memory one block may opt into on sm_90. */
#define MF_SM90_SMEM_LIMIT (227 * 1024)

/* Dynamic shared memory of a config, as the template lays it out. */
unsigned mf_gemm_sm90_smem(mf_dtype dtype, mf_layout layout, const mf_gemm_config *c, int experts);

/* Launches kernel k (the spec of config c) for validated arguments. */
mf_status mf_gemm_sm90_launch(mf_context *ctx, const mf_gemm_args *a, const mf_gemm_config *c,
                              mf_kernel *k, mf_stream stream);

#endif
