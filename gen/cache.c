/* The kernel cache, generator side: keys, compiling on a miss under a lock,
 * atomic stores (see cache.h and runtime/disk_cache.h). */
#define _GNU_SOURCE /* dladdr */
#include "cache.h"

#include "archive_writer.h"
#include "error.h"
#include "moeforge_gen.h"
#include "nvrtc_loader.h"
#include "sha256.h"
#include "spec.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Entries kept in memory when the directory cannot take them; never freed
 * before the cache, since archives opened on them point into their bytes. */
typedef struct memory_entry {
    struct memory_entry *next;
    char name[96];
    void *data;
    size_t size;
} memory_entry;

/* A directory path plus an entry's name. */
#define ENTRY_PATH_MAX (PATH_MAX + 128)

struct mf_cache {
    char dir[PATH_MAX];
    int readable;   /* dir is trusted and read */
    int persistent; /* new entries are written to dir */
    pthread_mutex_t lock; /* guards memory */
    memory_entry *memory; /* newest first */
};

/* ---- keys ------------------------------------------------------------------------- */

static void hash_field(mf_sha256 *h, const char *name, const char *value)
{
    char head[96];
    snprintf(head, sizeof head, "%s %zu:", name, strlen(value)); /* length-prefixed */
    mf_sha256_update(h, head, strlen(head));
    mf_sha256_update(h, value, strlen(value));
}

void mf_cache_content_key(const mf_cache_key_input *in, char hex[MF_CACHE_KEY_HEX])
{
    char format[16];
    snprintf(format, sizeof format, "%d", MF_CACHE_FORMAT_VERSION);
    mf_sha256 h;
    mf_sha256_init(&h);
    hash_field(&h, "format", format);
    hash_field(&h, "generator", in->generator);
    hash_field(&h, "spec", in->spec);
    hash_field(&h, "target", in->target);
    hash_field(&h, "options", in->options);
    hash_field(&h, "nvrtc", in->nvrtc);
    hash_field(&h, "source", in->source);
    uint8_t digest[32];
    mf_sha256_final(&h, digest);
    mf_sha256_hex(digest, hex);
}

static char nvrtc_identity[640];
static mf_status nvrtc_status;
static pthread_once_t nvrtc_once = PTHREAD_ONCE_INIT;

static void find_nvrtc_identity(void)
{
    const mf_nvrtc *nv;
    nvrtc_status = mf_nvrtc_get(&nv);
    if (nvrtc_status != MF_OK)
        return;
    Dl_info info;
    struct stat st;
    const char *file = "", *base;
    long long size = 0;
    if (dladdr((void *)nv->nvrtcVersion, &info) && info.dli_fname && stat(info.dli_fname, &st) == 0)
        file = info.dli_fname, size = (long long)st.st_size;
    base = strrchr(file, '/');
    snprintf(nvrtc_identity, sizeof nvrtc_identity, "%d.%d %s %lld", nv->major, nv->minor,
             base ? base + 1 : file, size);
}

mf_status mf_cache_nvrtc_identity(const char **identity)
{
    pthread_once(&nvrtc_once, find_nvrtc_identity);
    if (nvrtc_status != MF_OK)
        return MF_FAIL(nvrtc_status, "cache keys need NVRTC's version: NVRTC unavailable");
    *identity = nvrtc_identity;
    return MF_OK;
}

/* Renders spec: the content key covers the source NVRTC will see. */
static mf_status content_key_of(const char *spec, const char *target, char hex[MF_CACHE_KEY_HEX])
{
    const char *nvrtc;
    char *source;
    MF_TRY(mf_cache_nvrtc_identity(&nvrtc));
    MF_TRY(mf_gen_render(spec, &source, NULL));
    mf_cache_key_input in = {spec, target, source, MF_CACHE_COMPILE_OPTIONS, nvrtc,
                             MOEFORGE_GENERATOR_VERSION};
    mf_cache_content_key(&in, hex);
    free(source);
    return MF_OK;
}

/* ---- opening ---------------------------------------------------------------------- */

