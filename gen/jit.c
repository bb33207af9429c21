/* Compiles in a child process (NVRTC can crash its host on some sm_90a code)
 * and plugs that compiler, through the kernel cache, into a runtime context
 * as its kernel provider. */
#define _GNU_SOURCE /* close_range */
#include "moeforge_gen.h"

#include "cache.h"
#include "error.h"

#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What the child sends back: this header, then message or payloads. */
typedef struct child_reply {
    mf_status status;
    size_t message_size;
    mf_kernel_binary binary; /* pointers cleared; sizes say what follows */
    size_t log_size;
} child_reply;

static int write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

static void child_compile(int fd, const char *spec, const char *arch, unsigned emit)
{
    mf_kernel_binary *b = NULL;
    child_reply reply;
    memset(&reply, 0, sizeof reply);
    reply.status = mf_gen_compile(spec, arch, emit, &b);
    const char *message = reply.status == MF_OK ? "" : mf_last_error();
    reply.message_size = strlen(message);
    if (b) {
        reply.binary = *b;
        reply.binary.cubin = reply.binary.ptx = reply.binary.log = NULL;
        reply.log_size = b->log ? strlen(b->log) : 0;
    }
    int failed = write_all(fd, &reply, sizeof reply) || write_all(fd, message, reply.message_size);
    if (b && !failed)
        failed = write_all(fd, b->cubin, b->cubin_size) || write_all(fd, b->ptx, b->ptx_size) ||
                 write_all(fd, b->log, reply.log_size);
    _exit(failed ? 3 : 0);
}

/* Seconds a compile may take before its process is killed: a hung compiler
 * must not hang its caller. MOEFORGE_COMPILE_TIMEOUT overrides the default. */
static int compile_timeout_seconds(void)
{
    const char *env = getenv("MOEFORGE_COMPILE_TIMEOUT");
    int seconds = env ? atoi(env) : 0;
    return seconds > 0 ? seconds : 600;
}

/* Reads until EOF into a growing buffer; *timed_out when the deadline passes
 * first. */
static char *read_all(int fd, size_t *size, int timeout_seconds, int *timed_out)
{
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap);
    time_t deadline = time(NULL) + timeout_seconds;
    *timed_out = 0;
    while (buf) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(deadline - time(NULL));
        int ready = left > 0 ? poll(&p, 1, left * 1000) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            *timed_out = 1;
            break;
        }
        if (used == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    *size = used;
    return buf;
}

static void *take(const char **p, size_t size, int nul_terminate)
{
    char *copy = malloc(size + (size_t)nul_terminate);
    if (copy) {
        memcpy(copy, *p, size);
        if (nul_terminate)
            copy[size] = 0;
    }
    *p += size;
    return copy;
}

static mf_status decode_reply(const char *buf, size_t size, const char *spec,
                              mf_kernel_binary **out)
{
    child_reply r;
    if (size < sizeof r)
        return MF_FAIL(MF_ERR_COMPILER_CRASHED, "compiler process for '%s' sent a short reply", spec);
    memcpy(&r, buf, sizeof r);
    const char *p = buf + sizeof r;
    size_t rest = size - sizeof r;
    size_t payload = r.status == MF_OK ? r.binary.cubin_size + r.binary.ptx_size + r.log_size : 0;
    if (r.message_size > rest || payload > rest - r.message_size)
        return MF_FAIL(MF_ERR_COMPILER_CRASHED, "compiler process for '%s' sent a truncated reply",
                       spec);
    if (r.status != MF_OK)
        return MF_FAIL(r.status, "%.*s", (int)r.message_size, p);
    p += r.message_size;
    mf_kernel_binary *b = malloc(sizeof *b);
    if (!b)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no host memory for the compiled '%s'", spec);
    *b = r.binary;
    b->cubin = b->cubin_size ? take(&p, b->cubin_size, 0) : NULL;
    b->ptx = b->ptx_size ? take(&p, b->ptx_size, 0) : NULL;
    b->log = take(&p, r.log_size, 1);
    if ((b->cubin_size && !b->cubin) || (b->ptx_size && !b->ptx) || !b->log) {
        mf_kernel_binary_free(b);
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no host memory for the compiled '%s'", spec);
    }
    *out = b;
    return MF_OK;
}

