/* Architecture names the generator compiles for. */
#ifndef MF_ARCH_H
#define MF_ARCH_H

#include "moeforge.h"

/* Accepts "sm_<digits>[a]" (sm_90a, sm_80, sm_100a) and writes the matching
 * virtual arch of its PTX ("compute_90a"); MF_ERR_INVALID_ARGUMENT otherwise. */
mf_status mf_arch_check(const char *arch, char ptx_target[16]);

/* The compute capability (10 * major + minor) of a checked arch: sm_90a -> 90. */
int mf_arch_cc(const char *arch);

#endif
