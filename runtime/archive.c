/* Kernel archive reader. The format is described in archive.h. Archives may be
 * hostile: every field is checked against the archive's bounds before use. */
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "sha256.h"

typedef struct archive_slot {
    mf_archive_entry entry;
    const uint8_t *sha256; /* expected payload digest, inside the index */
    atomic_bool verified;  /* payload digest checked and matching */
} archive_slot;

struct mf_archive {
    const uint8_t *base;
    size_t size;
    void *mapping; /* set when mf_archive_open_file mapped base */
    char *origin;  /* names the archive in messages */
    const char *generator;
    size_t count;
    archive_slot *slots; /* in index order, sorted by (spec, target) */
};

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

/* off + len <= limit, written so that it cannot overflow. */
static bool range_fits(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

static bool digest_matches(const void *data, size_t size, const uint8_t *expected)
{
    uint8_t digest[32];
    mf_sha256(data, size, digest);
    return memcmp(digest, expected, sizeof digest) == 0;
}

/* Magic and version sit at fixed offsets in every format version. */
static mf_status check_magic_and_version(const mf_archive *a)
{
    const size_t magic_size = sizeof MF_ARCHIVE_MAGIC;
    if (a->size < magic_size)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: truncated archive (%zu bytes)", a->origin, a->size);
    if (memcmp(a->base, MF_ARCHIVE_MAGIC, magic_size) != 0)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: not a moeforge kernel archive (bad magic)", a->origin);
    if (a->size < MF_ARCHIVE_HDR_VERSION + 4)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: truncated archive (%zu bytes)", a->origin, a->size);
    uint32_t version = load_le32(a->base + MF_ARCHIVE_HDR_VERSION);
    if (version != MF_ARCHIVE_FORMAT_VERSION)
        return MF_FAIL(MF_ERR_ARCHIVE_VERSION, "%s: archive format version %u, this build reads version %d",
                       a->origin, version, MF_ARCHIVE_FORMAT_VERSION);
    return MF_OK;
}

static mf_status check_header(mf_archive *a)
{
    const uint8_t *h = a->base;
    if (a->size < MF_ARCHIVE_HEADER_SIZE)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: truncated archive (%zu bytes, header needs %d)", a->origin,
                       a->size, MF_ARCHIVE_HEADER_SIZE);
    if (load_le32(h + MF_ARCHIVE_HDR_HEADER_SIZE) != MF_ARCHIVE_HEADER_SIZE)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: unexpected header size", a->origin);
    if (!digest_matches(h, MF_ARCHIVE_HDR_SHA, h + MF_ARCHIVE_HDR_SHA))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: header checksum mismatch", a->origin);
    uint64_t file_size = load_le64(h + MF_ARCHIVE_HDR_FILE_SIZE);
    if (file_size != a->size)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: archive is %zu bytes, its header says %llu (truncated?)",
                       a->origin, a->size, (unsigned long long)file_size);
    const char *generator = (const char *)h + MF_ARCHIVE_HDR_GENERATOR;
    if (!memchr(generator, '\0', MF_ARCHIVE_GENERATOR_MAX))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: generator version is not NUL-terminated", a->origin);
    a->generator = generator;
    return MF_OK;
}

/* Reads a (u32 offset, u32 length) string reference into the string table. */
static mf_status decode_string(const mf_archive *a, size_t i, const uint8_t *field, const char *strtab,
                               uint64_t strtab_size, const char **out)
{
    uint32_t off = load_le32(field), len = load_le32(field + 4);
    if (len == 0 || !range_fits(off, (uint64_t)len + 1, strtab_size))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: index entry %zu: string out of bounds", a->origin, i);
    const char *s = strtab + off;
    if (s[len] != '\0' || memchr(s, '\0', len))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: index entry %zu: malformed string", a->origin, i);
    *out = s;
    return MF_OK;
}

