/* Lua template engine. A template compiles to a Lua chunk line for line
 * (template line i is chunk line i, chunk name "=<file>"), so Lua's own error
 * messages read "<file>:<line>: ...". The chunk runs in a fresh, sandboxed Lua
 * state with an instruction budget and a memory limit; text lines call a C
 * emitter that appends to the output and writes #line directives. */
#include "template.h"
#include "lua_budget.h"

#include "error.h"
#include "template_store.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The count hook runs every HOOK_PERIOD VM instructions. */
#define HOOK_PERIOD 10000
/* Longest name accepted by mf_template_render_text (it goes into #line). */
#define NAME_MAX_LEN 200
/* The chunk-local function that text lines call. */
#define EMIT_NAME "__mf_emit"
/* Message Lua raises when an allocation fails. */
#define LUA_MEMORY_MESSAGE "not enough memory"

typedef struct text_buf {
    char *data; /* NUL-terminated once anything was appended */
    size_t len, cap;
    bool failed; /* an allocation failed; later appends do nothing */
} text_buf;

typedef struct render_ctx {
    const char *name; /* top-level template, for messages */
    const char *text;
    size_t text_len;
    const mf_param *params;
    int param_count;
    mf_lua_memory memory;
    long instructions;
    int depth;      /* include nesting */
    int file_count; /* ids given to loaded templates, for #line tracking */
    int last_file;  /* file id and line of the last emitted line; 0 before any */
    lua_Integer last_line;
    text_buf output;
    /* Held only between C calls that cannot raise; freed by the render when a
     * Lua error unwinds past them. */
    char *include_text;
    text_buf chunk;
    mf_status failure; /* status reported for a Lua error (MF_ERR_TEMPLATE unless set) */
} render_ctx;

/* ---- text buffers ---------------------------------------------------------- */

static void buf_append(text_buf *b, const void *bytes, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len <= n)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(text_buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void buf_release(text_buf *b)
{
    free(b->data);
    *b = (text_buf){0};
}

/* ---- compiling a template into Lua ------------------------------------------ */

static render_ctx *context_of(lua_State *L)
{
    return *(render_ctx **)lua_getextraspace(L);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Start of the Lua code when the line is a Lua line ("$ code", "$\tcode", a
 * lone "$"), else NULL. "$(x)" and "$$" at line start stay text. */
static const char *lua_line_code(const char *line, size_t n)
{
    size_t i = 0;
    while (i < n && is_blank(line[i]))
        i++;
    if (i == n || line[i] != '$')
        return NULL;
    if (i + 1 == n || is_blank(line[i + 1]) || line[i + 1] == '\r')
        return line + i + 1;
    return NULL;
}

/* Index just past the short string literal opening at s[i], or n. */
static size_t short_string_end(const char *s, size_t n, size_t i)
{
    char quote = s[i];
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == quote)
            return i + 1;
    }
    return n;
}

/* Length of a long-bracket opener "[==[" at s[i] (its '=' count in *level), or 0. */
static size_t long_bracket_opener(const char *s, size_t n, size_t i, size_t *level)
{
    if (s[i] != '[')
        return 0;
    size_t j = i + 1;
    while (j < n && s[j] == '=')
        j++;
    if (j == n || s[j] != '[')
        return 0;
    *level = j - i - 1;
    return j - i + 1;
}

/* Index just past the closer "]==]" of the given level at or after i, or n. */
static size_t long_bracket_end(const char *s, size_t n, size_t i, size_t level)
{
    for (; i < n; i++) {
        if (s[i] != ']')
            continue;
        size_t j = i + 1;
        while (j < n && s[j] == '=')
            j++;
        if (j < n && s[j] == ']' && j - i - 1 == level)
            return j + 1;
    }
    return n;
}

typedef enum expr_scan { EXPR_OK, EXPR_UNTERMINATED, EXPR_COMMENT } expr_scan;

/* Finds in *close the ')' matching the '(' at s[open], skipping Lua string
 * literals. Comments are refused: one would swallow the rest of the emit call. */
