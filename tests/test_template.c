/* Template engine and template store: syntax, #line mapping, include, errors,
 * sandbox and limits. */
#include "embedded.h"
#include "template.h"
#include "template_store.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

/* Criterion runs each test in its own process, so a per-process dir is enough. */
static char template_dir[64];

static void use_template_dir(void)
{
    strcpy(template_dir, "/tmp/mf_templates_XXXXXX");
    cr_assert_not_null(mkdtemp(template_dir));
    setenv("MOEFORGE_TEMPLATE_DIR", template_dir, 1);
}

static void remove_template_dir(void)
{
    if (!template_dir[0])
        return;
    DIR *dir = opendir(template_dir);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        char path[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", template_dir, e->d_name);
        unlink(path);
    }
    if (dir)
        closedir(dir);
    rmdir(template_dir);
}

TestSuite(template, .fini = remove_template_dir);

static void write_template(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", template_dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static mf_param param(const char *key, const char *value)
{
    mf_param p;
    snprintf(p.key, sizeof p.key, "%s", key);
    snprintf(p.value, sizeof p.value, "%s", value);
    return p;
}

static char *render_ok(const char *text, const mf_param *params, int count)
{
    char *out = NULL;
    size_t len = 0;
    mf_status s = mf_template_render_text("t.cu", text, strlen(text), params, count, &out, &len);
    cr_assert_eq(s, MF_OK, "render failed (%d): %s", s, mf_last_error());
    cr_assert_eq(len, strlen(out));
    return out;
}

static void expect_output(const char *text, const mf_param *params, int count, const char *expected)
{
    char *out = render_ok(text, params, count);
    cr_assert_str_eq(out, expected);
    free(out);
}

/* Expects failure with `status` and a message holding every given substring. */
static void expect_failure_in(mf_status s, char *out, mf_status status, const char *const *parts)
{
    cr_assert_eq(s, status, "status %d, wanted %d; message: %s", s, status, mf_last_error());
    cr_assert_null(out);
    for (; *parts; parts++)
        cr_assert(strstr(mf_last_error(), *parts), "message \"%s\" lacks \"%s\"", mf_last_error(),
                  *parts);
}

#define EXPECT_FAILURE(text, status, ...)                                                       \
    do {                                                                                        \
        char *out_ = NULL;                                                                      \
        const char *text_ = (text);                                                             \
        mf_status s_ = mf_template_render_text("t.cu", text_, strlen(text_), NULL, 0, &out_, NULL); \
        expect_failure_in(s_, out_, status, (const char *const[]){__VA_ARGS__, NULL});          \
    } while (0)

#define EXPECT_RENDER_FAILURE(name, status, ...)                                          \
    do {                                                                                  \
        char *out_ = NULL;                                                                \
        mf_status s_ = mf_template_render((name), NULL, 0, &out_, NULL);                  \
        expect_failure_in(s_, out_, status, (const char *const[]){__VA_ARGS__, NULL});    \
    } while (0)

/* Copies line `number` (from 1) of text into buf. */
static void template_line(const char *text, long number, char *buf, size_t size)
{
    for (long i = 1; i < number && text; i++) {
        text = strchr(text, '\n');
        text = text ? text + 1 : NULL;
    }
    cr_assert(text && *text, "template has no line %ld", number);
    size_t n = strcspn(text, "\n");
    cr_assert_lt(n, size);
    memcpy(buf, text, n);
    buf[n] = '\0';
}

typedef struct named_text {
    const char *name;
    const char *text;
} named_text;

/* Every output line after `#line N "f"` must be line N, N+1, ... of f (the
 * templates given here hold no $( ) so text lines come out verbatim).
 * Returns the number of directives seen. */
static int check_line_mapping(const char *output, const named_text *files, int count)
{
    const char *text = NULL;
    long line = 0;
    int directives = 0;
    char out_line[256], want[256], file[64];
    for (const char *p = output; *p;) {
        size_t n = strcspn(p, "\n");
        cr_assert_lt(n, sizeof out_line);
        memcpy(out_line, p, n);
        out_line[n] = '\0';
        p += n + (p[n] == '\n');
        if (sscanf(out_line, "#line %ld \"%63[^\"]\"", &line, file) == 2) {
            directives++;
            text = NULL;
            for (int i = 0; i < count; i++)
                if (strcmp(files[i].name, file) == 0)
                    text = files[i].text;
            cr_assert_not_null(text, "#line names unknown file %s", file);
            continue;
        }
        cr_assert_not_null(text, "text line \"%s\" before any #line", out_line);
        template_line(text, line, want, sizeof want);
        cr_assert_str_eq(out_line, want, "output line does not match %s:%ld", file, line);
        line++;
    }
    return directives;
}

/* ---- syntax ------------------------------------------------------------------- */

Test(template, renders_integer_string_and_bool_parameters)
{
    mf_param p[] = {param("BLOCK", "256"), param("dtype", "bf16"), param("fp8", "false")};
    expect_output("constexpr int kBlock = $(BLOCK);\n"
                  "using T = $(dtype == \"bf16\" and \"__nv_bfloat16\" or \"float\");\n"
                  "constexpr bool kFp8 = $(fp8);\n"
                  "const char *name = \"$(dtype)\";\n",
                  p, 3,
                  "#line 1 \"t.cu\"\n"
                  "constexpr int kBlock = 256;\n"
                  "using T = __nv_bfloat16;\n"
                  "constexpr bool kFp8 = false;\n"
                  "const char *name = \"bf16\";\n");
}

Test(template, converts_parameter_strings_to_lua_types)
{
    mf_param p[] = {param("block", "256"), param("neg", "-3"),    param("eps", "1e-6"),
                    param("half", "0.5"),  param("on", "true"),   param("dtype", "e4m3"),
                    param("hex", "0x10"),  param("thousand", "1e3")};
    expect_output("$(math.type(block)) $(math.type(neg)) $(neg * 2) $(math.type(eps)) "
                  "$(half * 4) $(type(on)) $(type(dtype)) $(type(hex)) $(hex) $(thousand) "
                  "$(params.block + 1) $(params.missing == nil)\n",
                  p, 8,
                  "#line 1 \"t.cu\"\n"
                  "integer integer -6 float 2 boolean string string 0x10 1000 257 true\n");
}

Test(template, formats_numbers_without_spurious_fractions)
{
    mf_param p[] = {param("BLOCK", "256")};
    expect_output("$(BLOCK / 2) $(1 / 4) $(7 // 2) $(2^53) $(-0.0) $(1e300) $(1.5e-3) "
                  "$(math.maxinteger) $(1 < 2)\n",
                  p, 1,
                  "#line 1 \"t.cu\"\n"
                  "128 0.25 3 9007199254740992 0 1e+300 0.0015 9223372036854775807 true\n");
}

Test(template, loop_unrolls_with_line_directives)
{
    mf_param p[] = {param("UNROLL", "3")};
    expect_output("#pragma unroll\n"
                  "$ for i = 0, UNROLL - 1 do\n"
                  "acc[$(i)] += x[$(i * 2)];\n"
                  "$ end\n"
                  "done();\n",
                  p, 1,
                  "#line 1 \"t.cu\"\n"
                  "#pragma unroll\n"
                  "#line 3 \"t.cu\"\n"
                  "acc[0] += x[0];\n"
                  "#line 3 \"t.cu\"\n"
                  "acc[1] += x[2];\n"
                  "#line 3 \"t.cu\"\n"
                  "acc[2] += x[4];\n"
                  "#line 5 \"t.cu\"\n"
                  "done();\n");
}

Test(template, recognizes_lua_lines_only_with_dollar_and_blank)
{
    expect_output("  $ local x = 3\n"
                  "\t$\tlocal y = x * 2\n"
                  "$\n"
                  "  v = $(x + y);\n"
                  "$ending\n"
                  "$(x) first\n"
                  "$$ not lua\n"
                  "$L__BB0_1:\n",
                  NULL, 0,
                  "#line 4 \"t.cu\"\n"
                  "  v = 9;\n"
                  "$ending\n"
                  "3 first\n"
                  "$ not lua\n"
                  "$L__BB0_1:\n");
}

Test(template, double_dollar_escapes_and_lone_dollar_stays)
{
    expect_output("cost $$5 and $$(x) and $x and a$ and $\n", NULL, 0,
                  "#line 1 \"t.cu\"\n"
                  "cost $5 and $(x) and $x and a$ and $\n");
}

Test(template, expressions_hold_parentheses_and_strings)
{
    expect_output("$((1 + 2) * 3) $(string.format(\"(%d)\", 4)) $(')' .. \"(\") "
                  "$([[a)b]]) $([==[x]]y)]==]) $(\"q\\\")\") $(#\"()\")\n",
                  NULL, 0,
                  "#line 1 \"t.cu\"\n"
                  "9 (4) )( a)b x]]y) q\") 2\n");
}

Test(template, passes_c_preprocessor_braces_and_inline_asm_through)
{
    const char *text = "#include <cuda_bf16.h>\n"
                       "#pragma unroll 4\n"
                       "extern \"C\" __global__ void k(int *x) {\n"
                       "  asm volatile(\"mov.u32 %0, %%laneid;\" : \"=r\"(x[0]));\n"
                       "  asm(\"{ .reg .pred p; @p bra $L__done; $L__done: }\");\n"
                       "}\n";
    char expected[1024];
    snprintf(expected, sizeof expected, "#line 1 \"t.cu\"\n%s", text);
    expect_output(text, NULL, 0, expected);
}

Test(template, arbitrary_bytes_survive_escaping)
{
    const char *text = "a ]] [[ ]=] \\ \\n \"q\" 'x' %s %% \t\x01\x7f \xc3\xa9 \\0 9\r\n"
                       "\\\n";
    char expected[256];
    snprintf(expected, sizeof expected, "#line 1 \"t.cu\"\n%s", text);
    expect_output(text, NULL, 0, expected);
}

Test(template, last_line_without_newline_and_empty_template)
{
    expect_output("a\nb", NULL, 0, "#line 1 \"t.cu\"\na\nb\n");
    expect_output("", NULL, 0, "");
    expect_output("$ local x = 1\n", NULL, 0, "");
}

/* ---- #line mapping and include -------------------------------------------------- */

Test(template, line_directives_point_at_template_lines)
{
    use_template_dir();
    const char *common = "// common 1\n"
                         "$ if true then\n"
                         "// common 3\n"
                         "$ end\n"
                         "// common 5\n";
    const char *main = "// main 1\n"
                       "$ for i = 1, 3 do\n"
                       "// loop body 3\n"
                       "// loop body 4\n"
                       "$ end\n"
                       "$ if false then\n"
                       "// skipped 7\n"
                       "$ end\n"
                       "// main 9\n"
                       "$ include(\"common.cuh\")\n"
                       "// main 11\n"
                       "$ include(\"common.cuh\")\n"
                       "$ include(\"common.cuh\")\n"
                       "// main 14\n";
    write_template("common.cuh", common);
    write_template("main.cu", main);
    char *out = NULL;
    cr_assert_eq(mf_template_render("main.cu", NULL, 0, &out, NULL), MF_OK, "%s", mf_last_error());
    named_text files[] = {{"main.cu", main}, {"common.cuh", common}};
    int directives = check_line_mapping(out, files, 2);
    /* main 1, loop x3, main 9, 3 x (common 1, 3, 5), main 11, main 14: a Lua
     * line between two text lines needs a directive too */
    cr_assert_eq(directives, 1 + 3 + 1 + 3 * 3 + 1 + 1, "%d directives in:\n%s", directives, out);
    cr_assert(strstr(out, "#line 5 \"common.cuh\"\n// common 5\n#line 11 \"main.cu\"\n// main 11\n"));
    free(out);
}

Test(template, include_renders_inline_with_same_parameters)
{
    use_template_dir();
    write_template("common.cuh", "// block $(BLOCK)\n");
    write_template("main.cu", "a\n$ include(\"common.cuh\")\nb\n");
    mf_param p[] = {param("BLOCK", "64")};
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(mf_template_render("main.cu", p, 1, &out, &len), MF_OK, "%s", mf_last_error());
    const char *expected = "#line 1 \"main.cu\"\na\n#line 1 \"common.cuh\"\n// block 64\n"
                           "#line 3 \"main.cu\"\nb\n";
    cr_assert_str_eq(out, expected);
    cr_assert_eq(len, strlen(expected));
    free(out);
}

Test(template, included_helpers_share_globals_and_keep_their_lines)
{
    use_template_dir();
    write_template("helpers.cuh", "$ function load_vec(n)\n"
                                  "load$(n)(p);\n"
                                  "$ end\n"
                                  "$ WIDTH = 4\n");
    expect_output("$ include(\"helpers.cuh\")\n"
                  "$ load_vec(WIDTH)\n"
                  "x\n",
                  NULL, 0,
                  "#line 2 \"helpers.cuh\"\nload4(p);\n#line 3 \"t.cu\"\nx\n");
}

Test(template, include_depth_limit)
{
    use_template_dir();
    char name[32], text[64];
    for (int i = 0; i <= 8; i++) {
        snprintf(name, sizeof name, "d%d.cuh", i);
        snprintf(text, sizeof text, "level %d\n$ if %d < LAST then include(\"d%d.cuh\") end\n", i,
                 i, i + 1);
        write_template(name, text);
    }
    /* d0 .. d7: eight nested includes are allowed */
    mf_param deepest_allowed[] = {param("LAST", "7")};
    char *out = render_ok("$ include(\"d0.cuh\")\n", deepest_allowed, 1);
    cr_assert(strstr(out, "level 7\n"));
    cr_assert_null(strstr(out, "level 8"));
    free(out);

    mf_param one_too_deep[] = {param("LAST", "8")};
    char *fail = NULL;
    const char *root = "$ include(\"d0.cuh\")\n";
    mf_status s = mf_template_render_text("t.cu", root, strlen(root), one_too_deep, 1, &fail, NULL);
    expect_failure_in(s, fail, MF_ERR_TEMPLATE,
                      (const char *const[]){"d7.cuh:2:", "include(\"d8.cuh\") nests deeper than 8",
                                            NULL});
}

Test(template, recursive_include_refused)
{
    use_template_dir();
    write_template("self.cuh", "x\n$ include(\"self.cuh\")\n");
    EXPECT_FAILURE("$ include(\"self.cuh\")\n", MF_ERR_TEMPLATE, "self.cuh:2:",
                   "recursive include");
}

Test(template, include_of_missing_or_badly_named_template_refused)
{
    use_template_dir();
    EXPECT_FAILURE("a\n$ include(\"nope.cuh\")\n", MF_ERR_TEMPLATE, "t.cu:2:",
                   "template 'nope.cuh' not found", template_dir);
    EXPECT_FAILURE("$ include(\"../x.cuh\")\n", MF_ERR_TEMPLATE, "bad template name '../x.cuh'");
    EXPECT_FAILURE("$ include(42 > 1)\n", MF_ERR_TEMPLATE, "t.cu:1:", "string expected");
}

/* ---- errors --------------------------------------------------------------------- */

Test(template, runtime_error_names_file_and_line)
{
    EXPECT_FAILURE("a\nb\nx = $(1 + {})\n", MF_ERR_TEMPLATE, "t.cu:3:", "arithmetic");
    EXPECT_FAILURE("a\n$ error(\"custom\")\n", MF_ERR_TEMPLATE, "t.cu:2: custom");
    EXPECT_FAILURE("$ assert(false, \"BLOCK must be a power of 2\")\n", MF_ERR_TEMPLATE,
                   "BLOCK must be a power of 2");
}

Test(template, error_in_included_template_names_that_file)
{
    use_template_dir();
    write_template("common.cuh", "ok\nbad $(nil .. 1)\n");
    EXPECT_FAILURE("$ include(\"common.cuh\")\n", MF_ERR_TEMPLATE, "common.cuh:2:",
                   "concatenate");
    write_template("unterminated.cuh", "ok\n\nbad $(1 + (2)\n");
    EXPECT_FAILURE("$ include(\"unterminated.cuh\")\n", MF_ERR_TEMPLATE,
                   "unterminated.cuh:3: unterminated $( expression");
    write_template("syntax.cuh", "ok\n$ local = 1\n");
    EXPECT_FAILURE("x\n$ include(\"syntax.cuh\")\n", MF_ERR_TEMPLATE, "syntax.cuh:2:",
                   "<name> expected");
}

Test(template, syntax_error_names_file_and_line)
{
    EXPECT_FAILURE("x\n\n$ local = 5\n", MF_ERR_TEMPLATE, "t.cu:3:", "<name> expected");
    EXPECT_FAILURE("x\ny $(1 +) z\n", MF_ERR_TEMPLATE, "t.cu:2:", "unexpected symbol");
    EXPECT_FAILURE("a\n$ for i = 1, 2 do\nb\n", MF_ERR_TEMPLATE, "t.cu:", "'end' expected");
}

Test(template, malformed_expressions_refused)
{
    EXPECT_FAILURE("a\nb $(1 + (2\n", MF_ERR_TEMPLATE, "t.cu:2: unterminated $( expression");
    EXPECT_FAILURE("x $(\")\")\n\n$(\"a)\n", MF_ERR_TEMPLATE, "t.cu:3: unterminated");
    EXPECT_FAILURE("$(1 --[[ )\n", MF_ERR_TEMPLATE, "t.cu:1: comments are not allowed");
}

Test(template, undefined_name_refused)
{
    EXPECT_FAILURE("a\nint x = $(BLOKC);\n", MF_ERR_TEMPLATE, "t.cu:2:", "undefined name 'BLOKC'");
    EXPECT_FAILURE("$ if dtype == \"bf16\" then\n$ end\n", MF_ERR_TEMPLATE, "t.cu:1:",
                   "undefined name 'dtype'");
}

Test(template, unprintable_values_refused)
{
    EXPECT_FAILURE("a $(params.nope) b\n", MF_ERR_TEMPLATE, "t.cu:1: $(params.nope) is nil");
    EXPECT_FAILURE("$({})\n", MF_ERR_TEMPLATE, "$({}) is a table");
    EXPECT_FAILURE("$(math.huge)\n", MF_ERR_TEMPLATE, "not a finite number");
    EXPECT_FAILURE("$ local function f() end\n$(f())\n", MF_ERR_TEMPLATE, "t.cu:2:", "is nil");
}

Test(template, missing_template)
{
    use_template_dir();
    EXPECT_RENDER_FAILURE("no_such_template.cu", MF_ERR_TEMPLATE,
                          "template 'no_such_template.cu' not found", "$MOEFORGE_TEMPLATE_DIR=");
    unsetenv("MOEFORGE_TEMPLATE_DIR");
    EXPECT_RENDER_FAILURE("no_such_template.cu", MF_ERR_TEMPLATE,
                          "template 'no_such_template.cu' not found");
}

Test(template, bad_template_names_refused)
{
    use_template_dir();
    const char *bad[] = {"../x", "a/b", "/etc/passwd", ".hidden", "..", "", "a b", "x\\y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "bad template name '%s'", bad[i]);
        EXPECT_RENDER_FAILURE(bad[i], MF_ERR_TEMPLATE, want);
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(mf_template_load(bad[i], &text, &len), MF_ERR_TEMPLATE);
        cr_assert_null(text);
    }
}

Test(template, invalid_arguments_refused)
{
    char *out = NULL;
    mf_param builtin[] = {param("type", "x")};
    mf_param not_ident[] = {param("9lives", "x")};
    cr_assert_eq(mf_template_render_text("t.cu", "x", 1, NULL, 0, NULL, NULL),
                 MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_template_render_text("t.cu", NULL, 0, NULL, 0, &out, NULL),
                 MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_template_render_text("t.cu", "x", 1, NULL, 2, &out, NULL),
                 MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_template_render_text("t\".cu", "x", 1, NULL, 0, &out, NULL),
                 MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_template_render_text("t.cu", "x", 1, builtin, 1, &out, NULL),
                 MF_ERR_INVALID_ARGUMENT);
    cr_assert(strstr(mf_last_error(), "'type' would hide"), "%s", mf_last_error());
    cr_assert_eq(mf_template_render_text("t.cu", "x", 1, not_ident, 1, &out, NULL),
                 MF_ERR_INVALID_ARGUMENT);
    cr_assert_null(out);
}

/* ---- sandbox and limits ------------------------------------------------------------ */

Test(template, environment_holds_only_the_allowed_names)
{
    mf_param p[] = {param("BLOCK", "128")};
    expect_output("$ local names = {}\n"
                  "$ for k in pairs(_ENV) do names[#names + 1] = k end\n"
                  "$ table.sort(names)\n"
                  "$(table.concat(names, \" \"))\n"
                  "$ local m = {}\n"
                  "$ for k in pairs(math) do if k:find(\"random\") then m[#m + 1] = k end end\n"
                  "random: $(#m)\n",
                  p, 1,
                  "#line 4 \"t.cu\"\n"
                  "BLOCK assert error include ipairs math next pairs params select string table "
                  "tonumber tostring type utf8\n"
                  "#line 7 \"t.cu\"\n"
                  "random: 0\n");
}

Test(template, sandbox_escapes_refused)
{
    static const struct {
        const char *code, *message;
    } escapes[] = {
        {"$ io.open(\"/etc/passwd\")\n", "undefined name 'io'"},
        {"$ os.execute(\"true\")\n", "undefined name 'os'"},
        {"$ load(\"return 1\")()\n", "undefined name 'load'"},
        {"$ loadstring(\"return 1\")\n", "undefined name 'loadstring'"},
        {"$ loadfile(\"/etc/passwd\")\n", "undefined name 'loadfile'"},
        {"$ dofile(\"/etc/passwd\")\n", "undefined name 'dofile'"},
        {"$ require(\"io\")\n", "undefined name 'require'"},
        {"$ package.loaded.io.open(\"x\")\n", "undefined name 'package'"},
        {"$ debug.getinfo(1)\n", "undefined name 'debug'"},
        {"$ string.dump(function() end)\n", "field 'dump'"},
        {"$ (\"\").dump(function() end)\n", "field 'dump'"},
        {"$ getmetatable(\"\").__index.dump(function() end)\n", "undefined name 'getmetatable'"},
        {"$ setmetatable({}, {})\n", "undefined name 'setmetatable'"},
        {"$ rawget(_ENV, \"io\")\n", "undefined name 'rawget'"},
        {"$ rawset(_ENV, \"x\", 1)\n", "undefined name 'rawset'"},
        {"$ pcall(error, \"x\")\n", "undefined name 'pcall'"},
        {"$ xpcall(error, error)\n", "undefined name 'xpcall'"},
        {"$ collectgarbage(\"stop\")\n", "undefined name 'collectgarbage'"},
        {"$ coroutine.wrap(print)\n", "undefined name 'coroutine'"},
        {"$ print(1)\n", "undefined name 'print'"},
        {"$ _G.io.open(\"x\")\n", "undefined name '_G'"},
        {"$ math.random(1)\n", "field 'random'"},
    };
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++)
        EXPECT_FAILURE(escapes[i].code, MF_ERR_TEMPLATE, "t.cu:1:", escapes[i].message);
}

