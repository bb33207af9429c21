/* The CUDA driver API, loaded with dlopen("libcuda.so.1") on first use.
 * Nothing links libcuda: a process starts on any machine and gets MF_ERR_NO_DRIVER. */
#ifndef MF_DRIVER_H
#define MF_DRIVER_H

#include <cuda.h>

#include "moeforge.h"

/* X(name): every driver entry point the runtime calls, fetched by cuGetProcAddress
 * at the ABI of the headers we build with (CUDA_VERSION). */
#define MF_DRIVER_FUNCTIONS(X)   \
    X(cuInit)                    \
    X(cuDriverGetVersion)        \
    X(cuGetErrorName)            \
    X(cuGetErrorString)          \
    X(cuDeviceGetCount)          \
    X(cuDeviceGet)               \
    X(cuDeviceGetName)           \
    X(cuDeviceGetAttribute)      \
    X(cuDevicePrimaryCtxRetain)  \
    X(cuDevicePrimaryCtxRelease) \
    X(cuCtxPushCurrent)          \
    X(cuCtxPopCurrent)           \
    X(cuModuleLoadDataEx)        \
    X(cuModuleUnload)            \
    X(cuModuleGetFunction)       \
    X(cuFuncSetAttribute)        \
    X(cuFuncGetAttribute)        \
    X(cuLaunchKernelEx)          \
    X(cuOccupancyMaxActiveClusters) \
    X(cuMemAlloc)                \
    X(cuMemFree)                 \
    X(cuMemcpyHtoD)              \
    X(cuMemcpyDtoH)              \
    X(cuMemcpyDtoDAsync)         \
    X(cuMemsetD8)                \
    X(cuStreamSynchronize)       \
    X(cuStreamCreate)            \
    X(cuStreamDestroy)           \
    X(cuStreamBeginCapture)      \
    X(cuStreamEndCapture)        \
    X(cuGraphInstantiateWithFlags) \
    X(cuGraphLaunch)             \
    X(cuGraphExecDestroy)        \
    X(cuGraphDestroy)            \
    X(cuEventCreate)             \
    X(cuEventDestroy)            \
    X(cuEventRecord)             \
    X(cuEventSynchronize)        \
    X(cuEventElapsedTime)        \
    X(cuTensorMapEncodeTiled)

typedef struct mf_driver {
#define MF_DRIVER_FIELD(name) __typeof__(&name) name;
    MF_DRIVER_FUNCTIONS(MF_DRIVER_FIELD)
#undef MF_DRIVER_FIELD
} mf_driver;

/* Loads the driver once per process and calls cuInit; later calls return the
 * same table (or the same failure). */
mf_status mf_driver_get(const mf_driver **out);

/* Turns a failed CUresult into MF_ERR_CUDA (or OUT_OF_MEMORY / NO_DEVICE) with
 * a message naming the call, the error and where it happened. */
mf_status mf_cuda_fail_at(const char *file, int line, const char *call, CUresult r);

/* CU_CHECK(drv->cuX(...)): returns from the enclosing function on failure. */
#define CU_CHECK(expr)                                                  \
    do {                                                                \
        CUresult cu_check_r_ = (expr);                                  \
        if (cu_check_r_ != CUDA_SUCCESS)                                \
            return mf_cuda_fail_at(__FILE__, __LINE__, #expr, cu_check_r_); \
    } while (0)

#endif
