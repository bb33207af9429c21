/* Kernel archive writer. The format is described in runtime/archive.h. */
#define _GNU_SOURCE /* mkostemp */
#include "archive_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "error.h"
#include "sha256.h"

typedef struct pending_entry {
    char *spec, *target, *entry;
    uint32_t flags;
    uint8_t *data;
    size_t size;
    size_t sequence; /* add order: among equal keys the latest wins */
} pending_entry;

struct mf_archive_writer {
    char generator[MF_ARCHIVE_GENERATOR_MAX];
    pending_entry *entries;
    size_t count, capacity;
    size_t next_sequence;
};

static void store_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void store_le64(uint8_t *p, uint64_t v)
{
    store_le32(p, (uint32_t)v);
    store_le32(p + 4, (uint32_t)(v >> 32));
}

static size_t align_up(size_t n)
{
    return (n + MF_ARCHIVE_ALIGN - 1) & ~(size_t)(MF_ARCHIVE_ALIGN - 1);
}

static void free_entry(pending_entry *e)
{
    free(e->spec);
    free(e->target);
    free(e->entry);
    free(e->data);
}

mf_status mf_archive_writer_create(const char *generator_version, mf_archive_writer **out)
{
    if (!generator_version || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_archive_writer_create: null argument");
    if (strlen(generator_version) >= MF_ARCHIVE_GENERATOR_MAX)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "generator version longer than %d bytes",
                       MF_ARCHIVE_GENERATOR_MAX - 1);
    mf_archive_writer *w = calloc(1, sizeof *w);
    if (!w)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for an archive writer");
    strcpy(w->generator, generator_version);
    *out = w;
    return MF_OK;
}

static mf_status reserve_entry(mf_archive_writer *w)
{
    if (w->count < w->capacity)
        return MF_OK;
    size_t capacity = w->capacity ? 2 * w->capacity : 16;
    pending_entry *grown = realloc(w->entries, capacity * sizeof *grown);
    if (!grown)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for %zu archive entries", capacity);
    w->entries = grown;
    w->capacity = capacity;
    return MF_OK;
}

static bool is_name(const char *s)
{
    return s && s[0] != '\0';
}

mf_status mf_archive_writer_add(mf_archive_writer *w, const char *spec, const char *target,
                                const char *entry, int is_ptx, const void *data, size_t size)
{
    if (!w || !is_name(spec) || !is_name(target) || !is_name(entry) || !data || size == 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "archive entry needs a spec, a target, an entry point and a non-empty payload");
    MF_TRY(reserve_entry(w));
    bool append_nul = is_ptx && ((const uint8_t *)data)[size - 1] != '\0';
    pending_entry e = {
        .spec = strdup(spec),
        .target = strdup(target),
        .entry = strdup(entry),
        .flags = is_ptx ? MF_ARCHIVE_FLAG_PTX : 0,
        .data = malloc(size + append_nul),
        .size = size + append_nul,
        .sequence = w->next_sequence++,
    };
    if (!e.spec || !e.target || !e.entry || !e.data) {
        free_entry(&e);
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for archive entry %s", spec);
    }
    memcpy(e.data, data, size);
    if (append_nul)
        e.data[size] = '\0';
    w->entries[w->count++] = e;
    return MF_OK;
}

static int compare_entries(const void *pa, const void *pb)
{
    const pending_entry *a = pa, *b = pb;
    int c = strcmp(a->spec, b->spec);
    if (c == 0)
        c = strcmp(a->target, b->target);
    if (c == 0)
        c = (a->sequence > b->sequence) - (a->sequence < b->sequence);
    return c;
}

static bool same_key(const pending_entry *a, const pending_entry *b)
{
    return strcmp(a->spec, b->spec) == 0 && strcmp(a->target, b->target) == 0;
}

/* Sorts by (spec, target) as the index requires and drops replaced entries,
 * keeping the latest add of each key. */
static void sort_and_replace_duplicates(mf_archive_writer *w)
{
    if (w->count == 0)
        return; /* entries may still be NULL */
    qsort(w->entries, w->count, sizeof *w->entries, compare_entries);
    size_t kept = 0;
    for (size_t i = 0; i < w->count; i++) {
        if (i + 1 < w->count && same_key(&w->entries[i], &w->entries[i + 1]))
            free_entry(&w->entries[i]);
        else
            w->entries[kept++] = w->entries[i];
    }
    w->count = kept;
}

static size_t string_table_size(const mf_archive_writer *w)
{
    size_t total = 0;
    for (size_t i = 0; i < w->count; i++) {
        const pending_entry *e = &w->entries[i];
        total += strlen(e->spec) + strlen(e->target) + strlen(e->entry) + 3;
    }
    return total;
}

static size_t archive_size(const mf_archive_writer *w, size_t index_end)
{
    size_t end = index_end;
    for (size_t i = 0; i < w->count; i++)
        end = align_up(end) + w->entries[i].size;
    return end;
}

/* Appends s and its NUL to the string table and points the record field at it. */
static size_t put_string(uint8_t *field, char *strtab, size_t cursor, const char *s)
{
    size_t len = strlen(s);
    store_le32(field, (uint32_t)cursor);
    store_le32(field + 4, (uint32_t)len);
    memcpy(strtab + cursor, s, len + 1);
    return cursor + len + 1;
}

