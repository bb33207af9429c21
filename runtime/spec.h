/* Kernel specs: "family:key=value,key=value" with keys in canonical (sorted) order.
 * One specialization has exactly one spec string; its entry point name derives from it. */
#ifndef MF_SPEC_H
#define MF_SPEC_H

#include "moeforge.h"

#define MF_SPEC_MAX_PARAMS 24
#define MF_SPEC_KEY_MAX 32
#define MF_SPEC_VALUE_MAX 48
#define MF_SPEC_TEXT_MAX 1024
#define MF_ENTRY_MAX 128

typedef struct mf_param {
    char key[MF_SPEC_KEY_MAX];     /* [a-z][a-z0-9_]* */
    char value[MF_SPEC_VALUE_MAX]; /* [A-Za-z0-9_.+-]+ */
} mf_param;

typedef struct mf_spec {
    char family[MF_SPEC_KEY_MAX]; /* names the template file "<family>.cu" */
    int count;
    mf_param params[MF_SPEC_MAX_PARAMS];
} mf_spec;

/* Parses any key order; fails on bad characters, empty or duplicate keys. */
mf_status mf_spec_parse(const char *text, mf_spec *out);

/* Adds or replaces one parameter (validated like parse). */
mf_status mf_spec_set(mf_spec *spec, const char *key, const char *value);
mf_status mf_spec_set_int(mf_spec *spec, const char *key, long value);

/* Value of key or NULL. */
const char *mf_spec_get(const mf_spec *spec, const char *key);

/* Canonical text: family, then parameters sorted by key. */
mf_status mf_spec_format(const mf_spec *spec, char *buf, size_t size);

/* extern "C" entry point: "mf_" + family + "_" + a 64-bit hash of the canonical spec
 * in hex (names stay short and valid whatever the parameter values). */
mf_status mf_spec_entry_name(const mf_spec *spec, char *buf, size_t size);

#endif
