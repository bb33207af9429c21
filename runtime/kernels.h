/* Kernel lookup: loaded table, built-in set, opened archives, disk cache, then the
 * provider (JIT). */
#ifndef MF_KERNELS_H
#define MF_KERNELS_H

#include "context.h"

/* Returns the loaded kernel for a canonical spec, loading it on a miss. */
mf_status mf_kernel_get(mf_context *ctx, const char *spec, mf_kernel **out);

/* Launches k with cuLaunchKernelEx; raises the function's dynamic shared-memory
 * limit first when smem_bytes needs it. On sm_90+ every launch is a
 * programmatic dependent launch: k's blocks may start while the previous
 * kernel of the stream finishes, hiding the launch gap. So every template's
 * kernel calls mf_wait_prior_grid() (templates/common.cuh) before it touches
 * global memory, and mf_start_dependents() only after that wait, which keeps
 * the next kernel from starting before this one's predecessors completed.
 * (The one exception, the preprocess scatter, reads only the op's inputs
 * before its wait.) */
mf_status mf_kernel_launch(mf_context *ctx, mf_kernel *k, unsigned grid_x, unsigned grid_y,
                           unsigned grid_z, unsigned block_x, unsigned smem_bytes,
                           mf_stream stream, void **args);

/* How many clusters of k (`cluster` blocks of block_x threads and smem_bytes
 * each; the kernel's compiled cluster size) the device runs at once: a
 * persistent grid of clustered blocks is that many clusters, since a GPC
 * whose SM count is odd leaves an SM no partner. Asked once per kernel (its
 * launches use one shared-memory size up to a few bytes). */
mf_status mf_kernel_max_clusters(mf_context *ctx, mf_kernel *k, unsigned cluster,
                                 unsigned block_x, unsigned smem_bytes, int *out);

/* The archive embedded in the library at build time (NULL if it failed to open
 * or MOEFORGE_BUILTIN=off hides it).
 * Exported for the CLI's `list`, like the archive reader itself. */
__attribute__((visibility("default"))) const mf_archive *mf_builtin_archive(void);

/* Targets whose code runs on the device, best first: its own cubin ("sm_90a"),
 * older cubins of the same major, then PTX from newest to oldest. */
int mf_device_targets(const mf_device_info *info, char targets[][16], int max);

#endif
