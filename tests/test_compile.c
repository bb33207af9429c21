/* CPU suite: every spec of the build-time kernel set compiles with NVRTC, and
 * template and compiler errors point at the template file and line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_support.h"
#include "moeforge_gen.h"

/* Specs of the kernel set file named by $MF_KERNEL_SET (set by meson). */
static int read_kernel_set(char specs[][256], int max)
{
    const char *path = getenv("MF_KERNEL_SET");
    cr_assert(path, "MF_KERNEL_SET not set");
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] && line[0] != '#')
            snprintf(specs[n++], 256, "%.255s", line);
    }
    fclose(f);
    return n;
}

/* The launch contract of runtime/kernels.h: from sm_90 on, every kernel waits
 * for the previous grid before it lets the next one start; before, neither. */
static void check_grid_dependency(const char *spec, const char *arch, const char *ptx)
{
    const char *wait = strstr(ptx, "griddepcontrol.wait;");
    const char *start = strstr(ptx, "griddepcontrol.launch_dependents;");
    if (atoi(arch + 3) < 90) {
        cr_expect(!wait && !start, "PTX of %s for %s uses griddepcontrol", spec, arch);
        return;
    }
    cr_expect(wait, "PTX of %s for %s lacks griddepcontrol.wait", spec, arch);
    cr_expect(start && start > wait, "PTX of %s for %s: launch_dependents missing or before the "
              "wait", spec, arch);
}

static void compile_every_spec_for(const char *arch)
{
    char specs[256][256];
    int n = read_kernel_set(specs, 256);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(arch, "sm_89") < 0 && strstr(specs[i], "e4m3"))
            continue; /* the e4m3 conversions need sm_89 or later */
        mf_kernel_binary *b;
        mf_status s = mf_gen_compile(specs[i], arch, MF_EMIT_CUBIN | MF_EMIT_PTX, &b);
        cr_assert_eq(s, MF_OK, "%s for %s: %s\n%s", specs[i], arch, mf_last_error(),
                     mf_gen_last_log());
        cr_expect_gt(b->cubin_size, 1000);
        cr_expect(strstr(b->ptx, b->entry), "PTX of %s lacks entry %s", specs[i], b->entry);
        cr_expect(memcmp(b->cubin, "\177ELF", 4) == 0, "cubin of %s is not ELF", specs[i]);
        check_grid_dependency(specs[i], arch, b->ptx);
        mf_kernel_binary_free(b);
    }
}

Test(compile, default_set_compiles_for_sm_90a, .timeout = 600)
{
    compile_every_spec_for("sm_90a");
}

Test(compile, default_set_compiles_for_sm_80, .timeout = 600)
{
    compile_every_spec_for("sm_80");
}

/* e4m3 preprocess stores what must outlive the streaming row stores in L2
 * with an evict_last policy: the one-launch path its scattered scales (62% ->
 * 68% of the copy rate, examples/NOTES.md), the chunked scatter the token
 * scales and row tokens the scales stage reads back. bf16 has none. */