static expr_scan find_expression_end(const char *s, size_t n, size_t open, size_t *close)
{
    int depth = 0;
    size_t i = open;
    while (i < n) {
        size_t level, opener;
        if (s[i] == '"' || s[i] == '\'') {
            i = short_string_end(s, n, i);
            continue;
        }
        if ((opener = long_bracket_opener(s, n, i, &level))) {
            i = long_bracket_end(s, n, i + opener, level);
            continue;
        }
        if (s[i] == '-' && i + 1 < n && s[i + 1] == '-')
            return EXPR_COMMENT;
        if (s[i] == '(')
            depth++;
        else if (s[i] == ')' && --depth == 0) {
            *close = i;
            return EXPR_OK;
        }
        i++;
    }
    return EXPR_UNTERMINATED;
}

/* Appends bytes as the inside of a Lua double-quoted string. Control bytes
 * use three-digit escapes so that a following digit cannot extend them. */
static void append_lua_string_body(text_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '"') {
            char escaped[2] = {'\\', (char)c};
            buf_append(b, escaped, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char escaped[8];
            snprintf(escaped, sizeof escaped, "\\%03u", c);
            buf_append(b, escaped, 4);
        } else {
            buf_append(b, &s[i], 1);
        }
    }
}

static void raise_compile_error(lua_State *L, const char *name, int line, const char *what)
{
    lua_pushfstring(L, "%s:%d: %s", name, line, what);
    lua_error(L);
}

/* A text line becomes one call: emit(line, "text", (expr), "expr", "text", ...):
 * literals and values alternate, each value followed by its source for messages. */
static void compile_text_line(lua_State *L, text_buf *code, const char *name, int line,
                              const char *s, size_t n)
{
    char head[48];
    snprintf(head, sizeof head, EMIT_NAME "(%d, \"", line);
    buf_puts(code, head);
    size_t i = 0;
    while (i < n) {
        bool dollar = s[i] == '$' && i + 1 < n;
        if (dollar && s[i + 1] == '$') {
            buf_append(code, "$", 1);
            i += 2;
        } else if (dollar && s[i + 1] == '(') {
            size_t close = 0;
            expr_scan scan = find_expression_end(s, n, i + 1, &close);
            if (scan == EXPR_UNTERMINATED)
                raise_compile_error(L, name, line, "unterminated $( expression");
            if (scan == EXPR_COMMENT)
                raise_compile_error(L, name, line, "comments are not allowed inside $( )");
            const char *expr = s + i + 2;
            size_t expr_len = close - i - 2;
            buf_puts(code, "\", (");
            buf_append(code, expr, expr_len);
            buf_puts(code, "), \"");
            append_lua_string_body(code, expr, expr_len);
            buf_puts(code, "\", \"");
            i = close + 1;
        } else {
            append_lua_string_body(code, s + i, 1);
            i++;
        }
    }
    buf_puts(code, "\")");
}

/* Translates template text into ctx->chunk, one Lua line per template line.
 * Line 1 starts by binding the emitter, passed as the chunk's argument. */
static void compile_template(lua_State *L, render_ctx *ctx, const char *name, const char *text,
                             size_t len)
{
    text_buf *code = &ctx->chunk;
    buf_puts(code, "local " EMIT_NAME " = ...; ");
    int line = 1;
    for (size_t pos = 0; pos < len; line++) {
        const char *start = text + pos;
        const char *eol = memchr(start, '\n', len - pos);
        size_t n = eol ? (size_t)(eol - start) : len - pos;
        const char *lua = lua_line_code(start, n);
        if (lua)
            buf_append(code, lua, n - (size_t)(lua - start));
        else
            compile_text_line(L, code, name, line, start, n);
        buf_append(code, "\n", 1);
        pos += n + 1;
    }
    if (code->failed) {
        ctx->failure = MF_ERR_OUT_OF_MEMORY;
        luaL_error(L, "out of memory compiling template '%s'", name);
    }
}

/* Loads ctx->chunk as a function named "=<name>" and frees the code. */
static void load_chunk(lua_State *L, render_ctx *ctx, const char *name)
{
    char chunkname[NAME_MAX_LEN + 2];
    snprintf(chunkname, sizeof chunkname, "=%s", name);
    int status = luaL_loadbufferx(L, ctx->chunk.data, ctx->chunk.len, chunkname, "t");
    buf_release(&ctx->chunk);
    if (status != LUA_OK)
        lua_error(L);
}

