/* moeforge: the command-line front of the generator and runtime.
 * Exit codes: 0 success, 1 the operation failed (message on stderr), 2 usage error. */
#include "archive.h"
#include "kernels.h"
#include "moeforge_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed(const char *what)
{
    fprintf(stderr, "moeforge: %s: %s\n", what, mf_last_error());
    return 1;
}

static int usage(FILE *to, int code)
{
    fprintf(to,
            "usage: moeforge COMMAND [ARGS]\n\n"
            "  render SPEC                      print the CUDA C source a spec renders to\n"
            "  compile [--arch A] [--ptx] [--out DIR] SPEC...\n"
            "                                   compile with NVRTC (default arch sm_90a); with\n"
            "                                   --out write <entry>.cubin (and .ptx) into DIR\n"
            "  list [ARCHIVE]                   kernels in an archive (default: the built-in set)\n"
            "  device                           the CUDA device, or why there is none\n"
            "  version                          library, generator and NVRTC versions\n\n"
            "SPEC is \"family:key=value,...\", e.g. silu_mul:block=256,dtype=bf16,layout=masked,unroll=4\n"
            "Exit codes: 0 success, 1 failure (reason on stderr), 2 usage error.\n"
            "Environment: MOEFORGE_LOG=error|warn|info|debug, MOEFORGE_TEMPLATE_DIR, MOEFORGE_NVRTC.\n");
    return code;
}

static int cmd_render(int argc, char **argv)
{
    if (argc != 1)
        return usage(stderr, 2);
    char *source;
    if (mf_gen_render(argv[0], &source, NULL) != MF_OK)
        return failed("render");
    fputs(source, stdout);
    free(source);
    return 0;
}

static int write_file(const char *dir, const char *name, const char *ext, const void *data,
                      size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, size, f) == size;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        perror(path);
    return ok ? 0 : 1;
}

static int compile_and_report(const char *spec, const char *arch, int ptx, const char *out_dir)
{
    mf_kernel_binary *b;
    if (mf_gen_compile_isolated(spec, arch, MF_EMIT_CUBIN | (ptx ? MF_EMIT_PTX : 0), &b) != MF_OK)
        return failed(spec);
    printf("%-64s %-7s cubin %7zu B", b->spec, b->arch, b->cubin_size);
    if (ptx)
        printf("  PTX %7zu B", b->ptx_size);
    printf("  %s\n", b->entry);
    int rc = 0;
    if (out_dir)
        rc = write_file(out_dir, b->entry, "cubin", b->cubin, b->cubin_size) ||
             (ptx && write_file(out_dir, b->entry, "ptx", b->ptx, b->ptx_size - 1));
    mf_kernel_binary_free(b);
    return rc;
}

static int cmd_compile(int argc, char **argv)
{
    const char *arch = "sm_90a", *out_dir = NULL;
    int ptx = 0, i = 0, rc = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--ptx") == 0)
            ptx = 1;
        else if (strcmp(argv[i], "--arch") == 0 && i + 1 < argc)
            arch = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_dir = argv[++i];
        else
            return usage(stderr, 2);
    }
    if (i == argc)
        return usage(stderr, 2);
    for (; i < argc; i++)
        rc |= compile_and_report(argv[i], arch, ptx, out_dir);
    return rc;
}

static int cmd_list(int argc, char **argv)
{
    if (argc > 1)
        return usage(stderr, 2);
    mf_archive *opened = NULL;
    const mf_archive *a = mf_builtin_archive();
    if (argc == 1 && mf_archive_open_file(argv[0], &opened) != MF_OK)
        return failed(argv[0]);
    if (opened)
        a = opened;
    if (!a)
        return failed("built-in kernel set");
    size_t total = 0;
    for (size_t i = 0; i < mf_archive_count(a); i++) {
        mf_archive_entry e;
        if (mf_archive_entry_at(a, i, &e) != MF_OK)
            return failed("archive entry");
        printf("%-64s %-12s %-5s %8zu B  %s\n", e.spec, e.target, e.is_ptx ? "PTX" : "cubin",
               e.size, e.entry);
        total += e.size;
    }
    printf("%zu entries, %zu bytes, generator %s\n", mf_archive_count(a), total,
           mf_archive_generator_version(a));
    mf_archive_close(opened);
    return 0;
}

static int cmd_device(void)
{
    mf_context *ctx;
    if (mf_context_create(0, &ctx) != MF_OK)
        return failed("device 0");
    mf_device_info info;
    mf_context_info(ctx, &info);
    printf("device %d: %s, %s (cc %d.%d), %d SMs, %d KiB L2, %d KiB shared memory per block, "
           "driver %d\n", info.ordinal, info.name, info.arch, info.cc_major, info.cc_minor,
           info.sm_count, info.l2_bytes / 1024, info.max_smem_per_block_optin / 1024,
           info.driver_version);
    mf_context_destroy(ctx);
    return 0;
}

static int cmd_version(void)
{
    int major, minor;
    printf("moeforge %s (generator %s)\n", mf_version(), MOEFORGE_GENERATOR_VERSION);
    if (mf_gen_nvrtc_version(&major, &minor) == MF_OK)
        printf("NVRTC %d.%d\n", major, minor);
    else
        printf("NVRTC unavailable: %s\n", mf_last_error());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, 2);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return usage(stdout, 0);
    if (argc > 2 && strcmp(argv[2], "--help") == 0)
        return usage(stdout, 0);
    if (strcmp(cmd, "render") == 0)
        return cmd_render(argc - 2, argv + 2);
    if (strcmp(cmd, "compile") == 0)
        return cmd_compile(argc - 2, argv + 2);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(argc - 2, argv + 2);
    if (strcmp(cmd, "device") == 0 && argc == 2)
        return cmd_device();
    if (strcmp(cmd, "version") == 0 && argc == 2)
        return cmd_version();
    return usage(stderr, 2);
}
