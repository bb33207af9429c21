/* A stand-in NVRTC whose compile crashes the process, as NVRTC 13.0 does on
 * some sm_90a code (DESIGN.md), or hangs when MF_FAKE_NVRTC_HANG is set:
 * loaded through MOEFORGE_NVRTC by the fault tests to prove an isolated
 * compile survives both. Every other call succeeds trivially so that the
 * fault happens inside nvrtcCompileProgram. */
#include <nvrtc.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

const char *nvrtcGetErrorString(nvrtcResult r)
{
    return r == NVRTC_SUCCESS ? "NVRTC_SUCCESS" : "fake NVRTC error";
}

nvrtcResult nvrtcVersion(int *major, int *minor)
{
    *major = 13;
    *minor = 0;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int n,
                               const char *const *headers, const char *const *include_names)
{
    (void)src, (void)name, (void)n, (void)headers, (void)include_names;
    *prog = (nvrtcProgram)prog;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog)
{
    *prog = 0;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int n, const char *const *options)
{
    (void)prog, (void)n, (void)options;
    while (getenv("MF_FAKE_NVRTC_HANG"))
        pause();
    raise(SIGSEGV);
    return NVRTC_ERROR_INTERNAL_ERROR;
}

static nvrtcResult unavailable(void)
{
    return NVRTC_ERROR_INVALID_PROGRAM;
}

nvrtcResult nvrtcGetPTXSize(nvrtcProgram p, size_t *s) { (void)p, (void)s; return unavailable(); }
nvrtcResult nvrtcGetPTX(nvrtcProgram p, char *b) { (void)p, (void)b; return unavailable(); }
nvrtcResult nvrtcGetCUBINSize(nvrtcProgram p, size_t *s) { (void)p, (void)s; return unavailable(); }
nvrtcResult nvrtcGetCUBIN(nvrtcProgram p, char *b) { (void)p, (void)b; return unavailable(); }
nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram p, size_t *s) { (void)p; *s = 1; return NVRTC_SUCCESS; }
nvrtcResult nvrtcGetProgramLog(nvrtcProgram p, char *b) { (void)p; b[0] = 0; return NVRTC_SUCCESS; }
