/* Kernel archive writer: builds the format described in runtime/archive.h,
 * for the build-time kernel set and for `moeforge pack`. */
#ifndef MF_ARCHIVE_WRITER_H
#define MF_ARCHIVE_WRITER_H

#include <stddef.h>

#include "moeforge.h"

typedef struct mf_archive_writer mf_archive_writer;

/* generator_version is recorded in the header (at most 63 bytes). */
mf_status mf_archive_writer_create(const char *generator_version, mf_archive_writer **out);

/* Copies the payload (size > 0). A second add with the same (spec, target)
 * replaces the first. A PTX payload that does not end with a NUL gets one
 * appended, so that readers can hand it to the driver as is. */
mf_status mf_archive_writer_add(mf_archive_writer *w, const char *spec, const char *target,
                                const char *entry, int is_ptx, const void *data, size_t size);

/* Serializes into a malloc'd buffer (caller frees). */
mf_status mf_archive_writer_serialize(mf_archive_writer *w, void **data, size_t *size);

/* Writes atomically: temporary file in the same directory, fsync, rename,
 * fsync of the directory. Readers see the old file or the new one, never a mix. */
mf_status mf_archive_writer_write(mf_archive_writer *w, const char *path);

void mf_archive_writer_destroy(mf_archive_writer *w); /* NULL-safe */

#endif
