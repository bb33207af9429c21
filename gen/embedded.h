/* Files embedded in the binaries at build time (the build generates the table). */
#ifndef MF_EMBEDDED_H
#define MF_EMBEDDED_H

#include <stddef.h>

typedef struct mf_embedded_file {
    const char *name;          /* plain file name, e.g. "silu_mul.cu" */
    const unsigned char *data; /* file bytes, not NUL-terminated        */
    size_t size;
} mf_embedded_file;

extern const mf_embedded_file mf_embedded_templates[];
extern const size_t mf_embedded_template_count;

#endif
