/* libFuzzer target: the template engine (gen/template.h) with hostile
 * templates and hostile parameter tables.
 *
 * Input: parameter lines "key=value", a line "%%", then the template text.
 * Without a "%%" line the whole input is the template. A key or value longer
 * than its field fills the field with no NUL, as a careless caller could;
 * the engine must refuse that, not read past it.
 *
 * Every failure must be a status (MF_ERR_TEMPLATE for anything the template
 * does, MF_ERR_INVALID_ARGUMENT for bad parameters), never a crash, a leak or
 * a hang: the instruction hook and the 64 MiB allocator cap stop runaway
 * templates. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "template.h"

#define MAX_PARAMS 32 /* more than a spec holds: the engine takes any count */
#define SEPARATOR "%%\n"

/* Copies a line into a fixed field, without NUL when it does not fit. */
static void fill_field(char *field, size_t size, const char *s, size_t n)
{
    memset(field, 0, size);
    memcpy(field, s, n < size ? n : size);
}

/* Parses "key=value" lines of [p, end) into params; returns how many. */
static int parse_params(const char *p, const char *end, mf_param *params)
{
    int count = 0;
    while (p < end && count < MAX_PARAMS) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol ? eol : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *value = eq ? eq + 1 : stop;
        mf_param *param = &params[count++];
        fill_field(param->key, sizeof param->key, p, (size_t)((eq ? eq : stop) - p));
        fill_field(param->value, sizeof param->value, value, (size_t)(stop - value));
        p = stop + 1;
    }
    return count;
}

/* The start of SEPARATOR at a line start, or NULL. */
static const char *find_separator(const char *text, size_t size)
{
    const size_t n = sizeof SEPARATOR - 1;
    for (const char *p = text; (size_t)(p - text) + n <= size;) {
        if (memcmp(p, SEPARATOR, n) == 0)
            return p;
        const char *eol = memchr(p, '\n', size - (size_t)(p - text));
        if (!eol)
            break;
        p = eol + 1;
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* include() reads the embedded templates only, never the file system. */
    unsetenv("MOEFORGE_TEMPLATE_DIR");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *sep = find_separator(text, size);
    mf_param params[MAX_PARAMS];
    int count = 0;
    if (sep) {
        count = parse_params(text, sep, params);
        size -= (size_t)(sep + sizeof SEPARATOR - 1 - text);
        text = sep + sizeof SEPARATOR - 1;
    }
    char *out = NULL;
    size_t len = 0;
    mf_status s = mf_template_render_text("fuzz.cu", text, size, params, count, &out, &len);
    if (s == MF_OK && strlen(out) > len) /* the output is NUL-terminated at len */
        abort();
    if (s != MF_OK && s != MF_ERR_TEMPLATE && s != MF_ERR_INVALID_ARGUMENT)
        abort();
    free(out);
    return 0;
}
