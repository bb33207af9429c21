/* Model files: run sandboxed, then every field validated by name. */
#include "model.h"
#include "lua_budget.h"

#include "embedded.h"
#include "error.h"
#include "template_store.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A model file is a table literal: these budgets leave plenty of room. */
#define MODEL_INSTRUCTION_LIMIT 1000000L
#define MODEL_MEMORY_LIMIT ((size_t)4 << 20)
#define MODEL_HOOK_PERIOD 1000
#define MODEL_MAX_FILE_BYTES ((long)1 << 20)

typedef struct budget {
    mf_lua_memory memory;
    long instructions;
} budget;

static void count_instructions(lua_State *L, lua_Debug *ar)
{
    budget *b = *(budget **)lua_getextraspace(L);
    (void)ar;
    if ((b->instructions += MODEL_HOOK_PERIOD) >= MODEL_INSTRUCTION_LIMIT)
        luaL_error(L, "stopped after %d instructions (a model file is a table)",
                   (int)MODEL_INSTRUCTION_LIMIT);
}

/* ---- fields ------------------------------------------------------------------- */

static const char *const known_fields[] = {"name",   "hidden",  "intermediate", "experts",
                                           "topk",   "dtypes",  "layouts",      "tokens",
                                           "ue8m0",  "sm_count", NULL};

static mf_status check_known_fields(lua_State *L, const char *origin)
{
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: the table has a %s key; fields are "
                           "named", origin, luaL_typename(L, -1));
        const char *key = lua_tostring(L, -1);
        int known = 0;
        for (const char *const *f = known_fields; *f && !known; f++)
            known = strcmp(*f, key) == 0;
        if (!known)
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: unknown field '%s'", origin, key);
    }
    return MF_OK;
}

/* Integer field in [lo, hi]; the table is on top of the stack. */
static mf_status read_int(lua_State *L, const char *origin, const char *field, int lo, int hi,
                          int *out)
{
    int exact = 0;
    lua_getfield(L, -1, field);
    lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &exact) : 0;
    int present = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!present)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field '%s' is missing", origin, field);
    if (!exact || v < lo || v > hi)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field '%s' must be an integer in [%d, %d]",
                       origin, field, lo, hi);
    *out = (int)v;
    return MF_OK;
}

static mf_status read_name(lua_State *L, const char *origin, mf_model *m)
{
    lua_getfield(L, -1, "name");
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    size_t n = name ? strlen(name) : 0;
    int ok = n > 0 && n < sizeof m->name &&
             strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
    if (ok)
        memcpy(m->name, name, n + 1);
    lua_pop(L, 1);
    if (!ok)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field 'name' must be a string of 1 to %zu "
                       "letters, digits, '_', '.' or '-'", origin, sizeof m->name - 1);
    return MF_OK;
}

/* A list field of distinct words from `choices` (whose values go to out). */
static mf_status read_choices(lua_State *L, const char *origin, const char *field,
                              const char *const choices[2], const int values[2], int *out,
                              int *count)
{
    lua_getfield(L, -1, field);
    int is_table = lua_type(L, -1) == LUA_TTABLE;
    lua_Integer n = is_table ? (lua_Integer)lua_rawlen(L, -1) : 0;
    mf_status s = n >= 1 && n <= 2 ? MF_OK
                  : MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field '%s' must be a list of 1 or 2 of "
                            "\"%s\", \"%s\"", origin, field, choices[0], choices[1]);
    *count = 0;
    for (lua_Integer i = 1; s == MF_OK && i <= n; i++) {
        lua_rawgeti(L, -1, i);
        const char *word = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        int which = strcmp(word, choices[0]) == 0 ? 0 : strcmp(word, choices[1]) == 0 ? 1 : -1;
        if (which < 0 || (*count == 1 && out[0] == values[which]))
            s = MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field '%s', item %lld: must be \"%s\" or "
                        "\"%s\", each once", origin, field, (long long)i, choices[0], choices[1]);
        else
            out[(*count)++] = values[which];
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return s;
}