/* ---- output ------------------------------------------------------------------ */

static void output_text(lua_State *L, render_ctx *ctx, const char *s, size_t n)
{
    if (n > MF_TEMPLATE_OUTPUT_LIMIT - ctx->output.len)
        luaL_error(L, "template '%s' output exceeds %d MiB", ctx->name,
                   (int)(MF_TEMPLATE_OUTPUT_LIMIT >> 20));
    buf_append(&ctx->output, s, n);
    if (ctx->output.failed) {
        ctx->failure = MF_ERR_OUT_OF_MEMORY;
        luaL_error(L, "out of memory for the output of template '%s'", ctx->name);
    }
}

static void output_string(lua_State *L, render_ctx *ctx, const char *s)
{
    output_text(L, ctx, s, strlen(s));
}

/* Integers, and floats with an integral value that fits int64, print in
 * decimal (BLOCK / 2 gives "128", not "128.0"); other floats as tostring. */
static void output_number(lua_State *L, render_ctx *ctx, int value, const char *expr)
{
    int exact = 0;
    lua_Integer integer = lua_tointegerx(L, value, &exact);
    if (exact) {
        char text[32];
        snprintf(text, sizeof text, LUA_INTEGER_FMT, (LUAI_UACINT)integer);
        output_string(L, ctx, text);
        return;
    }
    if (!isfinite(lua_tonumber(L, value)))
        luaL_error(L, "$(%s) is %s, not a finite number", expr, luaL_tolstring(L, value, NULL));
    size_t n;
    const char *text = luaL_tolstring(L, value, &n);
    output_text(L, ctx, text, n);
    lua_pop(L, 1);
}

static void output_value(lua_State *L, render_ctx *ctx, int value, int source)
{
    const char *expr = luaL_checkstring(L, source);
    switch (lua_type(L, value)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, value, &n);
        output_text(L, ctx, s, n);
        return;
    }
    case LUA_TBOOLEAN:
        output_string(L, ctx, lua_toboolean(L, value) ? "true" : "false");
        return;
    case LUA_TNUMBER:
        output_number(L, ctx, value, expr);
        return;
    case LUA_TNIL:
        luaL_error(L, "$(%s) is nil", expr);
        return;
    default:
        luaL_error(L, "$(%s) is a %s, not a string, number or boolean", expr,
                   luaL_typename(L, value));
    }
}

static void output_literal(lua_State *L, render_ctx *ctx, int index)
{
    size_t n;
    const char *s = luaL_checklstring(L, index, &n);
    output_text(L, ctx, s, n);
}

static void output_line_directive(lua_State *L, render_ctx *ctx, const char *file,
                                  lua_Integer line)
{
    char head[48];
    snprintf(head, sizeof head, "#line " LUA_INTEGER_FMT " \"", (LUAI_UACINT)line);
    output_string(L, ctx, head);
    output_string(L, ctx, file);
    output_string(L, ctx, "\"\n");
}

/* The emitter of one template (upvalues: file name, file id). Arguments:
 * line, literal, then (value, value source, literal) repeated. A #line
 * directive precedes the line unless it directly follows the previous one. */
static int emit_line(lua_State *L)
{
    render_ctx *ctx = context_of(L);
    int file = (int)lua_tointeger(L, lua_upvalueindex(2));
    lua_Integer line = luaL_checkinteger(L, 1);
    int top = lua_gettop(L);
    /* Wrapping arithmetic, as Lua's own: template code can reach the emitter
     * (a local of its chunk) and pass any integer, math.maxinteger included. */
    bool follows = (lua_Unsigned)line == (lua_Unsigned)ctx->last_line + 1;
    if (file != ctx->last_file || !follows)
        output_line_directive(L, ctx, lua_tostring(L, lua_upvalueindex(1)), line);
    output_literal(L, ctx, 2);
    for (int i = 3; i + 2 <= top; i += 3) {
        output_value(L, ctx, i, i + 1);
        output_literal(L, ctx, i + 2);
    }
    output_text(L, ctx, "\n", 1);
    ctx->last_file = file;
    ctx->last_line = line;
    return 0;
}

