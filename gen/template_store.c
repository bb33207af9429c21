/* Template sources: the development directory first, then the embedded set. */
#include "template_store.h"

#include "embedded.h"
#include "error.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Plain file names only: no separators and no leading dot, so neither "../x"
 * nor hidden files can be reached through the template directory. */
static bool is_plain_name(const char *name)
{
    if (name[0] == '\0' || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static mf_status copy_text(const void *data, size_t size, char **text, size_t *len)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for a template", size + 1);
    if (size)
        memcpy(copy, data, size);
    copy[size] = '\0';
    *text = copy;
    *len = size;
    return MF_OK;
}

/* Reads the whole stream, refusing more than MF_TEMPLATE_MAX_SOURCE_BYTES. */
static mf_status read_stream(FILE *f, const char *path, const char *name, char **text, size_t *len)
{
    size_t size = 0, cap = 0;
    char *data = NULL;
    for (;;) {
        if (cap - size < 4096) {
            cap = cap ? cap * 2 : 16384;
            char *grown = realloc(data, cap + 1);
            if (!grown) {
                free(data);
                return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for template '%s'",
                               cap + 1, name);
            }
            data = grown;
        }
        size_t got = fread(data + size, 1, cap - size, f);
        size += got;
        if (size > MF_TEMPLATE_MAX_SOURCE_BYTES) {
            free(data);
            return MF_FAIL(MF_ERR_TEMPLATE, "template '%s' is larger than %zu bytes", name,
                           MF_TEMPLATE_MAX_SOURCE_BYTES);
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int err = errno;
        free(data);
        return MF_FAIL(MF_ERR_IO, "cannot read template %s: %s", path, strerror(err));
    }
    data[size] = '\0';
    *text = data;
    *len = size;
    return MF_OK;
}

/* Loads dir/name; *found stays false when the file does not exist. */
static mf_status load_from_dir(const char *dir, const char *name, char **text, size_t *len,
                               bool *found)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return MF_FAIL(MF_ERR_TEMPLATE, "template path too long: $MOEFORGE_TEMPLATE_DIR=%s, '%s'",
                       dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return MF_OK;
        return MF_FAIL(MF_ERR_IO, "cannot open template %s: %s", path, strerror(errno));
    }
    *found = true;
    mf_status status = read_stream(f, path, name, text, len);
    fclose(f);
    return status;
}

static const mf_embedded_file *find_embedded(const char *name)
{
    for (size_t i = 0; i < mf_embedded_template_count; i++)
        if (strcmp(mf_embedded_templates[i].name, name) == 0)
            return &mf_embedded_templates[i];
    return NULL;
}

mf_status mf_template_load(const char *name, char **text, size_t *len)
{
    if (!name || !text || !len)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_template_load: name, text and len are required");
    if (!is_plain_name(name))
        return MF_FAIL(MF_ERR_TEMPLATE,
                       "bad template name '%s': must match [A-Za-z0-9_.-]+ and not start with '.'",
                       name);
    const char *dir = getenv("MOEFORGE_TEMPLATE_DIR");
    bool have_dir = dir && dir[0];
    if (have_dir) {
        bool found = false;
        MF_TRY(load_from_dir(dir, name, text, len, &found));
        if (found)
            return MF_OK;
    }
    const mf_embedded_file *file = find_embedded(name);
    if (file)
        return copy_text(file->data, file->size, text, len);
    if (have_dir)
        return MF_FAIL(MF_ERR_TEMPLATE,
                       "template '%s' not found (embedded set or $MOEFORGE_TEMPLATE_DIR=%s)", name,
                       dir);
    return MF_FAIL(MF_ERR_TEMPLATE,
                   "template '%s' not found (embedded set; $MOEFORGE_TEMPLATE_DIR is not set)", name);
}
