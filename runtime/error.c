/* Status strings, the per-thread last error and MOEFORGE_LOG logging. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[2048];

const char *mf_status_string(mf_status status)
{
    switch (status) {
    case MF_OK: return "ok";
    case MF_ERR_INVALID_ARGUMENT: return "invalid argument";
    case MF_ERR_MISALIGNED: return "misaligned pointer or size";
    case MF_ERR_UNSUPPORTED: return "unsupported";
    case MF_ERR_NO_DRIVER: return "no CUDA driver (libcuda.so.1 not found)";
    case MF_ERR_NO_DEVICE: return "no CUDA device";
    case MF_ERR_CUDA: return "CUDA driver call failed";
    case MF_ERR_OUT_OF_MEMORY: return "out of memory";
    case MF_ERR_KERNEL_NOT_FOUND: return "kernel not found in any cache and no JIT available";
    case MF_ERR_SPEC: return "malformed kernel spec";
    case MF_ERR_TEMPLATE: return "template error";
    case MF_ERR_COMPILE: return "kernel compilation failed";
    case MF_ERR_COMPILER_CRASHED: return "kernel compiler crashed";
    case MF_ERR_NO_COMPILER: return "no NVRTC (libnvrtc not found)";
    case MF_ERR_ARCHIVE: return "corrupt or truncated archive";
    case MF_ERR_ARCHIVE_VERSION: return "archive format version not supported";
    case MF_ERR_ARCH_MISMATCH: return "archive built for another GPU architecture";
    case MF_ERR_IO: return "file system error";
    case MF_ERR_UNTRUSTED: return "kernel file not trusted (owner or permissions)";
    }
    return "unknown status";
}

const char *mf_last_error(void)
{
    return last_error;
}

const char *mf_version(void)
{
    return MOEFORGE_VERSION_STRING;
}

mf_status mf_fail_at(const char *file, int line, mf_status status, const char *fmt, ...)
{
    char msg[sizeof last_error - 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    snprintf(last_error, sizeof last_error, "%s (%s:%d)", msg, base ? base + 1 : file, line);
    mf_log(MF_LOG_DEBUG, "error: %s: %s", mf_status_string(status), last_error);
    return status;
}

static int configured_level(void)
{
    static int level = -1; /* benign race: every thread computes the same value */
    if (level < 0) {
        const char *env = getenv("MOEFORGE_LOG");
        static const char *names[] = {"error", "warn", "info", "debug"};
        int found = MF_LOG_WARN;
        for (int i = 0; env && i < 4; i++)
            if (strcmp(env, names[i]) == 0)
                found = i;
        level = found;
    }
    return level;
}

int mf_log_enabled(mf_log_level level)
{
    return (int)level <= configured_level();
}

void mf_log(mf_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"error", "warn", "info", "debug"};
    if (!mf_log_enabled(level))
        return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "moeforge %s: %s\n", tags[level], msg);
}