static mf_status wait_child(pid_t pid, const char *spec)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return MF_FAIL(MF_ERR_COMPILER_CRASHED, "waitpid for compiler of '%s': %s", spec,
                           strerror(errno));
    if (WIFSIGNALED(status))
        return MF_FAIL(MF_ERR_COMPILER_CRASHED, "compiler process for '%s' died of signal %d (%s)",
                       spec, WTERMSIG(status), strsignal(WTERMSIG(status)));
    if (WEXITSTATUS(status) != 0)
        return MF_FAIL(MF_ERR_COMPILER_CRASHED, "compiler process for '%s' exited with %d", spec,
                       WEXITSTATUS(status));
    return MF_OK;
}

/* The child drops every descriptor but stdio and its reply pipe. Forked by
 * one warmup thread, it would otherwise hold other threads' reply pipes open
 * (their readers wait for its exit to see EOF) and their cache lock files
 * (flock locks last until every copy is closed). */
static void keep_only_descriptor(int fd)
{
    if (fd > 3)
        close_range(3, (unsigned)fd - 1, 0);
    close_range((unsigned)fd + 1, ~0u, 0);
}

mf_status mf_gen_compile_isolated(const char *spec, const char *arch, unsigned emit,
                                  mf_kernel_binary **out)
{
    if (!spec || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gen_compile_isolated: null argument");
    int fds[2];
    if (pipe(fds) != 0)
        return MF_FAIL(MF_ERR_IO, "pipe for the compiler process: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return MF_FAIL(MF_ERR_IO, "fork for the compiler process: %s", strerror(errno));
    }
    if (pid == 0) {
        keep_only_descriptor(fds[1]);
        child_compile(fds[1], spec, arch, emit);
    }
    close(fds[1]);
    size_t size = 0;
    int timeout = compile_timeout_seconds(), timed_out;
    char *reply = read_all(fds[0], &size, timeout, &timed_out);
    close(fds[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    mf_status s = wait_child(pid, spec);
    if (timed_out)
        s = MF_FAIL(MF_ERR_COMPILER_CRASHED, "compiler process for '%s' timed out after %d s "
                    "(MOEFORGE_COMPILE_TIMEOUT) and was killed", spec, timeout);
    if (s == MF_OK)
        s = reply ? decode_reply(reply, size, spec, out)
                  : MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no host memory for the compiler's reply");
    free(reply);
    return s;
}

/* One cache per process for every context's JIT: the default directory, or
 * memory when it cannot be used (see cache.h). */
static mf_cache *jit_cache;
static mf_status jit_cache_status;
static pthread_once_t jit_cache_once = PTHREAD_ONCE_INIT;

static void open_jit_cache(void)
{
    jit_cache_status = mf_cache_open(NULL, &jit_cache);
}

/* Copies the payload out: the image outlives the cache entry's mapping. */
static mf_status image_from_entry(const mf_archive_entry *e, mf_kernel_image *image)
{
    void *copy = malloc(e->size);
    if (!copy)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no host memory for the image of %s", e->spec);
    memcpy(copy, e->data, e->size);
    image->data = copy; /* jit_release frees it */
    image->size = e->size;
    image->is_ptx = e->is_ptx;
    snprintf(image->entry, sizeof image->entry, "%s", e->entry);
    return MF_OK;
}

/* A runtime miss: compiled under the cache's lock unless another process did it. */
static mf_status jit_compile(void *user, const char *spec, const char *arch, mf_kernel_image *image)
{
    mf_cache *cache = user;
    mf_cache_outcome got;
    MF_TRY(mf_cache_ensure(cache, spec, arch, &got));
    mf_log(MF_LOG_INFO, "JIT %s %s for %s", got == MF_CACHE_COMPILED ? "compiled" : "found cached",
           spec, arch);
    if (got == MF_CACHE_COMPILED)
        mf_cache_evict(cache, mf_cache_max_bytes(), NULL);
    mf_archive *a;
    mf_archive_entry e;
    MF_TRY(mf_cache_open_entry(cache, spec, arch, &a));
    mf_status s = mf_archive_entry_at(a, 0, &e);
    if (s == MF_OK)
        s = image_from_entry(&e, image);
    mf_archive_close(a);
    return s;
}

static void jit_release(void *user, mf_kernel_image *image)
{
    (void)user;
    free((void *)image->data);
    image->data = NULL;
}

mf_status mf_jit_enable(mf_context *ctx)
{
    pthread_once(&jit_cache_once, open_jit_cache);
    MF_TRY(jit_cache_status);
    mf_kernel_provider provider = {jit_compile, jit_release, jit_cache};
    return mf_context_set_provider(ctx, &provider);
}
