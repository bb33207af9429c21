/* Helpers shared by the ops: alignment checks, kernel lookup by spec, error flags. */
#ifndef MF_OP_COMMON_H
#define MF_OP_COMMON_H

#include "kernels.h"
#include "spec.h"

static inline int mf_misaligned16(const void *p)
{
    return ((uintptr_t)p & 15) != 0;
}

/* Formats spec canonically and returns its loaded kernel. */
mf_status mf_op_kernel(mf_context *ctx, const mf_spec *spec, mf_kernel **out);

#endif