static mf_status read_tokens(lua_State *L, const char *origin, mf_model *m)
{
    lua_getfield(L, -1, "tokens");
    int ok = lua_type(L, -1) == LUA_TTABLE && lua_rawlen(L, -1) == 2;
    int exact_lo = 0, exact_hi = 0;
    if (ok) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        int numbers = lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TNUMBER;
        lua_Integer lo = lua_tointegerx(L, -2, &exact_lo), hi = lua_tointegerx(L, -1, &exact_hi);
        ok = numbers && exact_lo && exact_hi && lo >= 1 && lo <= hi && hi <= MF_MODEL_MAX_TOKENS;
        m->tokens_min = (int)lo;
        m->tokens_max = (int)hi;
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    if (!ok)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field 'tokens' must be {first, last} with "
                       "1 <= first <= last <= %d", origin, MF_MODEL_MAX_TOKENS);
    return MF_OK;
}

static mf_status read_ue8m0(lua_State *L, const char *origin, mf_model *m)
{
    lua_getfield(L, -1, "ue8m0");
    int type = lua_type(L, -1);
    m->ue8m0 = type == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field 'ue8m0' must be true or false", origin);
    return MF_OK;
}

static mf_status read_sm_count(lua_State *L, const char *origin, mf_model *m)
{
    lua_getfield(L, -1, "sm_count");
    int absent = lua_isnil(L, -1);
    lua_pop(L, 1);
    return absent ? MF_OK : read_int(L, origin, "sm_count", 1, 1024, &m->sm_count);
}

static int has_e4m3(const mf_model *m)
{
    for (int i = 0; i < m->dtype_count; i++)
        if (m->dtypes[i] == MF_DTYPE_E4M3)
            return 1;
    return 0;
}

/* Constraints between fields, as the ops check them. */
static mf_status check_consistency(const char *origin, const mf_model *m)
{
    int group = has_e4m3(m) ? 128 : 8;
    if (m->hidden % group || m->intermediate % group)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: fields 'hidden' and 'intermediate' must be "
                       "multiples of %d%s", origin, group, group == 128 ? " with e4m3" : "");
    if (m->topk > m->experts)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field 'topk' (%d) exceeds 'experts' (%d)",
                       origin, m->topk, m->experts);
    if (m->ue8m0 && !has_e4m3(m))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: field 'ue8m0' needs \"e4m3\" in 'dtypes'",
                       origin);
    return MF_OK;
}

static mf_status read_model(lua_State *L, const char *origin, mf_model *m)
{
    static const char *const dtype_names[2] = {"bf16", "e4m3"};
    static const int dtype_values[2] = {MF_DTYPE_BF16, MF_DTYPE_E4M3};
    static const char *const layout_names[2] = {"masked", "contiguous"};
    static const int layout_values[2] = {MF_LAYOUT_MASKED, MF_LAYOUT_CONTIGUOUS};
    int dtypes[2], layouts[2];
    if (lua_type(L, -1) != LUA_TTABLE)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "%s: must return a table, returned a %s", origin,
                       luaL_typename(L, -1));
    MF_TRY(check_known_fields(L, origin));
    MF_TRY(read_name(L, origin, m));
    MF_TRY(read_int(L, origin, "hidden", 8, 1 << 20, &m->hidden));
    MF_TRY(read_int(L, origin, "intermediate", 8, 1 << 20, &m->intermediate));
    MF_TRY(read_int(L, origin, "experts", 1, 1024, &m->experts));
    MF_TRY(read_int(L, origin, "topk", 1, 32, &m->topk));
    MF_TRY(read_choices(L, origin, "dtypes", dtype_names, dtype_values, dtypes, &m->dtype_count));
    MF_TRY(read_choices(L, origin, "layouts", layout_names, layout_values, layouts,
                        &m->layout_count));
    for (int i = 0; i < 2; i++) {
        m->dtypes[i] = (mf_dtype)dtypes[i];
        m->layouts[i] = (mf_layout)layouts[i];
    }
    MF_TRY(read_tokens(L, origin, m));
    MF_TRY(read_ue8m0(L, origin, m));
    MF_TRY(read_sm_count(L, origin, m));
    return check_consistency(origin, m);
}

/* ---- running the file ----------------------------------------------------------- */

/* Loads the text with an empty environment: a model file calls nothing. */
static int run_model(lua_State *L)
{
    const char *origin = lua_tostring(L, 1);
    size_t len;
    const char *text = lua_tolstring(L, 2, &len);
    char chunkname[256];
    snprintf(chunkname, sizeof chunkname, "=%s", origin);
    if (luaL_loadbufferx(L, text, len, chunkname, "t") != LUA_OK)
        return lua_error(L);
    lua_newtable(L);
    lua_setupvalue(L, -2, 1); /* _ENV */
    lua_call(L, 0, 1);
    return 1;
}

