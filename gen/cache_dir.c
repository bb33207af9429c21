/* The cache directory as a whole: size bound with LRU eviction, clearing,
 * listing (declared in cache.h; the layout is in runtime/disk_cache.h). */
#include "cache.h"

#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Temporary files of writers that died are removed once this old. */
#define STALE_TEMPORARY_SECONDS 3600

typedef enum file_kind { KIND_CONTENT, KIND_INDEX, KIND_LOCK, KIND_TEMPORARY } file_kind;

typedef struct dir_file {
    char name[128];
    file_kind kind;
    uint64_t size;
    struct timespec mtime;
} dir_file;

typedef struct dir_listing {
    dir_file *files;
    size_t count, capacity;
} dir_listing;

uint64_t mf_cache_max_bytes(void)
{
    const char *v = getenv("MOEFORGE_CACHE_MAX_BYTES");
    if (!v || !v[0])
        return MF_CACHE_DEFAULT_MAX_BYTES;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    end += shift != 0;
    if (errno || end == v || *end || v[0] == '-' || n > (UINT64_MAX >> shift)) {
        mf_log(MF_LOG_WARN, "MOEFORGE_CACHE_MAX_BYTES=%s is not a size (bytes, K, M or G): "
               "using %llu", v, (unsigned long long)MF_CACHE_DEFAULT_MAX_BYTES);
        return MF_CACHE_DEFAULT_MAX_BYTES;
    }
    return (uint64_t)n << shift;
}

static int has_key_between(const char *name, const char *prefix, const char *suffix)
{
    size_t n = strlen(name), p = strlen(prefix), s = strlen(suffix);
    if (n != p + MF_CACHE_KEY_HEX - 1 + s || strncmp(name, prefix, p) != 0)
        return 0;
    if (strcmp(name + n - s, suffix) != 0)
        return 0;
    return strspn(name + p, "0123456789abcdef") == MF_CACHE_KEY_HEX - 1;
}

/* What a file of the directory is; -1 for files that are not the cache's. */
static int classify(const char *name)
{
    if (has_key_between(name, "k-", ".mfa"))
        return KIND_CONTENT;
    if (has_key_between(name, "s-", ".idx"))
        return KIND_INDEX;
    if (has_key_between(name, "k-", ".lock"))
        return KIND_LOCK;
    if ((name[0] == 'k' || name[0] == 's') && name[1] == '-' && strstr(name, ".tmp."))
        return KIND_TEMPORARY;
    return -1;
}

static mf_status add_file(dir_listing *l, const char *dir, const char *name, file_kind kind)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return MF_OK; /* gone meanwhile, or not ours to touch */
    if (l->count == l->capacity) {
        size_t capacity = l->capacity ? 2 * l->capacity : 256;
        dir_file *grown = realloc(l->files, capacity * sizeof *grown);
        if (!grown)
            return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory to list the cache");
        l->files = grown;
        l->capacity = capacity;
    }
    dir_file *f = &l->files[l->count++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->kind = kind;
    f->size = (uint64_t)st.st_size;
    f->mtime = st.st_mtim;
    return MF_OK;
}

static mf_status scan(const char *dir, dir_listing *l)
{
    *l = (dir_listing){0};
    DIR *d = opendir(dir);
    if (!d)
        return MF_FAIL(MF_ERR_IO, "cannot read cache directory %s: %s", dir, strerror(errno));
    mf_status s = MF_OK;
    struct dirent *e;
    while (s == MF_OK && (e = readdir(d))) {
        int kind = classify(e->d_name);
        if (kind >= 0 && strlen(e->d_name) < sizeof l->files->name)
            s = add_file(l, dir, e->d_name, (file_kind)kind);
    }
    closedir(d);
    if (s != MF_OK)
        free(l->files);
    return s;
}

static int remove_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return unlink(path) == 0 || errno == ENOENT;
}

static int older_first(const void *pa, const void *pb)
{
    const dir_file *a = pa, *b = pb;
    if (a->mtime.tv_sec != b->mtime.tv_sec)
        return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
    return (a->mtime.tv_nsec > b->mtime.tv_nsec) - (a->mtime.tv_nsec < b->mtime.tv_nsec);
}

static int is_entry(const dir_file *f)
{
    return f->kind == KIND_CONTENT || f->kind == KIND_INDEX;
}

/* An evicted content entry's lock goes with it: at worst a process waiting
 * on the old lock compiles the kernel a second time. */
static void remove_entry(const char *dir, const dir_file *f)
{
    remove_file(dir, f->name);
    if (f->kind == KIND_CONTENT) {
        char lock[128];
        snprintf(lock, sizeof lock, "%.66s.lock", f->name);
        remove_file(dir, lock);
    }
}