static mf_status decode_payload(const mf_archive *a, size_t i, const uint8_t *rec, archive_slot *slot)
{
    uint64_t off = load_le64(rec + MF_ARCHIVE_REC_PAYLOAD_OFFSET);
    uint64_t size = load_le64(rec + MF_ARCHIVE_REC_PAYLOAD_SIZE);
    if (size == 0 || !range_fits(off, size, a->size))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: index entry %zu: payload out of bounds", a->origin, i);
    if (off % MF_ARCHIVE_ALIGN != 0)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: index entry %zu: misaligned payload", a->origin, i);
    slot->entry.data = a->base + off;
    slot->entry.size = (size_t)size;
    slot->sha256 = rec + MF_ARCHIVE_REC_PAYLOAD_SHA;
    return MF_OK;
}

static mf_status decode_record(const mf_archive *a, size_t i, const uint8_t *rec, const char *strtab,
                               uint64_t strtab_size, archive_slot *slot)
{
    MF_TRY(decode_string(a, i, rec + MF_ARCHIVE_REC_SPEC, strtab, strtab_size, &slot->entry.spec));
    MF_TRY(decode_string(a, i, rec + MF_ARCHIVE_REC_TARGET, strtab, strtab_size, &slot->entry.target));
    MF_TRY(decode_string(a, i, rec + MF_ARCHIVE_REC_ENTRY, strtab, strtab_size, &slot->entry.entry));
    uint32_t flags = load_le32(rec + MF_ARCHIVE_REC_FLAGS);
    if (flags & ~MF_ARCHIVE_FLAG_PTX)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: index entry %zu: unknown flags 0x%x", a->origin, i, flags);
    slot->entry.is_ptx = (flags & MF_ARCHIVE_FLAG_PTX) != 0;
    atomic_init(&slot->verified, false);
    return decode_payload(a, i, rec, slot);
}

static int compare_key(const mf_archive_entry *e, const char *spec, const char *target)
{
    int c = strcmp(e->spec, spec);
    return c != 0 ? c : strcmp(e->target, target);
}

/* Binary search relies on strictly ascending keys; this also rules out duplicates. */
static mf_status check_sorted(const mf_archive *a)
{
    for (size_t i = 1; i < a->count; i++) {
        const mf_archive_entry *prev = &a->slots[i - 1].entry;
        if (compare_key(prev, a->slots[i].entry.spec, a->slots[i].entry.target) >= 0)
            return MF_FAIL(MF_ERR_ARCHIVE, "%s: index entries %zu and %zu out of order or duplicate",
                           a->origin, i - 1, i);
    }
    return MF_OK;
}

static mf_status load_index(mf_archive *a)
{
    const uint8_t *h = a->base;
    uint64_t index_offset = load_le64(h + MF_ARCHIVE_HDR_INDEX_OFFSET);
    uint64_t index_size = load_le64(h + MF_ARCHIVE_HDR_INDEX_SIZE);
    uint64_t count = load_le64(h + MF_ARCHIVE_HDR_COUNT);
    if (index_offset < MF_ARCHIVE_HEADER_SIZE || !range_fits(index_offset, index_size, a->size))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: index out of bounds", a->origin);
    const uint8_t *index = a->base + index_offset;
    if (!digest_matches(index, (size_t)index_size, h + MF_ARCHIVE_HDR_INDEX_SHA))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: index checksum mismatch", a->origin);
    if (count > index_size / MF_ARCHIVE_RECORD_SIZE)
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: %llu entries do not fit in the index", a->origin,
                       (unsigned long long)count);
    a->count = (size_t)count;
    a->slots = calloc(a->count ? a->count : 1, sizeof *a->slots);
    if (!a->slots)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "%s: no memory for %zu index entries", a->origin, a->count);
    const char *strtab = (const char *)index + a->count * MF_ARCHIVE_RECORD_SIZE;
    uint64_t strtab_size = index_size - a->count * MF_ARCHIVE_RECORD_SIZE;
    for (size_t i = 0; i < a->count; i++)
        MF_TRY(decode_record(a, i, index + i * MF_ARCHIVE_RECORD_SIZE, strtab, strtab_size, &a->slots[i]));
    return check_sorted(a);
}