/* Calls the loaded template function on the stack with its emitter. */
static void run_chunk(lua_State *L, render_ctx *ctx, const char *name)
{
    lua_pushstring(L, name);
    lua_pushinteger(L, ++ctx->file_count);
    lua_pushcclosure(L, emit_line, 2);
    lua_call(L, 1, 0);
}

/* include("name"): renders another template inline with the same globals. */
static int include_template(lua_State *L)
{
    render_ctx *ctx = context_of(L);
    const char *name = luaL_checkstring(L, 1);
    if (ctx->depth >= MF_TEMPLATE_MAX_INCLUDE_DEPTH)
        return luaL_error(L, "include(\"%s\") nests deeper than %d levels (recursive include?)",
                          name, MF_TEMPLATE_MAX_INCLUDE_DEPTH);
    size_t len;
    mf_status status = mf_template_load(name, &ctx->include_text, &len);
    if (status != MF_OK) {
        if (status != MF_ERR_TEMPLATE)
            ctx->failure = status;
        return luaL_error(L, "%s", mf_last_error());
    }
    compile_template(L, ctx, name, ctx->include_text, len);
    free(ctx->include_text);
    ctx->include_text = NULL;
    load_chunk(L, ctx, name);
    ctx->depth++;
    run_chunk(L, ctx, name);
    ctx->depth--;
    return 0;
}

/* ---- sandbox ----------------------------------------------------------------- */

static const char *const base_names[] = {"assert", "error",  "ipairs",   "pairs", "next",
                                         "select", "tonumber", "tostring", "type",  NULL};
static const char *const no_names[] = {NULL};
static const char *const math_hidden[] = {"random", "randomseed", NULL};
static const char *const string_hidden[] = {"dump", NULL};

typedef struct sandbox_library {
    const char *name;
    lua_CFunction open;
    const char *const *hidden; /* functions the templates do not get */
} sandbox_library;

static const sandbox_library sandbox_libraries[] = {
    {LUA_MATHLIBNAME, luaopen_math, math_hidden},
    {LUA_STRLIBNAME, luaopen_string, string_hidden},
    {LUA_TABLIBNAME, luaopen_table, no_names},
    {LUA_UTF8LIBNAME, luaopen_utf8, no_names},
};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

/* Names a parameter may not take, as it would hide them. */
static bool is_builtin_name(const char *s)
{
    if (in_list(base_names, s) || strcmp(s, "include") == 0 || strcmp(s, "params") == 0)
        return true;
    for (size_t i = 0; i < sizeof sandbox_libraries / sizeof sandbox_libraries[0]; i++)
        if (strcmp(sandbox_libraries[i].name, s) == 0)
            return true;
    return false;
}

/* Lua's pattern matching runs in C, out of the instruction hook's reach, and
 * backtracks: about len^(q+1) steps for q quantifiers. A call whose bound
 * passes PATTERN_STEP_BUDGET is refused instead of hanging the render. */
#define PATTERN_STEP_BUDGET 1e8
static const char *const pattern_functions[] = {"find", "match", "gmatch", "gsub", NULL};

static int count_quantifiers(const char *p)
{
    int q = 0;
    for (; *p; p++) {
        if (*p == '%' && p[1]) {
            q += p[1] == 'b' || p[1] == 'f';
            p++;
        } else
            q += *p == '*' || *p == '+' || *p == '-' || *p == '?';
    }
    return q;
}