/* mkdir -p; missing components are created 0700 (XDG asks that of ~/.cache). */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static void use_directory(mf_cache *c, const char *dir)
{
    if (snprintf(c->dir, sizeof c->dir, "%s", dir) >= (int)sizeof c->dir) {
        mf_log(MF_LOG_WARN, "cache directory path too long: kernels are kept in memory");
        return;
    }
    if (make_dirs(c->dir) != 0) {
        mf_log(MF_LOG_WARN, "cannot create cache directory %s (%s): kernels are kept in memory",
               c->dir, strerror(errno));
        return;
    }
    if (mf_disk_cache_check_dir(c->dir) != MF_OK) { /* warned about */
        mf_log(MF_LOG_INFO, "kernels are kept in memory");
        return;
    }
    c->readable = 1;
    c->persistent = access(c->dir, W_OK | X_OK) == 0;
    if (!c->persistent)
        mf_log(MF_LOG_WARN, "cache directory %s is read-only (%s): it is read, new kernels are "
               "kept in memory", c->dir, strerror(errno));
}

mf_status mf_cache_open(const char *dir, mf_cache **out)
{
    mf_cache *c = calloc(1, sizeof *c);
    if (!c)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for a kernel cache");
    pthread_mutex_init(&c->lock, NULL);
    char fallback[PATH_MAX];
    if (!mf_disk_cache_enabled())
        mf_log(MF_LOG_INFO, "MOEFORGE_CACHE=off: kernels are kept in memory");
    else if (dir)
        use_directory(c, dir);
    else if (mf_disk_cache_default_dir(fallback, sizeof fallback) == MF_OK)
        use_directory(c, fallback);
    else
        mf_log(MF_LOG_WARN, "%s: kernels are kept in memory", mf_last_error());
    *out = c;
    return MF_OK;
}

static void free_memory(mf_cache *c)
{
    while (c->memory) {
        memory_entry *m = c->memory;
        c->memory = m->next;
        free(m->data);
        free(m);
    }
}

