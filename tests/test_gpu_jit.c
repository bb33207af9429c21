/* GPU suite: the lookup chain on a device: built-in set, a missing kernel with
 * and without JIT, archives refused or served. */
#include "gpu_support.h"
#include "moeforge_gen.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* block=128, unroll=2 is not in the built-in set. */
static const char *not_builtin = "silu_mul:block=128,dtype=bf16,layout=masked,unroll=2";

Test(gpu_jit, builtin_kernels_load_without_jit)
{
    mf_context *ctx = gpu_context_or_skip();
    MF_OK_OR_FAIL(mf_kernel_prepare(ctx, "silu_mul:unroll=4,layout=masked,dtype=bf16,block=256"));
    mf_context_destroy(ctx);
}

Test(gpu_jit, missing_kernel_without_jit_names_the_spec)
{
    mf_context *ctx = gpu_context_or_skip();
    cr_assert_eq(mf_kernel_prepare(ctx, not_builtin), MF_ERR_KERNEL_NOT_FOUND);
    cr_assert(strstr(mf_last_error(), not_builtin), "%s", mf_last_error());
    mf_context_destroy(ctx);
}

Test(gpu_jit, jit_compiles_loads_and_runs_a_missing_kernel)
{
    mf_context *ctx = gpu_context_or_skip();
    MF_OK_OR_FAIL(mf_jit_enable(ctx));
    MF_OK_OR_FAIL(mf_kernel_prepare(ctx, not_builtin));
    MF_OK_OR_FAIL(mf_kernel_prepare(ctx, not_builtin)); /* second time: a table hit */
    cr_assert_eq(mf_kernel_prepare(ctx, "nosuchfamily:x=1"), MF_ERR_TEMPLATE, "%s",
                 mf_last_error());
    mf_context_destroy(ctx);
}

Test(gpu_jit, archive_for_this_device_opens_and_garbage_is_refused)
{
    mf_context *ctx = gpu_context_or_skip();
    const char *archive = getenv("MF_BUILTIN_ARCHIVE");
    if (archive)
        MF_OK_OR_FAIL(mf_context_open_archive(ctx, archive));
    char dir[] = "/tmp/mf_archives_XXXXXX", path[64];
    cr_assert(mkdtemp(dir)); /* private (0700): a trusted folder */
    snprintf(path, sizeof path, "%s/garbage.mfa", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("not an archive at all, just text", f);
    fclose(f);
    chmod(path, 0644);
    cr_assert_eq(mf_context_open_archive(ctx, path), MF_ERR_ARCHIVE, "%s", mf_last_error());
    chmod(path, 0666); /* writable by others: refused before it is read */
    cr_assert_eq(mf_context_open_archive(ctx, path), MF_ERR_UNTRUSTED, "%s", mf_last_error());
    unlink(path);
    rmdir(dir);
    mf_context_destroy(ctx);
}