static int guarded_pattern_call(lua_State *L)
{
    size_t n;
    luaL_checklstring(L, 1, &n);
    const char *pattern = luaL_checkstring(L, 2);
    int plain = lua_toboolean(L, 4) && lua_tocfunction(L, lua_upvalueindex(2)) != NULL;
    int q = count_quantifiers(pattern);
    double steps = 1;
    for (int i = 0; i <= q && q > 0 && !plain; i++)
        steps *= (double)n + 1;
    if (steps > PATTERN_STEP_BUDGET)
        return luaL_error(L, "pattern '%s' is too costly for the template sandbox (%d quantifiers "
                          "over %d bytes)", pattern, q, (int)n);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Wraps the pattern functions of the string library on top of the stack. */
static void guard_pattern_functions(lua_State *L)
{
    for (const char *const *f = pattern_functions; *f; f++) {
        lua_getfield(L, -1, *f);
        if (strcmp(*f, "find") == 0) /* find alone takes a `plain` flag */
            lua_pushcfunction(L, guarded_pattern_call);
        else
            lua_pushnil(L);
        lua_pushcclosure(L, guarded_pattern_call, 2);
        lua_setfield(L, -2, *f);
    }
}

/* Pushes a copy of the library table on top, without `hidden`. They are also
 * removed from the original: the string metatable's __index is the original,
 * so ("").dump would otherwise still reach string.dump. */
static void push_library_copy(lua_State *L, const char *const *hidden)
{
    int is_string_library = lua_getfield(L, -1, "gsub") == LUA_TFUNCTION;
    lua_pop(L, 1);
    if (is_string_library)
        guard_pattern_functions(L);
    for (; *hidden; hidden++) {
        lua_pushnil(L);
        lua_setfield(L, -2, *hidden);
    }
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
    }
}

/* "256" -> integer, "0.5"/"1e-6" -> float, "true"/"false" -> boolean, else
 * string. Only decimal notation counts as a number ("0x10" stays a string). */
static void push_parameter_value(lua_State *L, const char *value)
{
    if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
        lua_pushboolean(L, value[0] == 't');
    else if (!(value[0] && strspn(value, "0123456789.eE+-") == strlen(value) &&
               lua_stringtonumber(L, value)))
        lua_pushstring(L, value);
}

/* Parameters become globals of env and fields of the global table `params`. */
static void set_parameters(lua_State *L, int env, const mf_param *params, int count)
{
    lua_createtable(L, 0, count);
    for (int i = 0; i < count; i++) {
        push_parameter_value(L, params[i].value);
        lua_pushvalue(L, -1);
        lua_setfield(L, env, params[i].key);
        lua_setfield(L, -2, params[i].key);
    }
    lua_setfield(L, env, "params");
}

static int undefined_name(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "undefined name '%s'", lua_tostring(L, 2));
    return luaL_error(L, "undefined name (a %s key)", luaL_typename(L, 2));
}

/* Builds the template environment and makes it the globals table, so every
 * chunk loaded afterwards sees only it as _ENV. */
static void open_sandbox(lua_State *L, const render_ctx *ctx)
{
    lua_newtable(L);
    int env = lua_gettop(L);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
    for (const char *const *name = base_names; *name; name++) {
        lua_getfield(L, -1, *name);
        lua_setfield(L, env, *name);
    }
    lua_pop(L, 1);
    for (size_t i = 0; i < sizeof sandbox_libraries / sizeof sandbox_libraries[0]; i++) {
        const sandbox_library *lib = &sandbox_libraries[i];
        luaL_requiref(L, lib->name, lib->open, 0);
        push_library_copy(L, lib->hidden);
        lua_setfield(L, env, lib->name);
        lua_pop(L, 1);
    }
    lua_pushcfunction(L, include_template);
    lua_setfield(L, env, "include");
    set_parameters(L, env, ctx->params, ctx->param_count);
    lua_newtable(L);
    lua_pushcfunction(L, undefined_name);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, env);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
}

/* ---- limits ------------------------------------------------------------------- */

/* Count hook: stops the render once the instruction budget is spent. The
 * templates have no pcall, so the error cannot be caught and ignored. */
static void count_instructions(lua_State *L, lua_Debug *ar)
{
    render_ctx *ctx = context_of(L);
    ctx->instructions += HOOK_PERIOD;
    if (ctx->instructions < MF_TEMPLATE_INSTRUCTION_LIMIT)
        return;
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: template '%s' stopped after %d instructions (runaway loop?)",
                    ar->short_src, ar->currentline, ctx->name,
                    (int)MF_TEMPLATE_INSTRUCTION_LIMIT);
    lua_error(L);
}

/* ---- rendering ------------------------------------------------------------------ */

static int render_root(lua_State *L)
{
    render_ctx *ctx = context_of(L);
    open_sandbox(L, ctx);
    compile_template(L, ctx, ctx->name, ctx->text, ctx->text_len);
    load_chunk(L, ctx, ctx->name);
    run_chunk(L, ctx, ctx->name);
    return 0;
}