Test(compile, preprocess_e4m3_stores_that_must_stay_in_l2_say_so)
{
    static const struct { const char *spec; int hinted; } cases[] = {
        {"preprocess:block=256,dtype=e4m3,layout=masked,stage=fused,ue8m0=0", 1},
        {"preprocess:block=256,dtype=e4m3,layout=contiguous,stage=fused,ue8m0=1", 1},
        {"preprocess:block=256,dtype=e4m3,layout=masked,stage=scatter,ue8m0=0", 1},
        {"preprocess:block=256,dtype=bf16,layout=masked,stage=fused,ue8m0=0", 0},
        {"preprocess:block=256,dtype=bf16,layout=contiguous,stage=scatter,ue8m0=0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mf_kernel_binary *b;
        cr_assert_eq(mf_gen_compile(cases[i].spec, "sm_90a", MF_EMIT_PTX, &b), MF_OK,
                     "%s: %s\n%s", cases[i].spec, mf_last_error(), mf_gen_last_log());
        int hinted = cases[i].hinted;
        cr_expect_eq(strstr(b->ptx, "createpolicy.fractional.L2::evict_last") != NULL, hinted,
                     "PTX of %s: evict_last policy %s", cases[i].spec,
                     hinted ? "missing" : "present");
        cr_expect_eq(strstr(b->ptx, "st.global.L2::cache_hint.b32") != NULL, hinted,
                     "PTX of %s: hinted store %s", cases[i].spec,
                     hinted ? "missing" : "present");
        mf_kernel_binary_free(b);
    }
}

/* The Hopper GEMM family is built on the instructions its name promises:
 * TMA bulk tensor copies (loads and the epilogue's stores), mbarriers,
 * wgmma and register rebalancing, in the PTX of both dtypes and layouts, and
 * TMA multicast in clusters of two. */
Test(compile, sm90_gemm_ptx_uses_tma_and_wgmma)
{
    static const char *specs[] = {
        "gemm_sm90:bm=128,bn=256,cluster=1,dtype=bf16,layout=masked,stages=3,wg=2",
        "gemm_sm90:bm=128,bn=128,cluster=2,dtype=e4m3,layout=contiguous,stages=5,wg=2",
    };
    static const char *needles[] = {
        "wgmma.mma_async.sync.aligned.m64n", "cp.async.bulk.tensor.2d.shared::cluster.global",
        "cp.async.bulk.tensor.2d.global.shared::cta", "mbarrier.try_wait.parity",
        "setmaxnreg.inc.sync.aligned", "setmaxnreg.dec.sync.aligned",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        mf_kernel_binary *b;
        cr_assert_eq(mf_gen_compile(specs[i], "sm_90a", MF_EMIT_PTX, &b), MF_OK, "%s: %s\n%s",
                     specs[i], mf_last_error(), mf_gen_last_log());
        for (size_t j = 0; j < sizeof needles / sizeof needles[0]; j++)
            cr_expect(strstr(b->ptx, needles[j]), "PTX of %s lacks %s", specs[i], needles[j]);
        cr_expect(strstr(b->ptx, i ? ".e4m3.e4m3" : ".bf16.bf16"), "PTX of %s: wrong wgmma type",
                  specs[i]);
        /* cluster=2: A multicast to both CTAs, stages freed in both. */
        int clustered = strstr(specs[i], "cluster=2") != NULL;
        cr_expect_eq(strstr(b->ptx, ".multicast::cluster") != NULL, clustered,
                     "PTX of %s: TMA multicast %s", specs[i], clustered ? "missing" : "unexpected");
        cr_expect_eq(strstr(b->ptx, "mapa.shared::cluster") != NULL, clustered,
                     "PTX of %s: remote barrier arrive %s", specs[i],
                     clustered ? "missing" : "unexpected");
        mf_kernel_binary_free(b);
    }
}

/* Writes one template into a fresh MOEFORGE_TEMPLATE_DIR. */
static void use_template_dir_with(const char *name, const char *text)
{
    static char dir[] = "/tmp/mf_tpl_XXXXXX";
    if (!getenv("MOEFORGE_TEMPLATE_DIR") || strcmp(getenv("MOEFORGE_TEMPLATE_DIR"), dir) != 0) {
        cr_assert(mkdtemp(dir));
        setenv("MOEFORGE_TEMPLATE_DIR", dir, 1);
    }
    write_test_file(dir, name, text);
}

Test(compile, nvrtc_error_points_at_template_line)
{
    use_template_dir_with("broken.cu",
                          "$ -- line 1\n"
                          "$ local n = 4\n"
                          "extern \"C\" __global__ void $(entry)(float *x)\n"
                          "{\n"
                          "$ for i = 1, n do\n"
                          "    x[$(i)] = 1.0f;\n"
                          "$ end\n"
                          "    x[0] = undeclared_name;\n"
                          "}\n");
    mf_kernel_binary *b = NULL;
    cr_assert_eq(mf_gen_compile("broken:v=1", "sm_90a", MF_EMIT_CUBIN, &b), MF_ERR_COMPILE);
    cr_assert_null(b);
    cr_assert(strstr(mf_gen_last_log(), "broken.cu(8)"), "log: %s", mf_gen_last_log());
    cr_assert(strstr(mf_last_error(), "broken.cu(8)"), "error: %s", mf_last_error());
}

Test(compile, template_error_names_file_and_line)
{
    use_template_dir_with("badlua.cu", "// ok\n// ok\n$ local x = nil + 1\n");
    mf_kernel_binary *b = NULL;
    cr_assert_eq(mf_gen_compile("badlua:v=1", "sm_90a", MF_EMIT_CUBIN, &b), MF_ERR_TEMPLATE);
    cr_assert(strstr(mf_last_error(), "badlua.cu:3:"), "error: %s", mf_last_error());
}

Test(compile, isolated_compile_matches_in_process)
{
    const char *spec = "silu_mul:unroll=1,block=256,dtype=bf16,layout=masked";
    mf_kernel_binary *a, *b;
    cr_assert_eq(mf_gen_compile(spec, "sm_90a", MF_EMIT_CUBIN | MF_EMIT_PTX, &a), MF_OK, "%s",
                 mf_last_error());
    cr_assert_eq(mf_gen_compile_isolated(spec, "sm_90a", MF_EMIT_CUBIN | MF_EMIT_PTX, &b), MF_OK,
                 "%s", mf_last_error());
    cr_assert_str_eq(a->spec, "silu_mul:block=256,dtype=bf16,layout=masked,unroll=1");
    cr_assert_str_eq(a->spec, b->spec);
    cr_assert_str_eq(a->entry, b->entry);
    cr_assert_eq(a->cubin_size, b->cubin_size);
    cr_assert(memcmp(a->cubin, b->cubin, a->cubin_size) == 0);
    cr_assert_str_eq(a->ptx, b->ptx);
    mf_kernel_binary_free(a);
    mf_kernel_binary_free(b);
}

Test(compile, isolated_compile_reports_failures_from_the_child)
{
    use_template_dir_with("broken2.cu", "extern \"C\" __global__ void $(entry)() { nope; }\n");
    mf_kernel_binary *b = NULL;
    cr_assert_eq(mf_gen_compile_isolated("broken2:v=1", "sm_90a", MF_EMIT_CUBIN, &b),
                 MF_ERR_COMPILE);
    cr_assert(strstr(mf_last_error(), "broken2.cu(1)"), "error: %s", mf_last_error());
}

Test(compile, bad_arch_refused)
{
    mf_kernel_binary *b = NULL;
    const char *bad[] = {"sm90", "sm_", "compute_90", "sm_9x", "sm_90ab", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(mf_gen_compile("silu_mul:block=256,dtype=bf16,layout=masked,unroll=1", bad[i],
                                    MF_EMIT_CUBIN, &b),
                     MF_ERR_INVALID_ARGUMENT, "arch '%s' accepted", bad[i]);
}

Test(compile, rendered_source_carries_line_directives)
{
    char *src;
    cr_assert_eq(mf_gen_render("silu_mul:block=128,dtype=bf16,layout=masked,unroll=2", &src, NULL),
                 MF_OK, "%s", mf_last_error());
    cr_assert(strstr(src, "#line"), "no #line in rendered source");
    cr_assert(strstr(src, "\"silu_mul.cu\""), "no #line naming silu_mul.cu");
    cr_assert(strstr(src, "\"common.cuh\""), "no #line naming the included common.cuh");
    cr_assert(strstr(src, "__launch_bounds__(128)"));
    free(src);
}