Test(template, runaway_loops_stopped)
{
    EXPECT_FAILURE("a\n$ while true do end\n", MF_ERR_TEMPLATE, "t.cu:2:",
                   "template 't.cu' stopped after 50000000 instructions (runaway loop?)");
    EXPECT_FAILURE("$ local function f(n) return f(n + 1) end\n$ f(0)\n", MF_ERR_TEMPLATE,
                   "stopped after");
    EXPECT_FAILURE("$ local s = string.rep(\"a\", 100)\n"
                   "$ while true do s = s:gsub(\"a\", function(c) return c end) end\n",
                   MF_ERR_TEMPLATE, "stopped after");
}

Test(template, memory_bombs_stopped)
{
    EXPECT_FAILURE("$(string.rep(\"x\", 1e9))\n", MF_ERR_TEMPLATE,
                   "template 't.cu' exceeded its memory limit of 64 MiB");
    EXPECT_FAILURE("$ local s = \"x\" while true do s = s .. s end\n", MF_ERR_TEMPLATE,
                   "exceeded its memory limit");
    EXPECT_FAILURE("$ local t = {} for i = 1, 1e8 do t[i] = i end\n", MF_ERR_TEMPLATE,
                   "exceeded its memory limit");
}

Test(template, unbounded_recursion_stopped)
{
    /* Lua's stack limit or the memory limit, whichever comes first */
    const char *text = "$ local function f() return 1 + f() end\n$ f()\n";
    char *out = NULL;
    cr_assert_eq(mf_template_render_text("t.cu", text, strlen(text), NULL, 0, &out, NULL),
                 MF_ERR_TEMPLATE);
    cr_assert(strstr(mf_last_error(), "t.cu:1: stack overflow") ||
                  strstr(mf_last_error(), "exceeded its memory limit"),
              "%s", mf_last_error());
}

