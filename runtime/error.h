/* Per-thread error messages and logging shared by the runtime and the generator. */
#ifndef MF_ERROR_H
#define MF_ERROR_H

#include "moeforge.h"

/* Records "message (file:line)" as this thread's last error and returns status. */
mf_status mf_fail_at(const char *file, int line, mf_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define MF_FAIL(status, ...) mf_fail_at(__FILE__, __LINE__, (status), __VA_ARGS__)

/* Evaluates a call returning mf_status and returns its status on failure. */
#define MF_TRY(call)                     \
    do {                                 \
        mf_status mf_try_s_ = (call);    \
        if (mf_try_s_ != MF_OK)          \
            return mf_try_s_;            \
    } while (0)

typedef enum mf_log_level { MF_LOG_ERROR = 0, MF_LOG_WARN, MF_LOG_INFO, MF_LOG_DEBUG } mf_log_level;

/* Logs to stderr when MOEFORGE_LOG (error|warn|info|debug, default warn) allows it. */
void mf_log(mf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mf_log_enabled(mf_log_level level);

#endif
