/* Parallel warmup: brings every (spec, target) of a list into a kernel cache
 * with a pool of threads, one NVRTC program per task (compiled in a child
 * process, so a crashing compile fails one task, not the pool). Cache hits
 * cost a render and a hash; kernels the runtime has built in are skipped
 * unless asked for. The longest expected compiles are taken first; failures
 * are collected and reported together, in the caller's order. */
#ifndef MF_WARMUP_H
#define MF_WARMUP_H

#include <stddef.h>

#include "cache.h"

typedef enum mf_progress_mode {
    MF_PROGRESS_AUTO, /* on when stderr is a terminal */
    MF_PROGRESS_OFF,
    MF_PROGRESS_ON
} mf_progress_mode;

typedef struct mf_warmup_options {
    const char *const *targets; /* "sm_90a" (cubin), "compute_90a" (PTX), ... */
    int target_count;
    int threads;                /* 0: one per online core */
    mf_progress_mode progress;  /* "\r12/40 kernels  3.1 kernels/s  ETA 0:09" on stderr */
    int include_builtin;        /* also cache what the runtime's built-in set holds */
} mf_warmup_options;

typedef struct mf_warmup_failure {
    char *spec;
    char target[16];
    mf_status status;
    char *message; /* mf_last_error() of the task */
} mf_warmup_failure;

typedef struct mf_warmup_report {
    size_t tasks;    /* specs x targets */
    size_t hits;     /* already cached */
    size_t builtin;  /* skipped: in the runtime's built-in set */
    size_t compiled;
    size_t failed;
    mf_warmup_failure *failures; /* `failed` of them, in the caller's order */
    double seconds;  /* wall time */
    int threads;     /* threads used */
} mf_warmup_report;

/* Threads used for threads = 0: the online cores. */
int mf_warmup_default_threads(void);

/* Warms specs x targets into c. MF_OK when every task succeeded; otherwise
 * the status of the first failure, with a message counting them, and the
 * report lists each. The report is filled in either case; free it with
 * mf_warmup_report_free. */
mf_status mf_warmup(mf_cache *c, const char *const *specs, size_t count,
                    const mf_warmup_options *options, mf_warmup_report *report);

void mf_warmup_report_free(mf_warmup_report *report);

/* The order the pool takes specs in (each with all its targets): order[i]
 * is an index into specs, the longest expected compile first, equal
 * estimates in list order. order holds count entries. */
mf_status mf_warmup_order(const char *const *specs, size_t count, size_t *order);

#endif
