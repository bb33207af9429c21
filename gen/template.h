/* Lua template engine: renders a Lua-templated CUDA C file into plain CUDA C.
 *
 * Syntax
 *  - A line whose first non-blank character is '$' followed by a space, a tab
 *    or the end of the line is Lua code:   $ for i = 0, UNROLL - 1 do
 *    Lua code must stay on its line: a long string or long comment opened on a
 *    '$' line must close on that line.
 *  - In every other line "$(expr)" is replaced by the value of the Lua
 *    expression (balanced parentheses; parentheses inside Lua string literals,
 *    short or long-bracket, do not count; "--" comments are refused).
 *    Strings print as is, booleans as "true"/"false", integers in decimal,
 *    floats with an integral value that fits int64 as integers (BLOCK / 2 ->
 *    "128"), other finite floats as Lua's tostring does ("0.25"). nil, inf,
 *    nan, tables and functions are errors.
 *  - "$$" gives a literal '$'; any other '$' is copied as is, so #include,
 *    #pragma, C braces and PTX inline asm pass through untouched.
 *  - Parameters are globals and also fields of the table `params`. Their C
 *    strings become integers ("256"), floats ("0.5", "1e-6"), booleans
 *    ("true", "false") or else strings ("bf16"). Reading an undefined global
 *    is an error ("undefined name 'foo'"); `params.foo` is nil when unset.
 *  - include("common.cuh") renders another template inline; it shares the
 *    parameters and the globals of the including template.
 *  - The output carries #line directives so that compiler messages point at
 *    template files and lines; Lua errors read "<file>:<line>: message".
 *
 * Sandbox: the templates see only assert, error, ipairs, pairs, next, select,
 * tonumber, tostring, type, math (without random/randomseed, so that a render
 * is deterministic), string (without dump), table, utf8, include and params.
 * Iteration order of pairs() over string keys varies between runs: sort keys
 * before emitting text from them. Each render uses its own Lua state, so
 * renders may run on several threads at once. */
#ifndef MF_TEMPLATE_H
#define MF_TEMPLATE_H

#include "moeforge.h"
#include "spec.h"

#include <stddef.h>

#define MF_TEMPLATE_MAX_INCLUDE_DEPTH 8
/* Lua VM instructions one render may run (all templates together). */
#define MF_TEMPLATE_INSTRUCTION_LIMIT 50000000L
/* Memory the Lua state of one render may hold. */
#define MF_TEMPLATE_MEMORY_LIMIT ((size_t)64 << 20)
/* Largest rendered source. */
#define MF_TEMPLATE_OUTPUT_LIMIT ((size_t)16 << 20)

/* Renders template `name` (loaded with mf_template_load) with the parameters.
 * *out is a malloc'd NUL-terminated CUDA C source the caller frees; out_len
 * may be NULL. Failures of the template (syntax, runtime error, limits,
 * missing include) return MF_ERR_TEMPLATE with the message in mf_last_error(). */
mf_status mf_template_render(const char *name, const mf_param *params, int count, char **out,
                             size_t *out_len);

/* Same with the template text given; `name` is used in messages and #line
 * directives. include() still goes through the template store. */
mf_status mf_template_render_text(const char *name, const char *text, size_t len,
                                  const mf_param *params, int count, char **out, size_t *out_len);

#endif