static void fill_index_and_payloads(const mf_archive_writer *w, uint8_t *buf, size_t index_size)
{
    uint8_t *records = buf + MF_ARCHIVE_HEADER_SIZE;
    char *strtab = (char *)records + w->count * MF_ARCHIVE_RECORD_SIZE;
    size_t string_cursor = 0;
    size_t payload_cursor = MF_ARCHIVE_HEADER_SIZE + index_size;
    for (size_t i = 0; i < w->count; i++) {
        const pending_entry *e = &w->entries[i];
        uint8_t *rec = records + i * MF_ARCHIVE_RECORD_SIZE;
        string_cursor = put_string(rec + MF_ARCHIVE_REC_SPEC, strtab, string_cursor, e->spec);
        string_cursor = put_string(rec + MF_ARCHIVE_REC_TARGET, strtab, string_cursor, e->target);
        string_cursor = put_string(rec + MF_ARCHIVE_REC_ENTRY, strtab, string_cursor, e->entry);
        store_le32(rec + MF_ARCHIVE_REC_FLAGS, e->flags);
        payload_cursor = align_up(payload_cursor);
        store_le64(rec + MF_ARCHIVE_REC_PAYLOAD_OFFSET, payload_cursor);
        store_le64(rec + MF_ARCHIVE_REC_PAYLOAD_SIZE, e->size);
        mf_sha256(e->data, e->size, rec + MF_ARCHIVE_REC_PAYLOAD_SHA);
        memcpy(buf + payload_cursor, e->data, e->size);
        payload_cursor += e->size;
    }
}

static void fill_header(const mf_archive_writer *w, uint8_t *buf, size_t total, size_t index_size)
{
    memcpy(buf, MF_ARCHIVE_MAGIC, sizeof MF_ARCHIVE_MAGIC);
    store_le32(buf + MF_ARCHIVE_HDR_VERSION, MF_ARCHIVE_FORMAT_VERSION);
    store_le32(buf + MF_ARCHIVE_HDR_HEADER_SIZE, MF_ARCHIVE_HEADER_SIZE);
    store_le64(buf + MF_ARCHIVE_HDR_FILE_SIZE, total);
    store_le64(buf + MF_ARCHIVE_HDR_COUNT, w->count);
    store_le64(buf + MF_ARCHIVE_HDR_INDEX_OFFSET, MF_ARCHIVE_HEADER_SIZE);
    store_le64(buf + MF_ARCHIVE_HDR_INDEX_SIZE, index_size);
    mf_sha256(buf + MF_ARCHIVE_HEADER_SIZE, index_size, buf + MF_ARCHIVE_HDR_INDEX_SHA);
    memcpy(buf + MF_ARCHIVE_HDR_GENERATOR, w->generator, sizeof w->generator);
    mf_sha256(buf, MF_ARCHIVE_HDR_SHA, buf + MF_ARCHIVE_HDR_SHA);
}

mf_status mf_archive_writer_serialize(mf_archive_writer *w, void **data, size_t *size)
{
    if (!w || !data || !size)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_archive_writer_serialize: null argument");
    sort_and_replace_duplicates(w);
    size_t strtab_size = string_table_size(w);
    if (strtab_size > UINT32_MAX) /* string offsets are u32 */
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "archive strings exceed 4 GiB");
    size_t index_size = w->count * MF_ARCHIVE_RECORD_SIZE + strtab_size;
    size_t total = archive_size(w, MF_ARCHIVE_HEADER_SIZE + index_size);
    uint8_t *buf = calloc(1, total); /* zero: padding and reserved fields */
    if (!buf)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for a %zu-byte archive", total);
    fill_index_and_payloads(w, buf, index_size);
    fill_header(w, buf, total, index_size);
    *data = buf;
    *size = total;
    return MF_OK;
}

static mf_status write_all(int fd, const uint8_t *data, size_t size, const char *path)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return MF_FAIL(MF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        data += n;
        size -= (size_t)n;
    }
    return MF_OK;
}

/* Makes the rename durable: the directory entry lives in the directory. */
static mf_status sync_parent_directory(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for a path");
    mf_status st = MF_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        st = MF_FAIL(MF_ERR_IO, "cannot sync directory %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return st;
}

/* Fills an open temporary file and makes its content durable. */
static mf_status fill_temporary(int fd, const char *tmp, const void *data, size_t size)
{
    MF_TRY(write_all(fd, data, size, tmp));
    /* mkstemp creates 0600; deployment archives are meant to be shared. */
    if (fchmod(fd, 0644) != 0)
        return MF_FAIL(MF_ERR_IO, "cannot chmod %s: %s", tmp, strerror(errno));
    if (fsync(fd) != 0)
        return MF_FAIL(MF_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    return MF_OK;
}

static mf_status write_file_atomically(const char *path, const void *data, size_t size)
{
    char *tmp = malloc(strlen(path) + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for a path");
    sprintf(tmp, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        mf_status st = MF_FAIL(MF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    mf_status st = fill_temporary(fd, tmp, data, size);
    if (close(fd) != 0 && st == MF_OK)
        st = MF_FAIL(MF_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    if (st == MF_OK && rename(tmp, path) != 0)
        st = MF_FAIL(MF_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st != MF_OK)
        unlink(tmp);
    else
        st = sync_parent_directory(path);
    free(tmp);
    return st;
}

mf_status mf_archive_writer_write(mf_archive_writer *w, const char *path)
{
    if (!w || !path)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_archive_writer_write: null argument");
    void *data;
    size_t size;
    MF_TRY(mf_archive_writer_serialize(w, &data, &size));
    mf_status st = write_file_atomically(path, data, size);
    free(data);
    return st;
}

void mf_archive_writer_destroy(mf_archive_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++)
        free_entry(&w->entries[i]);
    free(w->entries);
    free(w);
}