mf_status mf_model_parse(const char *origin, const char *text, size_t len, mf_model *out)
{
    if (!origin || !text || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_model_parse: null argument");
    memset(out, 0, sizeof *out);
    budget b = {{.limit = MODEL_MEMORY_LIMIT}, 0};
    lua_State *L = lua_newstate(mf_lua_limited_alloc, &b.memory);
    if (!L)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for a Lua state");
    *(budget **)lua_getextraspace(L) = &b;
    lua_sethook(L, count_instructions, LUA_MASKCOUNT, MODEL_HOOK_PERIOD);
    lua_pushcfunction(L, run_model);
    lua_pushstring(L, origin);
    lua_pushlstring(L, text, len);
    mf_status s;
    int status = lua_pcall(L, 2, 1, 0);
    if (status == LUA_ERRMEM)
        s = MF_FAIL(MF_ERR_INVALID_ARGUMENT, "model file %s: exceeded its %d MiB memory budget",
                    origin, (int)(MODEL_MEMORY_LIMIT >> 20));
    else if (status != LUA_OK)
        s = MF_FAIL(MF_ERR_INVALID_ARGUMENT, "model file %s: %s", origin,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "error object is not a string");
    else
        s = read_model(L, origin, out);
    lua_close(L);
    return s;
}

mf_status mf_model_load_file(const char *path, mf_model *out)
{
    if (!path)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_model_load_file: null path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return MF_FAIL(MF_ERR_IO, "cannot open model file %s", path);
    char *text = malloc((size_t)MODEL_MAX_FILE_BYTES + 1);
    size_t len = text ? fread(text, 1, (size_t)MODEL_MAX_FILE_BYTES + 1, f) : 0;
    mf_status s = MF_OK;
    if (!text)
        s = MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory to read %s", path);
    else if (ferror(f))
        s = MF_FAIL(MF_ERR_IO, "cannot read model file %s", path);
    else if (len > (size_t)MODEL_MAX_FILE_BYTES)
        s = MF_FAIL(MF_ERR_INVALID_ARGUMENT, "model file %s is larger than %ld bytes", path,
                    MODEL_MAX_FILE_BYTES);
    fclose(f);
    if (s == MF_OK)
        s = mf_model_parse(path, text, len, out);
    free(text);
    return s;
}

/* ---- presets: templates/models/<name>.lua, embedded with the templates ---------- */

static const char preset_suffix[] = ".lua";

static int compare_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

size_t mf_model_preset_names(char names[][MF_MODEL_NAME_MAX], size_t max)
{
    size_t n = 0, k = sizeof preset_suffix - 1;
    for (size_t i = 0; i < mf_embedded_template_count && n < max; i++) {
        const char *file = mf_embedded_templates[i].name;
        size_t len = strlen(file);
        if (len > k && len - k < MF_MODEL_NAME_MAX && strcmp(file + len - k, preset_suffix) == 0)
            snprintf(names[n++], MF_MODEL_NAME_MAX, "%.*s", (int)(len - k), file);
    }
    qsort(names, n, sizeof names[0], compare_names);
    return n;
}

static mf_status no_such_preset(const char *name)
{
    char names[MF_MODEL_MAX_PRESETS][MF_MODEL_NAME_MAX], list[512] = "";
    size_t n = mf_model_preset_names(names, MF_MODEL_MAX_PRESETS), used = 0;
    for (size_t i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "no model preset '%s' (presets: %s)", name, list);
}

mf_status mf_model_load_preset(const char *name, mf_model *out)
{
    if (!name || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_model_load_preset: null argument");
    char file[MF_MODEL_NAME_MAX + sizeof preset_suffix], *text;
    size_t len;
    size_t n = strlen(name);
    if (n == 0 || n >= MF_MODEL_NAME_MAX || strchr(name, '/') || name[0] == '.')
        return no_such_preset(name);
    snprintf(file, sizeof file, "%s%s", name, preset_suffix);
    if (mf_template_load(file, &text, &len) != MF_OK)
        return no_such_preset(name);
    mf_status s = mf_model_parse(file, text, len, out);
    free(text);
    return s;
}
