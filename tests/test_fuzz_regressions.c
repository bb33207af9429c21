/* CPU suite: inputs the fuzzers of tests/fuzz/ found crashing or tripping a
 * sanitizer, inlined, each with what it broke. Undefined behaviour shows only
 * in the sanitized build (tests/run_sanitized.sh, UBSan halts on a report);
 * every build checks that the input now ends in the documented status. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "template.h"

/* Renders a parameterless template; returns the output (caller frees). */
static char *render(const char *text)
{
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(mf_template_render_text("fuzz.cu", text, strlen(text), NULL, 0, &out, &len),
                 MF_OK, "%s", mf_last_error());
    cr_assert_eq(strlen(out), len);
    return out;
}

/* fuzz_template: the emitter, a local of the template's chunk that template
 * code can call, compared its line with the previous line + 1 in signed
 * arithmetic; math.maxinteger overflowed (gen/template.c, emit_line). */
Test(fuzz_regressions, template_emitter_called_with_the_largest_line)
{
    char *out = render("$ __mf_emit(math.maxinteger, \"a\")\n"
                       "$ __mf_emit(1, \"b\")\n");
    cr_expect_str_eq(out, "#line 9223372036854775807 \"fuzz.cu\"\na\n"
                          "#line 1 \"fuzz.cu\"\nb\n");
    free(out);
}

/* The same emitter called with the smallest line, then the line after the
 * largest: each gets its #line directive and nothing overflows. */
Test(fuzz_regressions, template_emitter_called_with_the_smallest_line)
{
    char *out = render("$ __mf_emit(math.mininteger, \"a\")\n"
                       "$ __mf_emit(math.mininteger + 1, \"b\")\n");
    cr_expect_str_eq(out, "#line -9223372036854775808 \"fuzz.cu\"\na\nb\n");
    free(out);
}

/* Lua's pattern matching backtracks in C, where the instruction budget cannot
 * stop it: ".-.-.-.-b" over 3000 bytes would run for hours. Costly calls are
 * refused (gen/template.c, guarded_pattern_call); cheap ones still work. */
Test(fuzz_regressions, template_pattern_bomb_refused)
{
    const char *bomb = "$ local s = string.rep(\"a\", 3000)\n$ local x = s:find(\".-.-.-.-b\")\n";
    char *out = NULL;
    cr_assert_eq(mf_template_render_text("fuzz.cu", bomb, strlen(bomb), NULL, 0, &out, NULL),
                 MF_ERR_TEMPLATE);
    cr_expect(strstr(mf_last_error(), "too costly for the template sandbox"), "%s",
              mf_last_error());
    const char *gmatch = "$ for w in string.rep(\"ab \", 5000):gmatch(\"(%a-)(%a+)( *)\") do end\n";
    cr_assert_eq(mf_template_render_text("fuzz.cu", gmatch, strlen(gmatch), NULL, 0, &out, NULL),
                 MF_ERR_TEMPLATE);
    out = render("$ local a, b = (\"x=12\"):match(\"(%w+)=(%d+)\")\n"
                 "$(a) $(b) $((\"a_b\"):gsub(\"_\", \"-\")) $((\"abc\"):find(\"b\", 1, true))\n");
    cr_expect(strstr(out, "x 12 a-b 2"), "%s", out);
    free(out);
}