mf_status mf_archive_open_memory(const void *data, size_t size, const char *origin, mf_archive **out)
{
    if (!out || (!data && size > 0))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_archive_open_memory: null argument");
    *out = NULL;
    mf_archive *a = calloc(1, sizeof *a);
    if (!a)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for an archive");
    a->base = data;
    a->size = size;
    a->origin = strdup(origin ? origin : "<memory archive>");
    mf_status st = a->origin ? MF_OK : MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for an archive");
    if (st == MF_OK)
        st = check_magic_and_version(a);
    if (st == MF_OK)
        st = check_header(a);
    if (st == MF_OK)
        st = load_index(a);
    if (st != MF_OK) {
        mf_archive_close(a);
        return st;
    }
    *out = a;
    return MF_OK;
}

static mf_status map_file(const char *path, void **map, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MF_FAIL(MF_ERR_IO, "cannot open archive %s: %s", path, strerror(errno));
    struct stat st;
    mf_status status = MF_OK;
    if (fstat(fd, &st) != 0)
        status = MF_FAIL(MF_ERR_IO, "cannot stat archive %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        status = MF_FAIL(MF_ERR_IO, "archive %s is not a regular file", path);
    else if (st.st_size == 0) /* mmap refuses empty mappings */
        status = MF_FAIL(MF_ERR_ARCHIVE, "%s: empty archive", path);
    if (status == MF_OK) {
        *size = (size_t)st.st_size;
        *map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (*map == MAP_FAILED)
            status = MF_FAIL(MF_ERR_IO, "cannot map archive %s: %s", path, strerror(errno));
    }
    close(fd);
    return status;
}

mf_status mf_archive_open_file(const char *path, mf_archive **out)
{
    if (!path || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_archive_open_file: null argument");
    *out = NULL;
    void *map = NULL;
    size_t size = 0;
    MF_TRY(map_file(path, &map, &size));
    mf_status st = mf_archive_open_memory(map, size, path, out);
    if (st != MF_OK) {
        munmap(map, size);
        return st;
    }
    (*out)->mapping = map;
    return MF_OK;
}

void mf_archive_close(mf_archive *a)
{
    if (!a)
        return;
    if (a->mapping)
        munmap(a->mapping, a->size);
    free(a->slots);
    free(a->origin);
    free(a);
}

size_t mf_archive_count(const mf_archive *a)
{
    return a ? a->count : 0;
}

mf_status mf_archive_entry_at(const mf_archive *a, size_t i, mf_archive_entry *out)
{
    if (!a || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_archive_entry_at: null argument");
    if (i >= a->count)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: entry %zu of %zu", a->origin, i, a->count);
    *out = a->slots[i].entry;
    return MF_OK;
}

static archive_slot *find_slot(const mf_archive *a, const char *spec, const char *target)
{
    size_t lo = 0, hi = a->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_key(&a->slots[mid].entry, spec, target);
        if (c == 0)
            return &a->slots[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Racing threads may both hash the payload; they reach the same verdict. */
static mf_status verify_payload(const mf_archive *a, archive_slot *slot)
{
    if (atomic_load(&slot->verified))
        return MF_OK;
    const mf_archive_entry *e = &slot->entry;
    if (!digest_matches(e->data, e->size, slot->sha256))
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: payload of kernel %s (%s) fails its SHA-256 check", a->origin,
                       e->spec, e->target);
    if (e->is_ptx && ((const char *)e->data)[e->size - 1] != '\0')
        return MF_FAIL(MF_ERR_ARCHIVE, "%s: PTX of kernel %s (%s) is not NUL-terminated", a->origin,
                       e->spec, e->target);
    atomic_store(&slot->verified, true);
    return MF_OK;
}

mf_status mf_archive_find(const mf_archive *a, const char *spec, const char *target,
                          mf_archive_entry *out)
{
    if (!a || !spec || !target || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_archive_find: null argument");
    archive_slot *slot = find_slot(a, spec, target);
    if (!slot)
        return MF_ERR_KERNEL_NOT_FOUND;
    MF_TRY(verify_payload(a, slot));
    *out = slot->entry;
    return MF_OK;
}

int mf_archive_has_target(const mf_archive *a, const char *target)
{
    for (size_t i = 0; a && target && i < a->count; i++)
        if (strcmp(a->slots[i].entry.target, target) == 0)
            return 1;
    return 0;
}

const char *mf_archive_generator_version(const mf_archive *a)
{
    return a ? a->generator : NULL;
}
