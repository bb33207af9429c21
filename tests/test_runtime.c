/* CPU suite: the runtime on a machine without a GPU, argument validation before
 * any device work, status strings, and the built-in kernel set. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "kernels.h"
#include "moeforge.h"

Test(runtime, no_driver_or_device_gives_a_status_not_a_crash)
{
    int count = -1;
    mf_status s = mf_device_count(&count);
    if (s == MF_OK && count > 0)
        cr_skip_test("a GPU is present: %d device(s)", count);
    mf_context *ctx = (mf_context *)0x1;
    mf_status c = mf_context_create(0, &ctx);
    cr_assert(c == MF_ERR_NO_DRIVER || c == MF_ERR_NO_DEVICE, "got %s", mf_status_string(c));
    cr_assert_null(ctx);
    cr_assert_neq(strlen(mf_last_error()), 0);
    if (c == MF_ERR_NO_DRIVER)
        cr_assert(strstr(mf_last_error(), "libcuda.so.1"), "%s", mf_last_error());
    /* the answer is stable across calls */
    cr_assert_eq(mf_context_create(0, &ctx), c);
}

Test(runtime, null_arguments_refused)
{
    cr_assert_eq(mf_device_count(NULL), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_context_create(0, NULL), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_context_info(NULL, NULL), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_kernel_prepare(NULL, "silu_mul"), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_context_open_archive(NULL, "x"), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_context_set_provider(NULL, NULL), MF_ERR_INVALID_ARGUMENT);
    void *p;
    cr_assert_eq(mf_malloc(NULL, &p, 16), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_memset_d8(NULL, NULL, 0, 1), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_timer_create(NULL, NULL), MF_ERR_INVALID_ARGUMENT);
    mf_context_destroy(NULL);
    mf_timer_destroy(NULL);
    mf_free(NULL, NULL);
}

static mf_status silu(mf_silu_mul_args a)
{
    return mf_silu_mul(NULL, &a, NULL);
}

/* Each argument check fires before the context is touched, with its own status. */
Test(runtime, silu_mul_validation_names_the_problem)
{
    static char buf[256] __attribute__((aligned(16)));
    mf_silu_mul_args ok = {.layout = MF_LAYOUT_MASKED, .input = buf, .output = buf + 128,
                           .masked_m = (const int32_t *)buf, .experts = 2, .max_m = 4, .n = 16};
    mf_silu_mul_args a = ok;
    cr_assert_eq(mf_silu_mul(NULL, NULL, NULL), MF_ERR_INVALID_ARGUMENT);
    a.layout = MF_LAYOUT_CONTIGUOUS;
    cr_expect_eq(silu(a), MF_ERR_INVALID_ARGUMENT);
    a = ok, a.input = NULL;
    cr_expect_eq(silu(a), MF_ERR_INVALID_ARGUMENT);
    cr_expect(strstr(mf_last_error(), "NULL"), "%s", mf_last_error());
    a = ok, a.experts = 0;
    cr_expect_eq(silu(a), MF_ERR_INVALID_ARGUMENT);
    cr_expect(strstr(mf_last_error(), "experts = 0"), "%s", mf_last_error());
    a = ok, a.max_m = -1;
    cr_expect_eq(silu(a), MF_ERR_INVALID_ARGUMENT);
    a = ok, a.n = 4;
    cr_expect_eq(silu(a), MF_ERR_INVALID_ARGUMENT);
    a = ok, a.n = 20;
    cr_expect_eq(silu(a), MF_ERR_MISALIGNED);
    cr_expect(strstr(mf_last_error(), "multiple of 8"), "%s", mf_last_error());
    a = ok, a.output = buf + 130;
    cr_expect_eq(silu(a), MF_ERR_MISALIGNED);
    a = ok, a.expected_m = -3;
    cr_expect_eq(silu(a), MF_ERR_INVALID_ARGUMENT);
    a = ok, a.max_m = 1 << 30, a.n = 1 << 30;
    cr_expect_eq(silu(a), MF_ERR_INVALID_ARGUMENT);
    cr_expect_eq(silu(ok), MF_ERR_INVALID_ARGUMENT); /* valid args, NULL context */
    cr_expect(strstr(mf_last_error(), "ctx"), "%s", mf_last_error());
}

Test(runtime, status_strings_distinct_and_named)
{
    for (int i = MF_OK; i <= MF_ERR_UNTRUSTED; i++) {
        const char *a = mf_status_string((mf_status)i);
        cr_assert(a && *a && strcmp(a, "unknown status") != 0, "status %d unnamed", i);
        for (int j = MF_OK; j < i; j++)
            cr_assert_str_neq(a, mf_status_string((mf_status)j));
    }
    cr_assert_str_eq(mf_status_string((mf_status)999), "unknown status");
    cr_assert_str_eq(mf_version(), MOEFORGE_VERSION_STRING);
}

Test(runtime, builtin_set_holds_every_default_spec_as_cubin_and_ptx)
{
    const mf_archive *a = mf_builtin_archive();
    cr_assert_not_null(a, "%s", mf_last_error());
    const char *path = getenv("MF_KERNEL_SET");
    cr_assert(path);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[512];
    int specs = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        mf_archive_entry cubin, ptx;
        cr_expect_eq(mf_archive_find(a, line, "sm_90a", &cubin), MF_OK, "%s: %s", line,
                     mf_last_error());
        cr_expect_eq(mf_archive_find(a, line, "compute_90a", &ptx), MF_OK, "%s: %s", line,
                     mf_last_error());
        specs++;
    }
    fclose(f);
    cr_assert_gt(specs, 0);
    cr_assert_eq(mf_archive_count(a), (size_t)specs * 2);
}

Test(runtime, device_targets_prefer_own_cubin_then_ptx)
{
    mf_device_info hopper = {.cc_major = 9, .cc_minor = 0, .arch = "sm_90a"};
    char t[16][16];
    int n = mf_device_targets(&hopper, t, 16);
    cr_assert_geq(n, 4);
    cr_assert_str_eq(t[0], "sm_90a");
    cr_assert_str_eq(t[1], "sm_90");
    cr_assert_str_eq(t[2], "compute_90a");
    cr_assert_str_eq(t[3], "compute_90");
    mf_device_info ada = {.cc_major = 8, .cc_minor = 9, .arch = "sm_89"};
    n = mf_device_targets(&ada, t, 16);
    cr_assert_str_eq(t[0], "sm_89");
    cr_assert_str_eq(t[1], "sm_87");
    cr_assert_str_eq(t[4], "compute_89");
    cr_assert_eq(n, 9);
}
