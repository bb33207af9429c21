/* The spec each op launches for given sizes. The ops use these to pick their
 * kernels, and the layer plan (plan.c) to list what a forward pass needs, so
 * a warmup over a token range compiles exactly what will be asked for. */
#ifndef MF_OP_SPECS_H
#define MF_OP_SPECS_H

#include "moeforge.h"
#include "spec.h"

/* T*K at most this: preprocess runs its one-launch fused stage. */
#define MF_PREPROCESS_FUSED_SLOTS 1024

/* stage: "fused", "rank", "scan", "scatter" or "scales"; the rank stage's block
 * size depends on the number of experts, the scan's also on slots = T * K, and
 * the scatter sums its own prefixes (prefix=sum) where no scan runs. */
mf_status mf_preprocess_spec(mf_layout layout, mf_dtype a_dtype, int ue8m0, int experts,
                             int64_t slots, const char *stage, mf_spec *spec);
/* Whether the chunked path (slots > MF_PREPROCESS_FUSED_SLOTS) runs its scan
 * stage: all but masked with at most 32 chunks of slots. */
int mf_preprocess_scans(mf_layout layout, int64_t slots);
mf_status mf_silu_mul_spec(const mf_silu_mul_args *args, int sm_count, mf_spec *spec);
mf_status mf_combine_spec(int topk, mf_spec *spec);
/* The tile config mf_gemm runs for these arguments on a device of sm_count SMs
 * and compute capability cc (10 * major + minor). */
mf_status mf_gemm_pick(const mf_gemm_args *args, int sm_count, int cc, mf_gemm_config *config);
mf_status mf_gemm_spec(mf_dtype dtype, mf_layout layout, const mf_gemm_config *config,
                       mf_spec *spec);

#endif
