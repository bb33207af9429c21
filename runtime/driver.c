/* dlopen of libcuda.so.1 and the function table. */
#include "driver.h"

#include "error.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static mf_driver driver;
static mf_status load_status;
static char load_message[512];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

typedef CUresult (*get_proc_fn)(const char *, void **, int, cuuint64_t,
                                CUdriverProcAddressQueryResult *);

static mf_status fetch_functions(get_proc_fn get_proc)
{
    void *fn;
    CUdriverProcAddressQueryResult found;
#define MF_DRIVER_FETCH(name)                                                        \
    if (get_proc(#name, &fn, CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &found) !=   \
            CUDA_SUCCESS || found != CU_GET_PROC_ADDRESS_SUCCESS || !fn)            \
        return MF_FAIL(MF_ERR_NO_DRIVER, "driver lacks %s (driver older than CUDA %d?)", \
                       #name, CUDA_VERSION / 1000);                                \
    driver.name = (__typeof__(driver.name))fn;
    MF_DRIVER_FUNCTIONS(MF_DRIVER_FETCH)
#undef MF_DRIVER_FETCH
    return MF_OK;
}

static mf_status load_driver(void)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return MF_FAIL(MF_ERR_NO_DRIVER, "cannot load libcuda.so.1: %s", dlerror());
    get_proc_fn get_proc = (get_proc_fn)dlsym(lib, "cuGetProcAddress_v2");
    if (!get_proc)
        return MF_FAIL(MF_ERR_NO_DRIVER, "libcuda.so.1 has no cuGetProcAddress_v2 (driver too old)");
    MF_TRY(fetch_functions(get_proc));
    CUresult r = driver.cuInit(0);
    if (r == CUDA_ERROR_NO_DEVICE)
        return MF_FAIL(MF_ERR_NO_DEVICE, "cuInit: no CUDA device");
    if (r != CUDA_SUCCESS)
        return mf_cuda_fail_at(__FILE__, __LINE__, "cuInit(0)", r);
    int version = 0;
    driver.cuDriverGetVersion(&version);
    mf_log(MF_LOG_DEBUG, "loaded libcuda.so.1, driver API %d", version);
    return MF_OK;
}

static void load_once_body(void)
{
    load_status = load_driver();
    if (load_status != MF_OK)
        snprintf(load_message, sizeof load_message, "%s", mf_last_error());
}

mf_status mf_driver_get(const mf_driver **out)
{
    pthread_once(&load_once, load_once_body);
    if (load_status != MF_OK)
        return MF_FAIL(load_status, "%s", load_message);
    *out = &driver;
    return MF_OK;
}

mf_status mf_cuda_fail_at(const char *file, int line, const char *call, CUresult r)
{
    const char *name = NULL, *text = NULL;
    if (driver.cuGetErrorName)
        driver.cuGetErrorName(r, &name);
    if (driver.cuGetErrorString)
        driver.cuGetErrorString(r, &text);
    mf_status s = MF_ERR_CUDA;
    if (r == CUDA_ERROR_OUT_OF_MEMORY)
        s = MF_ERR_OUT_OF_MEMORY;
    else if (r == CUDA_ERROR_NO_DEVICE || r == CUDA_ERROR_INVALID_DEVICE)
        s = MF_ERR_NO_DEVICE;
    return mf_fail_at(file, line, s, "%s failed: %s (%d): %s", call, name ? name : "?", (int)r,
                      text ? text : "");
}
