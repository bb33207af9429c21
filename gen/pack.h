/* Deployment archives: one file (index, cubins, PTX; versioned and
 * checksummed, runtime/archive.h) that the runtime maps and serves with no Lua
 * and no NVRTC. Kernels come through the cache, so packing again is cheap. */
#ifndef MF_PACK_H
#define MF_PACK_H

#include "warmup.h"

/* Warms specs x options->targets into c, built-in kernels included (an
 * archive stands alone), and writes them all to path atomically. When a
 * kernel fails nothing is written and the report lists the failures. */
mf_status mf_pack(mf_cache *c, const char *const *specs, size_t count,
                  const mf_warmup_options *options, const char *path,
                  mf_warmup_report *report);

/* Writes every kernel the cache directory's spec indexes name to path;
 * *kernels (may be NULL) counts them. */
mf_status mf_pack_cache(mf_cache *c, const char *path, size_t *kernels);

#endif
