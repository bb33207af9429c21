/* The runtime's side of the on-disk kernel cache; the layout is described in
 * disk_cache.h. Entries may have been written by anyone who could write the
 * directory, so the directory must be trusted and every entry is verified. */
#include "disk_cache.h"

#include "error.h"
#include "kernels.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct mf_disk_cache {
    int usable; /* the directory exists and is trusted */
    char dir[PATH_MAX];
    mf_archive **entries; /* mapped content entries, closed with the context */
    size_t count, capacity;
};

int mf_disk_cache_enabled(void)
{
    const char *v = getenv("MOEFORGE_CACHE");
    static const char *const off[] = {"off", "0", "no", "false"};
    for (size_t i = 0; v && i < sizeof off / sizeof off[0]; i++)
        if (strcasecmp(v, off[i]) == 0)
            return 0;
    return 1;
}

static int is_set(const char *v)
{
    return v && v[0];
}

mf_status mf_disk_cache_default_dir(char *dir, size_t size)
{
    const char *explicit_dir = getenv("MOEFORGE_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (is_set(explicit_dir))
        n = snprintf(dir, size, "%s", explicit_dir);
    else if (is_set(xdg))
        n = snprintf(dir, size, "%s/moeforge", xdg);
    else if (is_set(home))
        n = snprintf(dir, size, "%s/.cache/moeforge", home);
    else
        return MF_FAIL(MF_ERR_IO, "no cache directory: MOEFORGE_CACHE_DIR, XDG_CACHE_HOME and "
                                  "HOME are all unset");
    if (n < 0 || (size_t)n >= size)
        return MF_FAIL(MF_ERR_IO, "cache directory path too long");
    return MF_OK;
}

mf_status mf_disk_cache_check_dir(const char *dir)
{
    struct stat st;
    mf_status s = MF_OK;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT) /* the common case of no cache: no warning */
            return MF_FAIL(MF_ERR_IO, "cache directory %s does not exist", dir);
        s = MF_FAIL(MF_ERR_IO, "cache directory %s: %s: not used", dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode))
        s = MF_FAIL(MF_ERR_IO, "cache directory %s is not a directory: not used", dir);
    else if (st.st_uid != geteuid())
        s = MF_FAIL(MF_ERR_IO, "cache directory %s is owned by uid %u, not by this user (%u): "
                    "not used", dir, (unsigned)st.st_uid, (unsigned)geteuid());
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        s = MF_FAIL(MF_ERR_IO, "cache directory %s is writable by group or others (mode %03o): "
                    "not used", dir, (unsigned)(st.st_mode & 0777));
    if (s != MF_OK)
        mf_log(MF_LOG_WARN, "%s", mf_last_error());
    return s;
}

/* Each field is length-prefixed so that no two inputs hash alike. */
static void hash_field(mf_sha256 *h, const char *text)
{
    char len[24];
    snprintf(len, sizeof len, "%zu:", strlen(text));
    mf_sha256_update(h, len, strlen(len));
    mf_sha256_update(h, text, strlen(text));
}

void mf_disk_cache_spec_key(const char *spec, const char *target, char hex[MF_CACHE_KEY_HEX])
{
    char format[16];
    snprintf(format, sizeof format, "%d", MF_CACHE_FORMAT_VERSION);
    mf_sha256 h;
    mf_sha256_init(&h);
    hash_field(&h, "moeforge spec index");
    hash_field(&h, format);
    hash_field(&h, MOEFORGE_VERSION_STRING); /* the generator's version is the library's */
    hash_field(&h, spec);
    hash_field(&h, target);
    uint8_t digest[32];
    mf_sha256_final(&h, digest);
    mf_sha256_hex(digest, hex);
}

void mf_disk_cache_index_name(const char *spec_key, char *name, size_t size)
{
    snprintf(name, size, "s-%s.idx", spec_key);
}

void mf_disk_cache_content_name(const char *content_key, char *name, size_t size)
{
    snprintf(name, size, "k-%s.mfa", content_key);
}

static int is_key(const char *s, size_t len)
{
    if (len != MF_CACHE_KEY_HEX - 1)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

mf_status mf_disk_cache_index_key(const mf_archive *index, const char *spec, const char *target,
                                  char hex[MF_CACHE_KEY_HEX])
{
    mf_archive_entry e;
    mf_status s = mf_archive_find(index, spec, target, &e);
    if (s == MF_ERR_KERNEL_NOT_FOUND || mf_archive_count(index) != 1)
        return MF_FAIL(MF_ERR_ARCHIVE, "spec index of %s (%s) holds another kernel", spec, target);
    MF_TRY(s);
    if (e.is_ptx || !is_key(e.data, e.size))
        return MF_FAIL(MF_ERR_ARCHIVE, "spec index of %s (%s) does not name a content key", spec,
                       target);
    memcpy(hex, e.data, e.size);
    hex[e.size] = '\0';
    return MF_OK;
}

mf_status mf_disk_cache_open(const char *dir, const char *name, const char *what,
                             mf_archive **out)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st) != 0 && errno == ENOENT)
        return MF_ERR_KERNEL_NOT_FOUND; /* the common miss: no message */
    mf_status s = mf_archive_open_file(path, out);
    if (s != MF_OK)
        mf_log(MF_LOG_WARN, "%s ignored (treated as a miss): %s", what, mf_last_error());
    return s;
}

