/* libFuzzer target: the archive and cache-entry reader (runtime/archive.h).
 *
 * Input: one mode byte, then the archive. Checksums are no defence against a
 * hostile archive (anyone can compute SHA-256), and random mutations would
 * almost never get past them, so with mode bit 0 set the harness "seals" the
 * bytes first as a writer would: the file-size field, every in-bounds payload
 * digest, the index digest and the header digest. With it clear the bytes go
 * in as they are, which exercises the checksum refusals.
 *
 * An archive that opens is then walked: every entry looked up by its key
 * (payload verified, first and last byte read), looked up again (the verified
 * path), plus a miss. Any failure must be a status, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "sha256.h"

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int fits(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

/* Rewrites the digests of the payloads that the index's records point to. */
static void seal_payloads(uint8_t *a, size_t size, uint8_t *index, uint64_t index_size)
{
    uint64_t count = load_le64(a + MF_ARCHIVE_HDR_COUNT);
    for (uint64_t i = 0; i < count && i < index_size / MF_ARCHIVE_RECORD_SIZE; i++) {
        uint8_t *rec = index + i * MF_ARCHIVE_RECORD_SIZE;
        uint64_t off = load_le64(rec + MF_ARCHIVE_REC_PAYLOAD_OFFSET);
        uint64_t len = load_le64(rec + MF_ARCHIVE_REC_PAYLOAD_SIZE);
        if (fits(off, len, size))
            mf_sha256(a + off, (size_t)len, rec + MF_ARCHIVE_REC_PAYLOAD_SHA);
    }
}

static void seal(uint8_t *a, size_t size)
{
    if (size < MF_ARCHIVE_HEADER_SIZE)
        return;
    store_le64(a + MF_ARCHIVE_HDR_FILE_SIZE, size);
    uint64_t index_offset = load_le64(a + MF_ARCHIVE_HDR_INDEX_OFFSET);
    uint64_t index_size = load_le64(a + MF_ARCHIVE_HDR_INDEX_SIZE);
    if (index_offset >= MF_ARCHIVE_HEADER_SIZE && fits(index_offset, index_size, size)) {
        seal_payloads(a, size, a + index_offset, index_size);
        mf_sha256(a + index_offset, (size_t)index_size, a + MF_ARCHIVE_HDR_INDEX_SHA);
    }
    mf_sha256(a, MF_ARCHIVE_HDR_SHA, a + MF_ARCHIVE_HDR_SHA);
}

/* Lookups of every entry must agree with the index and stay in bounds. */
static void walk(const mf_archive *a, const uint8_t *base, size_t size)
{
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < mf_archive_count(a); i++) {
        mf_archive_entry at, found;
        if (mf_archive_entry_at(a, i, &at) != MF_OK)
            abort();
        for (int pass = 0; pass < 2; pass++) {
            mf_status s = mf_archive_find(a, at.spec, at.target, &found);
            if (s == MF_ERR_ARCHIVE)
                break;
            if (s != MF_OK || found.data != at.data || found.size != at.size)
                abort();
            const uint8_t *p = found.data;
            if (p < base || found.size > size - (size_t)(p - base))
                abort();
            sink ^= p[0] ^ p[found.size - 1];
        }
        if (!mf_archive_has_target(a, at.target))
            abort();
    }
    mf_archive_entry none;
    if (mf_archive_find(a, "no-such-family:x=1", "sm_0", &none) != MF_ERR_KERNEL_NOT_FOUND)
        abort();
    sink ^= (uint8_t)strlen(mf_archive_generator_version(a));
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sealed = data[0] & 1;
    size--;
    /* An exact-size copy, so that ASan catches a read one byte past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, size);
    if (sealed)
        seal(copy, size);
    mf_archive *a = NULL;
    mf_status s = mf_archive_open_memory(copy, size, "fuzz.mfa", &a);
    if (s == MF_OK)
        walk(a, copy, size);
    else if (s != MF_ERR_ARCHIVE && s != MF_ERR_ARCHIVE_VERSION)
        abort();
    mf_archive_close(a);
    free(copy);
    return 0;
}
