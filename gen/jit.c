/* Compiles in a child process (NVRTC can crash its host on some sm_90a code)
 * and plugs that compiler into a runtime context as its kernel provider. */
#include "moeforge_gen.h"

#include "error.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

/* Reads until EOF into a growing buffer. */
static char *read_all(int fd, size_t *size)
{
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap);
    while (buf) {
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
        close(fds[0]);
        child_compile(fds[1], spec, arch, emit);
    }
    close(fds[1]);
    size_t size = 0;
    char *reply = read_all(fds[0], &size);
    close(fds[0]);
    mf_status s = wait_child(pid, spec);
    if (s == MF_OK)
        s = reply ? decode_reply(reply, size, spec, out)
                  : MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no host memory for the compiler's reply");
    free(reply);
    return s;
}

static mf_status jit_compile(void *user, const char *spec, const char *arch, mf_kernel_image *image)
{
    (void)user;
    mf_kernel_binary *b;
    mf_log(MF_LOG_INFO, "JIT compiling %s for %s", spec, arch);
    MF_TRY(mf_gen_compile_isolated(spec, arch, MF_EMIT_CUBIN, &b));
    image->data = b->cubin; /* ownership moves to the image; jit_release frees it */
    image->size = b->cubin_size;
    image->is_ptx = 0;
    memcpy(image->entry, b->entry, sizeof image->entry);
    b->cubin = NULL;
    mf_kernel_binary_free(b);
    return MF_OK;
}

static void jit_release(void *user, mf_kernel_image *image)
{
    (void)user;
    free((void *)image->data);
    image->data = NULL;
}

mf_status mf_jit_enable(mf_context *ctx)
{
    mf_kernel_provider provider = {jit_compile, jit_release, NULL};
    return mf_context_set_provider(ctx, &provider);
}