Test(template, output_size_capped)
{
    EXPECT_FAILURE("$ for i = 1, 200000 do\n"
                   "0123456789012345678901234567890123456789012345678901234567890123456789\n"
                   "$ end\n",
                   MF_ERR_TEMPLATE, "t.cu:2:", "output exceeds 16 MiB");
}

/* ---- store ----------------------------------------------------------------------------- */

Test(template, store_reads_template_dir_exactly)
{
    use_template_dir();
    write_template("k.cu", "body $(X)\n\\ ]] end");
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(mf_template_load("k.cu", &text, &len), MF_OK, "%s", mf_last_error());
    cr_assert_eq(len, strlen("body $(X)\n\\ ]] end"));
    cr_assert_str_eq(text, "body $(X)\n\\ ]] end");
    free(text);

    mf_param p[] = {param("X", "7")};
    char *out = NULL;
    cr_assert_eq(mf_template_render("k.cu", p, 1, &out, NULL), MF_OK, "%s", mf_last_error());
    cr_assert_str_eq(out, "#line 1 \"k.cu\"\nbody 7\n\\ ]] end\n");
    free(out);
}

Test(template, store_serves_every_embedded_template_byte_exact)
{
    unsetenv("MOEFORGE_TEMPLATE_DIR");
    for (size_t i = 0; i < mf_embedded_template_count; i++) {
        const mf_embedded_file *f = &mf_embedded_templates[i];
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(mf_template_load(f->name, &text, &len), MF_OK, "%s", mf_last_error());
        cr_assert_eq(len, f->size, "%s", f->name);
        cr_assert_eq(memcmp(text, f->data, len), 0, "%s", f->name);
        cr_assert_eq(text[len], '\0');
        free(text);
    }
}

