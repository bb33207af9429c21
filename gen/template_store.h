/* Where template sources come from: $MOEFORGE_TEMPLATE_DIR during development,
 * else the set embedded in the binary at build time. */
#ifndef MF_TEMPLATE_STORE_H
#define MF_TEMPLATE_STORE_H

#include "moeforge.h"

#include <stddef.h>

/* Largest template source accepted, in bytes. */
#define MF_TEMPLATE_MAX_SOURCE_BYTES ((size_t)16 << 20)

/* Loads template `name`, a plain file name matching [A-Za-z0-9_.-]+ that does
 * not start with '.'. Reads $MOEFORGE_TEMPLATE_DIR/<name> when the variable is
 * set and the file exists, else the embedded copy. *text is a malloc'd
 * NUL-terminated copy the caller frees; *len excludes the NUL.
 * MF_ERR_TEMPLATE for a bad name, a missing or oversized template;
 * MF_ERR_IO when the file exists but cannot be read. */
mf_status mf_template_load(const char *name, char **text, size_t *len);

#endif