static mf_status report_failure(lua_State *L, const render_ctx *ctx, int status)
{
    const char *msg = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    bool memory_error = status == LUA_ERRMEM || (msg && strcmp(msg, LUA_MEMORY_MESSAGE) == 0);
    if (memory_error && ctx->memory.refused)
        return MF_FAIL(MF_ERR_TEMPLATE, "template '%s' exceeded its memory limit of %d MiB",
                       ctx->name, (int)(MF_TEMPLATE_MEMORY_LIMIT >> 20));
    if (status == LUA_ERRMEM)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "out of memory rendering template '%s'", ctx->name);
    if (!msg)
        return MF_FAIL(MF_ERR_TEMPLATE, "template '%s' raised an error object that is a %s",
                       ctx->name, luaL_typename(L, -1));
    return MF_FAIL(ctx->failure, "%s", msg);
}

/* The name goes into #line "..." and messages: printable, no quote or backslash. */
static bool is_usable_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x20 || name[i] > 0x7e || name[i] == '"' || name[i] == '\\')
            return false;
    return true;
}

static bool is_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static mf_status check_parameters(const mf_param *params, int count)
{
    if (count < 0 || (count > 0 && !params))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "template parameters: %d given with %s", count,
                       params ? "an array" : "no array");
    for (int i = 0; i < count; i++) {
        const mf_param *p = &params[i];
        if (!memchr(p->key, '\0', sizeof p->key) || !memchr(p->value, '\0', sizeof p->value))
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "template parameter %d is not NUL-terminated",
                           i);
        if (!is_identifier(p->key))
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                           "template parameter '%s' is not a Lua identifier", p->key);
        if (is_builtin_name(p->key))
            return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                           "template parameter '%s' would hide the template builtin of that name",
                           p->key);
    }
    return MF_OK;
}

/* Gives the output to the caller; an empty render still yields "". */
static mf_status hand_over_output(render_ctx *ctx, char **out, size_t *out_len)
{
    if (!ctx->output.data) {
        ctx->output.data = calloc(1, 1);
        if (!ctx->output.data)
            return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "out of memory for the output of template '%s'",
                           ctx->name);
    }
    *out = ctx->output.data;
    if (out_len)
        *out_len = ctx->output.len;
    ctx->output = (text_buf){0};
    return MF_OK;
}

mf_status mf_template_render_text(const char *name, const char *text, size_t len,
                                  const mf_param *params, int count, char **out, size_t *out_len)
{
    if (!name || !text || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_template_render_text: name, text and out are required");
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!is_usable_name(name))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT,
                       "template name '%s' must be 1..%d printable characters without '\"' or '\\'",
                       name, NAME_MAX_LEN);
    MF_TRY(check_parameters(params, count));

    render_ctx ctx = {.name = name, .text = text, .text_len = len, .params = params,
                      .param_count = count, .failure = MF_ERR_TEMPLATE,
                      .memory = {.limit = MF_TEMPLATE_MEMORY_LIMIT}};
    lua_State *L = lua_newstate(mf_lua_limited_alloc, &ctx.memory);
    if (!L)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "cannot create a Lua state for template '%s'", name);
    *(render_ctx **)lua_getextraspace(L) = &ctx;
    lua_sethook(L, count_instructions, LUA_MASKCOUNT, HOOK_PERIOD);
    lua_pushcfunction(L, render_root);
    int lua_status = lua_pcall(L, 0, 0, 0);
    mf_status status = lua_status == LUA_OK ? MF_OK : report_failure(L, &ctx, lua_status);
    lua_close(L);
    free(ctx.include_text);
    buf_release(&ctx.chunk);
    if (status == MF_OK)
        status = hand_over_output(&ctx, out, out_len);
    buf_release(&ctx.output);
    return status;
}

mf_status mf_template_render(const char *name, const mf_param *params, int count, char **out,
                             size_t *out_len)
{
    if (!name || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_template_render: name and out are required");
    char *text;
    size_t len;
    MF_TRY(mf_template_load(name, &text, &len));
    mf_status status = mf_template_render_text(name, text, len, params, count, out, out_len);
    free(text);
    return status;
}
