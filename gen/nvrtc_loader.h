/* NVRTC, loaded with dlopen on first use so nothing links it: $MOEFORGE_NVRTC
 * alone when set, else libnvrtc.so.13 / libnvrtc.so from the loader path, then
 * $CUDA_HOME/lib64 and /usr/local/cuda/lib64. */
#ifndef MF_NVRTC_LOADER_H
#define MF_NVRTC_LOADER_H

#include <nvrtc.h>

#include "moeforge.h"

#define MF_NVRTC_FUNCTIONS(X) \
    X(nvrtcGetErrorString)    \
    X(nvrtcVersion)           \
    X(nvrtcCreateProgram)     \
    X(nvrtcDestroyProgram)    \
    X(nvrtcCompileProgram)    \
    X(nvrtcGetPTXSize)        \
    X(nvrtcGetPTX)            \
    X(nvrtcGetCUBINSize)      \
    X(nvrtcGetCUBIN)          \
    X(nvrtcGetProgramLogSize) \
    X(nvrtcGetProgramLog)

typedef struct mf_nvrtc {
#define MF_NVRTC_FIELD(name) __typeof__(&name) name;
    MF_NVRTC_FUNCTIONS(MF_NVRTC_FIELD)
#undef MF_NVRTC_FIELD
    int major, minor;
    char path[512]; /* where it was loaded from */
} mf_nvrtc;

/* Loads NVRTC once per process; MF_ERR_NO_COMPILER when absent. */
mf_status mf_nvrtc_get(const mf_nvrtc **out);

#endif