void mf_cache_close(mf_cache *c)
{
    if (!c)
        return;
    free_memory(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const char *mf_cache_directory(const mf_cache *c)
{
    return c->readable ? c->dir : NULL;
}

int mf_cache_persistent(const mf_cache *c)
{
    return c->persistent;
}

/* ---- stores ----------------------------------------------------------------------- */

static memory_entry *find_in_memory(mf_cache *c, const char *name)
{
    pthread_mutex_lock(&c->lock);
    memory_entry *m = c->memory;
    while (m && strcmp(m->name, name) != 0)
        m = m->next;
    pthread_mutex_unlock(&c->lock);
    return m;
}

/* Memory first (it holds what the directory could not take), then the directory. */
static mf_status open_named(mf_cache *c, const char *name, const char *what, mf_archive **out)
{
    memory_entry *m = find_in_memory(c, name);
    if (m)
        return mf_archive_open_memory(m->data, m->size, name, out);
    if (!c->readable)
        return MF_ERR_KERNEL_NOT_FOUND;
    return mf_disk_cache_open(c->dir, name, what, out);
}

static mf_status keep_in_memory(mf_cache *c, const char *name, mf_archive_writer *w)
{
    memory_entry *m = calloc(1, sizeof *m);
    if (!m)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for cache entry %s", name);
    snprintf(m->name, sizeof m->name, "%s", name);
    mf_status s = mf_archive_writer_serialize(w, &m->data, &m->size);
    if (s != MF_OK) {
        free(m);
        return s;
    }
    pthread_mutex_lock(&c->lock);
    m->next = c->memory;
    c->memory = m;
    pthread_mutex_unlock(&c->lock);
    return MF_OK;
}

/* Atomic write into the directory; in memory when that fails. */
static mf_status store_named(mf_cache *c, const char *name, mf_archive_writer *w)
{
    if (c->persistent) {
        char path[ENTRY_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", c->dir, name);
        if (mf_archive_writer_write(w, path) == MF_OK)
            return MF_OK;
        mf_log(MF_LOG_WARN, "%s: kept in memory", mf_last_error());
    }
    return keep_in_memory(c, name, w);
}

/* One-entry archive: the shape of both content entries and spec indexes. */
static mf_status store_one(mf_cache *c, const char *name, const char *spec, const char *target,
                           const char *entry, int is_ptx, const void *data, size_t size)
{
    mf_archive_writer *w;
    MF_TRY(mf_archive_writer_create(MOEFORGE_GENERATOR_VERSION, &w));
    mf_status s = mf_archive_writer_add(w, spec, target, entry, is_ptx, data, size);
    if (s == MF_OK)
        s = store_named(c, name, w);
    mf_archive_writer_destroy(w);
    return s;
}

/* ---- lookups and compiles --------------------------------------------------------- */

/* MF_OK with the entry point when a valid content entry is there;
 * MF_ERR_KERNEL_NOT_FOUND when there is none; MF_ERR_ARCHIVE (warned about)
 * when it is corrupt. */
static mf_status find_content(mf_cache *c, const char *spec, const char *target,
                              const char *key, char entry[MF_ENTRY_MAX])
{
    char name[96];
    mf_archive *a;
    mf_disk_cache_content_name(key, name, sizeof name);
    mf_status s = open_named(c, name, "cache entry", &a);
    if (s != MF_OK)
        return s == MF_ERR_KERNEL_NOT_FOUND ? s : MF_ERR_ARCHIVE;
    s = mf_disk_cache_check_content(a, spec, target);
    if (s == MF_OK) {
        mf_archive_entry e;
        mf_archive_entry_at(a, 0, &e);
        snprintf(entry, MF_ENTRY_MAX, "%s", e.entry);
        if (c->readable)
            mf_disk_cache_touch(c->dir, name);
    } else {
        mf_log(MF_LOG_WARN, "cache entry %s will be recompiled: %s", name, mf_last_error());
    }
    mf_archive_close(a);
    return s == MF_OK ? MF_OK : MF_ERR_ARCHIVE;
}

static int is_ptx_target(const char *target)
{
    return strncmp(target, "compute_", 8) == 0;
}

static mf_status compile_and_store(mf_cache *c, const char *spec, const char *target,
                                   const char *key, char entry[MF_ENTRY_MAX])
{
    char arch[24], name[96];
    int ptx = is_ptx_target(target);
    snprintf(arch, sizeof arch, "sm_%s", ptx ? target + 8 : target + 3);
    mf_kernel_binary *b;
    MF_TRY(mf_gen_compile_isolated(spec, arch, ptx ? MF_EMIT_PTX : MF_EMIT_CUBIN, &b));
    mf_disk_cache_content_name(key, name, sizeof name);
    mf_status s = store_one(c, name, spec, target, b->entry, ptx, ptx ? (void *)b->ptx : b->cubin,
                            ptx ? b->ptx_size : b->cubin_size);
    snprintf(entry, MF_ENTRY_MAX, "%s", b->entry);
    mf_kernel_binary_free(b);
    if (s == MF_OK)
        mf_log(MF_LOG_DEBUG, "cached %s (%s) as %s", spec, target, name);
    return s;
}

/* Exclusive flock on the key's lock file, or -1 (then compiles may repeat,
 * harmlessly: every write is atomic). */
static int lock_key(const mf_cache *c, const char *key)
{
    if (!c->persistent)
        return -1;
    char path[ENTRY_PATH_MAX];
    snprintf(path, sizeof path, "%s/k-%s.lock", c->dir, key);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), locked = -1;
    while (fd >= 0 && (locked = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        continue;
    if (locked == 0)
        return fd;
    mf_log(MF_LOG_WARN, "cannot lock %s (%s): compiling without the lock", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Compiles unless the entry is there, or appeared while we waited for the
 * lock; a corrupt entry is compiled again and replaced. */
static mf_status ensure_content(mf_cache *c, const char *spec, const char *target,
                                const char *key, char entry[MF_ENTRY_MAX],
                                mf_cache_outcome *outcome)
{
    *outcome = MF_CACHE_HIT;
    mf_status s = find_content(c, spec, target, key, entry);
    if (s == MF_OK)
        return MF_OK;
    int lock = lock_key(c, key);
    if (s == MF_ERR_KERNEL_NOT_FOUND)
        s = find_content(c, spec, target, key, entry);
    if (s != MF_OK) {
        *outcome = MF_CACHE_COMPILED;
        s = compile_and_store(c, spec, target, key, entry);
    }
    if (lock >= 0)
        close(lock); /* releases the flock */
    return s;
}

/* The spec index's current key, or "" when it has none (or a bad one). */
static void read_index(mf_cache *c, const char *spec, const char *target, const char *name,
                       char key[MF_CACHE_KEY_HEX])
{
    mf_archive *index;
    key[0] = '\0';
    if (open_named(c, name, "cache index", &index) != MF_OK)
        return;
    if (mf_disk_cache_index_key(index, spec, target, key) != MF_OK)
        key[0] = '\0';
    mf_archive_close(index);
}

static mf_status point_index(mf_cache *c, const char *spec, const char *target, const char *key,
                             const char *entry)
{
    char spec_key[MF_CACHE_KEY_HEX], current[MF_CACHE_KEY_HEX], name[96];
    mf_disk_cache_spec_key(spec, target, spec_key);
    mf_disk_cache_index_name(spec_key, name, sizeof name);
    read_index(c, spec, target, name, current);
    if (strcmp(current, key) == 0) {
        if (c->readable)
            mf_disk_cache_touch(c->dir, name);
        return MF_OK;
    }
    if (current[0])
        mf_log(MF_LOG_INFO, "%s (%s): templates or NVRTC changed, index repointed", spec, target);
    return store_one(c, name, spec, target, entry, 0, key, MF_CACHE_KEY_HEX - 1);
}

static mf_status check_target(const char *target)
{
    size_t n = target ? strlen(target) : 0;
    int ok = (n > 3 && strncmp(target, "sm_", 3) == 0) || (n > 8 && is_ptx_target(target));
    if (!ok || n >= 16)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "target '%s' is neither sm_XY nor compute_XY",
                       target ? target : "(null)");
    return MF_OK;
}

mf_status mf_cache_ensure(mf_cache *c, const char *spec, const char *target,
                          mf_cache_outcome *outcome)
{
    if (!c || !spec)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_cache_ensure: null argument");
    MF_TRY(check_target(target));
    char canonical[MF_SPEC_TEXT_MAX], key[MF_CACHE_KEY_HEX], entry[MF_ENTRY_MAX];
    mf_cache_outcome ignored;
    MF_TRY(mf_gen_canonical_spec(spec, canonical, sizeof canonical));
    MF_TRY(content_key_of(canonical, target, key));
    MF_TRY(ensure_content(c, canonical, target, key, entry, outcome ? outcome : &ignored));
    return point_index(c, canonical, target, key, entry);
}

mf_status mf_cache_open_entry(mf_cache *c, const char *spec, const char *target,
                              mf_archive **out)
{
    if (!c || !spec || !target || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_cache_open_entry: null argument");
    char canonical[MF_SPEC_TEXT_MAX], spec_key[MF_CACHE_KEY_HEX], key[MF_CACHE_KEY_HEX];
    char name[96];
    MF_TRY(mf_gen_canonical_spec(spec, canonical, sizeof canonical));
    mf_disk_cache_spec_key(canonical, target, spec_key);
    mf_disk_cache_index_name(spec_key, name, sizeof name);
    read_index(c, canonical, target, name, key);
    mf_disk_cache_content_name(key, name, sizeof name);
    if (!key[0] || open_named(c, name, "cache entry", out) != MF_OK)
        return MF_FAIL(MF_ERR_KERNEL_NOT_FOUND, "%s (%s) is not in the cache", canonical, target);
    mf_status s = mf_disk_cache_check_content(*out, canonical, target);
    if (s != MF_OK) {
        mf_archive_close(*out);
        *out = NULL;
    }
    return s;
}