/* A content entry is used only when it holds exactly the kernel asked for. */
mf_status mf_disk_cache_check_content(const mf_archive *content, const char *spec,
                                      const char *target)
{
    mf_archive_entry e;
    mf_status s = mf_archive_find(content, spec, target, &e);
    if (s == MF_ERR_KERNEL_NOT_FOUND || (s == MF_OK && mf_archive_count(content) != 1))
        return MF_FAIL(MF_ERR_ARCHIVE, "cache entry for %s (%s) holds another kernel", spec,
                       target);
    return s;
}

void mf_disk_cache_touch(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    utimensat(AT_FDCWD, path, NULL, 0);
}

static mf_status open_named_content(const char *dir, const char *spec, const char *target,
                                    const char *key, mf_archive **out)
{
    char name[96];
    mf_disk_cache_content_name(key, name, sizeof name);
    MF_TRY(mf_disk_cache_open(dir, name, "cache entry", out));
    mf_status s = mf_disk_cache_check_content(*out, spec, target);
    if (s != MF_OK) {
        mf_log(MF_LOG_WARN, "cache entry %s ignored (treated as a miss): %s", name,
               mf_last_error());
        mf_archive_close(*out);
        *out = NULL;
        return s;
    }
    mf_disk_cache_touch(dir, name);
    return MF_OK;
}

mf_status mf_disk_cache_lookup(const char *dir, const char *spec, const char *target,
                               mf_archive **out)
{
    char spec_key[MF_CACHE_KEY_HEX], content_key[MF_CACHE_KEY_HEX], name[96];
    mf_archive *index;
    mf_disk_cache_spec_key(spec, target, spec_key);
    mf_disk_cache_index_name(spec_key, name, sizeof name);
    if (mf_disk_cache_open(dir, name, "cache index", &index) != MF_OK)
        return MF_ERR_KERNEL_NOT_FOUND;
    mf_status s = mf_disk_cache_index_key(index, spec, target, content_key);
    mf_archive_close(index);
    if (s != MF_OK) {
        mf_log(MF_LOG_WARN, "cache index %s ignored (treated as a miss): %s", name,
               mf_last_error());
        return MF_ERR_KERNEL_NOT_FOUND;
    }
    if (open_named_content(dir, spec, target, content_key, out) != MF_OK)
        return MF_ERR_KERNEL_NOT_FOUND;
    mf_disk_cache_touch(dir, name);
    return MF_OK;
}

/* ---- a context's view ------------------------------------------------------ */

static mf_disk_cache *resolve(void)
{
    mf_disk_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->usable = mf_disk_cache_enabled() &&
                mf_disk_cache_default_dir(c->dir, sizeof c->dir) == MF_OK &&
                mf_disk_cache_check_dir(c->dir) == MF_OK;
    mf_log(MF_LOG_DEBUG, "disk cache: %s", c->usable ? c->dir : "none");
    return c;
}

static mf_status keep_entry(mf_disk_cache *c, mf_archive *a)
{
    if (c->count == c->capacity) {
        size_t capacity = c->capacity ? 2 * c->capacity : 16;
        mf_archive **grown = realloc(c->entries, capacity * sizeof *grown);
        if (!grown) {
            mf_archive_close(a);
            return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory to keep a cache entry");
        }
        c->entries = grown;
        c->capacity = capacity;
    }
    c->entries[c->count++] = a;
    return MF_OK;
}

mf_status mf_disk_cache_find(mf_context *ctx, const char *spec, const mf_archive **out)
{
    if (!ctx->disk_cache && !(ctx->disk_cache = resolve()))
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for the disk cache state");
    mf_disk_cache *c = ctx->disk_cache;
    char targets[16][16];
    int n = c->usable ? mf_device_targets(&ctx->info, targets, 16) : 0;
    for (int i = 0; i < n; i++) {
        mf_archive *a;
        if (mf_disk_cache_lookup(c->dir, spec, targets[i], &a) != MF_OK)
            continue;
        MF_TRY(keep_entry(c, a));
        *out = a;
        return MF_OK;
    }
    return MF_ERR_KERNEL_NOT_FOUND;
}

void mf_disk_cache_close(mf_disk_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->count; i++)
        mf_archive_close(c->entries[i]);
    free(c->entries);
    free(c);
}
