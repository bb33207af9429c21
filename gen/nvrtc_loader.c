/* dlopen of NVRTC. */
#include "nvrtc_loader.h"

#include "error.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mf_nvrtc nvrtc;
static mf_status load_status;
static char load_message[1024];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void *open_first_found(char *path, size_t size)
{
    const char *env = getenv("MOEFORGE_NVRTC");
    const char *cuda_home = getenv("CUDA_HOME");
    char in_cuda_home[512] = "";
    if (cuda_home && *cuda_home)
        snprintf(in_cuda_home, sizeof in_cuda_home, "%.480s/lib64/libnvrtc.so", cuda_home);
    const char *candidates[] = {env, "libnvrtc.so.13", "libnvrtc.so", in_cuda_home,
                                "/usr/local/cuda/lib64/libnvrtc.so"};
    /* an explicit choice is the only one tried: no silent fallback */
    size_t count = env && *env ? 1 : sizeof candidates / sizeof candidates[0];
    for (size_t i = 0; i < count; i++) {
        if (!candidates[i] || !*candidates[i])
            continue;
        void *lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (lib) {
            snprintf(path, size, "%s", candidates[i]);
            return lib;
        }
    }
    return NULL;
}

static mf_status load_nvrtc(void)
{
    void *lib = open_first_found(nvrtc.path, sizeof nvrtc.path);
    if (!lib)
        return MF_FAIL(MF_ERR_NO_COMPILER,
                       "cannot load NVRTC (%s): %s", getenv("MOEFORGE_NVRTC") && *getenv("MOEFORGE_NVRTC")
                       ? "$MOEFORGE_NVRTC" : "libnvrtc.so.13, libnvrtc.so, $CUDA_HOME/lib64, "
                       "/usr/local/cuda/lib64", dlerror());
#define MF_NVRTC_FETCH(name)                                                                \
    if (!(nvrtc.name = (__typeof__(nvrtc.name))dlsym(lib, #name)))                          \
        return MF_FAIL(MF_ERR_NO_COMPILER, "%s lacks %s", nvrtc.path, #name);
    MF_NVRTC_FUNCTIONS(MF_NVRTC_FETCH)
#undef MF_NVRTC_FETCH
    nvrtc.nvrtcVersion(&nvrtc.major, &nvrtc.minor);
    mf_log(MF_LOG_DEBUG, "loaded NVRTC %d.%d from %s", nvrtc.major, nvrtc.minor, nvrtc.path);
    return MF_OK;
}

static void load_once_body(void)
{
    load_status = load_nvrtc();
    if (load_status != MF_OK)
        snprintf(load_message, sizeof load_message, "%s", mf_last_error());
}

mf_status mf_nvrtc_get(const mf_nvrtc **out)
{
    pthread_once(&load_once, load_once_body);
    if (load_status != MF_OK)
        return MF_FAIL(load_status, "%s", load_message);
    *out = &nvrtc;
    return MF_OK;
}
