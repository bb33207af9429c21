/* CPU suite: kernel spec parsing, canonical form and entry names. */
#include <criterion/criterion.h>
#include <string.h>

#include "spec.h"

static void canonical(const char *in, const char *want)
{
    mf_spec s;
    char out[MF_SPEC_TEXT_MAX];
    cr_assert_eq(mf_spec_parse(in, &s), MF_OK, "%s: %s", in, mf_last_error());
    cr_assert_eq(mf_spec_format(&s, out, sizeof out), MF_OK);
    cr_assert_str_eq(out, want);
}

Test(spec, parameters_sorted_by_key)
{
    canonical("silu_mul:unroll=4,dtype=bf16,block=256", "silu_mul:block=256,dtype=bf16,unroll=4");
    canonical("gemm", "gemm");
    canonical("gemm:", "gemm");
    canonical("x:a=1.5e-3,b=sm_90a", "x:a=1.5e-3,b=sm_90a");
}

Test(spec, malformed_specs_refused_with_reason)
{
    const char *bad[] = {"", ":a=1", "Silu:a=1", "silu:a", "silu:a=", "silu:=1", "silu:a=1,a=2",
                         "silu:a=1,", "silu:a=b c", "silu:a=1;b=2", "si-lu:a=1", "silu:A=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mf_spec s;
        cr_expect_eq(mf_spec_parse(bad[i], &s), MF_ERR_SPEC, "'%s' was accepted", bad[i]);
        cr_expect_neq(strlen(mf_last_error()), 0);
    }
}

Test(spec, entry_name_is_stable_valid_and_order_independent)
{
    mf_spec a, b, c;
    char ea[MF_ENTRY_MAX], eb[MF_ENTRY_MAX], ec[MF_ENTRY_MAX];
    mf_spec_parse("silu_mul:block=256,unroll=4", &a);
    mf_spec_parse("silu_mul:unroll=4,block=256", &b);
    mf_spec_parse("silu_mul:unroll=2,block=256", &c);
    mf_spec_entry_name(&a, ea, sizeof ea);
    mf_spec_entry_name(&b, eb, sizeof eb);
    mf_spec_entry_name(&c, ec, sizeof ec);
    cr_assert_str_eq(ea, eb);
    cr_assert_str_neq(ea, ec);
    cr_assert(strncmp(ea, "mf_silu_mul_", 12) == 0, "%s", ea);
    for (const char *p = ea; *p; p++)
        cr_assert(strchr("abcdefghijklmnopqrstuvwxyz0123456789_", *p), "bad char in %s", ea);
}

Test(spec, set_replaces_and_get_reads)
{
    mf_spec s;
    mf_spec_parse("gemm:bm=64", &s);
    cr_assert_eq(mf_spec_set_int(&s, "bm", 128), MF_OK);
    cr_assert_eq(mf_spec_set(&s, "arch", "sm_90a"), MF_OK);
    cr_assert_str_eq(mf_spec_get(&s, "bm"), "128");
    cr_assert_null(mf_spec_get(&s, "bn"));
    char out[MF_SPEC_TEXT_MAX];
    mf_spec_format(&s, out, sizeof out);
    cr_assert_str_eq(out, "gemm:arch=sm_90a,bm=128");
}
