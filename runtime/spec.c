/* Kernel spec parsing, canonical formatting and entry-point naming. */
#include "spec.h"

#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_key_char(char c, int first)
{
    if (c >= 'a' && c <= 'z')
        return 1;
    return !first && ((c >= '0' && c <= '9') || c == '_');
}

static int is_value_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '+' || c == '-';
}

static mf_status check_name(const char *what, const char *s, size_t n)
{
    if (n == 0 || n >= MF_SPEC_KEY_MAX)
        return MF_FAIL(MF_ERR_SPEC, "spec %s '%.*s' must have 1..%d characters", what, (int)n, s,
                       MF_SPEC_KEY_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if (!is_key_char(s[i], i == 0))
            return MF_FAIL(MF_ERR_SPEC, "spec %s '%.*s' may hold only [a-z][a-z0-9_]*", what,
                           (int)n, s);
    return MF_OK;
}

static mf_status check_value(const char *key, const char *s, size_t n)
{
    if (n == 0 || n >= MF_SPEC_VALUE_MAX)
        return MF_FAIL(MF_ERR_SPEC, "spec value of '%s' must have 1..%d characters", key,
                       MF_SPEC_VALUE_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if (!is_value_char(s[i]))
            return MF_FAIL(MF_ERR_SPEC, "spec value '%.*s' of '%s' may hold only [A-Za-z0-9_.+-]",
                           (int)n, s, key);
    return MF_OK;
}

const char *mf_spec_get(const mf_spec *spec, const char *key)
{
    for (int i = 0; i < spec->count; i++)
        if (strcmp(spec->params[i].key, key) == 0)
            return spec->params[i].value;
    return NULL;
}

static mf_status spec_set_n(mf_spec *spec, const char *key, size_t klen, const char *value,
                            size_t vlen, int allow_replace)
{
    MF_TRY(check_name("key", key, klen));
    char k[MF_SPEC_KEY_MAX];
    memcpy(k, key, klen);
    k[klen] = 0;
    MF_TRY(check_value(k, value, vlen));
    int slot = spec->count;
    for (int i = 0; i < spec->count; i++)
        if (strcmp(spec->params[i].key, k) == 0) {
            if (!allow_replace)
                return MF_FAIL(MF_ERR_SPEC, "spec key '%s' appears twice", k);
            slot = i;
        }
    if (slot == MF_SPEC_MAX_PARAMS)
        return MF_FAIL(MF_ERR_SPEC, "spec has more than %d parameters", MF_SPEC_MAX_PARAMS);
    memcpy(spec->params[slot].key, k, klen + 1);
    memcpy(spec->params[slot].value, value, vlen);
    spec->params[slot].value[vlen] = 0;
    if (slot == spec->count)
        spec->count++;
    return MF_OK;
}

mf_status mf_spec_set(mf_spec *spec, const char *key, const char *value)
{
    return spec_set_n(spec, key, strlen(key), value, strlen(value), 1);
}

mf_status mf_spec_set_int(mf_spec *spec, const char *key, long value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", value);
    return mf_spec_set(spec, key, buf);
}

mf_status mf_spec_parse(const char *text, mf_spec *out)
{
    if (!text || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_spec_parse: null argument");
    memset(out, 0, sizeof *out);
    const char *colon = strchr(text, ':');
    size_t flen = colon ? (size_t)(colon - text) : strlen(text);
    MF_TRY(check_name("family", text, flen));
    memcpy(out->family, text, flen);
    if (!colon || colon[1] == 0)
        return MF_OK;
    const char *p = colon + 1;
    for (;;) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        if (!eq || eq > end)
            return MF_FAIL(MF_ERR_SPEC, "spec '%s': parameter '%.*s' has no '='", text,
                           (int)(end - p), p);
        MF_TRY(spec_set_n(out, p, (size_t)(eq - p), eq + 1, (size_t)(end - eq - 1), 0));
        if (*end == 0)
            return MF_OK;
        p = end + 1;
    }
}

static int compare_params(const void *a, const void *b)
{
    return strcmp(((const mf_param *)a)->key, ((const mf_param *)b)->key);
}

mf_status mf_spec_format(const mf_spec *spec, char *buf, size_t size)
{
    mf_param sorted[MF_SPEC_MAX_PARAMS];
    memcpy(sorted, spec->params, sizeof(mf_param) * (size_t)spec->count);
    qsort(sorted, (size_t)spec->count, sizeof(mf_param), compare_params);
    size_t used = (size_t)snprintf(buf, size, "%s", spec->family);
    for (int i = 0; i < spec->count && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s=%s", i ? "," : ":",
                                 sorted[i].key, sorted[i].value);
    if (used >= size)
        return MF_FAIL(MF_ERR_SPEC, "spec of family '%s' longer than %zu bytes", spec->family,
                       size - 1);
    return MF_OK;
}

mf_status mf_spec_entry_name(const mf_spec *spec, char *buf, size_t size)
{
    char text[MF_SPEC_TEXT_MAX];
    MF_TRY(mf_spec_format(spec, text, sizeof text));
    uint64_t h = 1469598103934665603ull; /* FNV-1a: stable, tiny, good enough for a name */
    for (const char *c = text; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ull;
    if ((size_t)snprintf(buf, size, "mf_%s_%016llx", spec->family, (unsigned long long)h) >= size)
        return MF_FAIL(MF_ERR_SPEC, "entry name buffer too small");
    return MF_OK;
}