Test(template, template_dir_overrides_embedded_and_falls_back)
{
    if (mf_embedded_template_count == 0)
        cr_skip_test("no embedded templates in this build");
    use_template_dir();
    const mf_embedded_file *f = &mf_embedded_templates[0];
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(mf_template_load(f->name, &text, &len), MF_OK, "%s", mf_last_error());
    cr_assert_eq(len, f->size);
    free(text);
    write_template(f->name, "override\n");
    cr_assert_eq(mf_template_load(f->name, &text, &len), MF_OK, "%s", mf_last_error());
    cr_assert_str_eq(text, "override\n");
    free(text);
}

/* ---- threads ----------------------------------------------------------------------------- */

static const char *threaded_template = "$ for i = 1, N do\nv$(i) = $(i * i);\n$ end\n";

static void *render_many(void *expected)
{
    mf_param p[] = {param("N", "50")};
    for (int i = 0; i < 25; i++) {
        char *out = NULL;
        mf_status s = mf_template_render_text("t.cu", threaded_template,
                                              strlen(threaded_template), p, 1, &out, NULL);
        bool same = s == MF_OK && strcmp(out, expected) == 0;
        free(out);
        if (!same)
            return "mismatch";
    }
    return NULL;
}

Test(template, concurrent_renders_agree)
{
    mf_param p[] = {param("N", "50")};
    char *expected = render_ok(threaded_template, p, 1);
    cr_assert(strstr(expected, "#line 2 \"t.cu\"\nv50 = 2500;\n"));
    pthread_t threads[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, render_many, expected), 0);
    for (int i = 0; i < 8; i++) {
        void *result = NULL;
        pthread_join(threads[i], &result);
        cr_assert_null(result, "thread %d rendered something else", i);
    }
    free(expected);
}