/* An empty listing has no array, and qsort's may not be NULL even for zero
 * elements (C11 7.1.4, 7.22.5). */
static void sort_files(dir_listing *l, int (*compare)(const void *, const void *))
{
    if (l->count > 1)
        qsort(l->files, l->count, sizeof *l->files, compare);
}

static size_t evict_oldest(const char *dir, dir_listing *l, uint64_t max_bytes)
{
    uint64_t total = 0;
    size_t removed = 0;
    for (size_t i = 0; i < l->count; i++)
        total += is_entry(&l->files[i]) ? l->files[i].size : 0;
    sort_files(l, older_first);
    for (size_t i = 0; i < l->count && total > max_bytes; i++) {
        if (!is_entry(&l->files[i]))
            continue;
        remove_entry(dir, &l->files[i]);
        total -= l->files[i].size;
        removed++;
        mf_log(MF_LOG_DEBUG, "cache: evicted %s", l->files[i].name);
    }
    return removed;
}

mf_status mf_cache_evict(mf_cache *c, uint64_t max_bytes, size_t *removed)
{
    size_t n = 0;
    if (mf_cache_persistent(c)) {
        const char *dir = mf_cache_directory(c);
        dir_listing l;
        MF_TRY(scan(dir, &l));
        time_t stale = time(NULL) - STALE_TEMPORARY_SECONDS;
        for (size_t i = 0; i < l.count; i++)
            if (l.files[i].kind == KIND_TEMPORARY && l.files[i].mtime.tv_sec < stale)
                n += (size_t)remove_file(dir, l.files[i].name);
        n += evict_oldest(dir, &l, max_bytes);
        free(l.files);
    }
    if (removed)
        *removed = n;
    return MF_OK;
}

mf_status mf_cache_clear(mf_cache *c, size_t *removed)
{
    const char *dir = mf_cache_directory(c);
    size_t n = 0;
    if (!mf_cache_persistent(c))
        return MF_FAIL(MF_ERR_IO, "no writable cache directory to clear (%s)",
                       dir ? dir : "cache disabled or untrusted");
    dir_listing l;
    MF_TRY(scan(dir, &l));
    mf_status s = MF_OK;
    for (size_t i = 0; i < l.count; i++) {
        if (remove_file(dir, l.files[i].name))
            n++;
        else if (s == MF_OK)
            s = MF_FAIL(MF_ERR_IO, "cannot remove %s/%s: %s", dir, l.files[i].name,
                        strerror(errno));
    }
    free(l.files);
    if (removed)
        *removed = n;
    return s;
}

static int by_name(const void *pa, const void *pb)
{
    return strcmp(((const dir_file *)pa)->name, ((const dir_file *)pb)->name);
}

/* Reads one spec index and the content entry it names; warns and skips on failure. */
static void visit_index(const char *dir, const dir_file *f, mf_cache_visitor visit, void *user)
{
    mf_archive *index, *content;
    mf_archive_entry e;
    char key[MF_CACHE_KEY_HEX], name[96], path[PATH_MAX];
    struct stat st;
    if (mf_disk_cache_open(dir, f->name, "cache index", &index) != MF_OK)
        return;
    mf_archive_entry_at(index, 0, &e); /* an index that opened has one entry at least */
    mf_status s = mf_disk_cache_index_key(index, e.spec, e.target, key);
    mf_disk_cache_content_name(key, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (s == MF_OK && (s = mf_disk_cache_open(dir, name, "cache entry", &content)) == MF_OK) {
        if ((s = mf_disk_cache_check_content(content, e.spec, e.target)) == MF_OK &&
            stat(path, &st) == 0) {
            mf_archive_entry c;
            mf_archive_entry_at(content, 0, &c);
            mf_cache_item item = {c.spec, c.target, c.entry, key, c.size,
                                  (size_t)st.st_size + f->size, st.st_mtime};
            visit(user, &item);
        }
        mf_archive_close(content);
    }
    if (s != MF_OK && s != MF_ERR_KERNEL_NOT_FOUND)
        mf_log(MF_LOG_WARN, "cache index %s skipped: %s", f->name, mf_last_error());
    mf_archive_close(index);
}

mf_status mf_cache_list(mf_cache *c, mf_cache_visitor visit, void *user)
{
    const char *dir = mf_cache_directory(c);
    if (!dir)
        return MF_OK;
    dir_listing l;
    MF_TRY(scan(dir, &l));
    sort_files(&l, by_name);
    for (size_t i = 0; i < l.count; i++)
        if (l.files[i].kind == KIND_INDEX)
            visit_index(dir, &l.files[i], visit, user);
    free(l.files);
    return MF_OK;
}
