/* Kernel archive reader.
 *
 * One format serves the kernel set embedded in the library at build time and
 * the deployment archives written by `moeforge pack` (gen/archive_writer.c).
 *
 * On-disk format, version 1. All integers little-endian; offsets are from the
 * start of the archive.
 *
 *   header, 192 bytes
 *     0   u8[8]   magic "MFKARCH\0"
 *     8   u32     format version (MF_ARCHIVE_FORMAT_VERSION)
 *     12  u32     header size (192)
 *     16  u64     file size: the archive's exact length in bytes
 *     24  u64     entry count
 *     32  u64     index offset (192 in archives we write)
 *     40  u64     index size in bytes
 *     48  u8[32]  SHA-256 of the index bytes
 *     80  char[64] generator version, NUL-terminated, NUL-padded
 *     144 u8[16]  reserved, zero
 *     160 u8[32]  SHA-256 of header bytes [0, 160)
 *
 *   index: `entry count` records of 80 bytes, then a string table (the rest
 *   of the index). Records are sorted by (spec, target), strictly ascending
 *   in strcmp order, so each key appears once.
 *     0   u32     spec offset in the string table
 *     4   u32     spec length (without its NUL)
 *     8   u32     target offset      ("sm_90a": cubin, "compute_90a": PTX)
 *     12  u32     target length
 *     16  u32     entry-point offset (extern "C" name)
 *     20  u32     entry-point length
 *     24  u32     flags: bit 0 = payload is PTX; other bits zero
 *     28  u32     reserved, zero
 *     32  u64     payload offset, a multiple of MF_ARCHIVE_ALIGN
 *     40  u64     payload size, > 0
 *     48  u8[32]  SHA-256 of the payload
 *   Every string is followed by a NUL inside the string table and holds no
 *   other NUL. PTX payloads end with a NUL byte, counted in their size.
 *
 *   payloads: one per record, each starting on a MF_ARCHIVE_ALIGN boundary
 *   (zero padding between), so they are 64-byte aligned in memory whenever
 *   the archive is (mmap gives page alignment; embed with .balign 64).
 *
 * The magic and the version are read first and never move, so another
 * version is recognised (MF_ERR_ARCHIVE_VERSION) before anything else is
 * trusted. Opening checks both checksums and every offset, size and string
 * of the index against the archive's bounds; payload checksums are checked
 * lazily, once per entry, by mf_archive_find, so opening a large archive
 * touches only its header and index.
 */
#ifndef MF_ARCHIVE_H
#define MF_ARCHIVE_H

#include <stddef.h>

#include "moeforge.h"

#define MF_ARCHIVE_FORMAT_VERSION 1
#define MF_ARCHIVE_MAGIC "MFKARCH" /* 8 bytes with its NUL */
#define MF_ARCHIVE_HEADER_SIZE 192
#define MF_ARCHIVE_RECORD_SIZE 80
#define MF_ARCHIVE_ALIGN 64
#define MF_ARCHIVE_GENERATOR_MAX 64 /* bytes, NUL included */
#define MF_ARCHIVE_FLAG_PTX 1u

/* Byte offsets of the fields described above, shared by reader, writer and tests. */
enum mf_archive_layout {
    MF_ARCHIVE_HDR_VERSION = 8,
    MF_ARCHIVE_HDR_HEADER_SIZE = 12,
    MF_ARCHIVE_HDR_FILE_SIZE = 16,
    MF_ARCHIVE_HDR_COUNT = 24,
    MF_ARCHIVE_HDR_INDEX_OFFSET = 32,
    MF_ARCHIVE_HDR_INDEX_SIZE = 40,
    MF_ARCHIVE_HDR_INDEX_SHA = 48,
    MF_ARCHIVE_HDR_GENERATOR = 80,
    MF_ARCHIVE_HDR_SHA = 160,
    MF_ARCHIVE_REC_SPEC = 0, /* u32 offset, u32 length */
    MF_ARCHIVE_REC_TARGET = 8,
    MF_ARCHIVE_REC_ENTRY = 16,
    MF_ARCHIVE_REC_FLAGS = 24,
    MF_ARCHIVE_REC_PAYLOAD_OFFSET = 32,
    MF_ARCHIVE_REC_PAYLOAD_SIZE = 40,
    MF_ARCHIVE_REC_PAYLOAD_SHA = 48,
};

typedef struct mf_archive mf_archive;

typedef struct mf_archive_entry {
    const char *spec;   /* canonical spec, e.g. "silu_mul:block=256,dtype=bf16" */
    const char *target; /* "sm_90a" (cubin) or "compute_90a" (PTX) */
    const char *entry;  /* extern "C" entry point */
    int is_ptx;         /* PTX payloads are NUL-terminated, the NUL counted in size */
    const void *data;   /* payload inside the archive's memory */
    size_t size;
} mf_archive_entry;

/* Uses the caller's memory (not copied; it must outlive the archive).
 * `origin` (may be NULL) names it in messages. Validates header, version,
 * checksums of header and index, and the bounds of every index field. */
mf_status mf_archive_open_memory(const void *data, size_t size, const char *origin, mf_archive **out);

/* mmap()s the file read-only (MAP_PRIVATE), then as above; close unmaps. */
mf_status mf_archive_open_file(const char *path, mf_archive **out);

void mf_archive_close(mf_archive *a); /* NULL-safe */

size_t mf_archive_count(const mf_archive *a);

/* Entry i's index fields, in (spec, target) order; the payload is not verified. */
mf_status mf_archive_entry_at(const mf_archive *a, size_t i, mf_archive_entry *out);

/* Binary search by (spec, target). The payload's SHA-256 is verified the first
 * time the entry is found (a mismatch is MF_ERR_ARCHIVE naming the spec); a
 * verified entry costs nothing more afterwards. Safe from several threads.
 * Absent: MF_ERR_KERNEL_NOT_FOUND without touching the last-error message,
 * since misses are the normal way down the lookup chain. */
mf_status mf_archive_find(const mf_archive *a, const char *spec, const char *target,
                          mf_archive_entry *out);

/* 1 when some entry's target is exactly `target` (e.g. "sm_90a"), else 0.
 * Used to refuse archives built for another architecture. */
int mf_archive_has_target(const mf_archive *a, const char *target);

/* Generator version string recorded by the writer. */
const char *mf_archive_generator_version(const mf_archive *a);

#endif
