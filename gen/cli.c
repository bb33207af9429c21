/* moeforge: the command-line front of the generator and runtime. Commands,
 * their help and the shared option parser; the commands over kernel lists,
 * the cache and archives are in cli_kernels.c. */
#include "cli.h"

#include "cache.h"
#include "moeforge_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis; /* one line of the overview */
    const char *help;     /* COMMAND --help */
} command;

static int cmd_render(int argc, char **argv);
static int cmd_compile(int argc, char **argv);
static int cmd_device(int argc, char **argv);
static int cmd_version(int argc, char **argv);

#define KERNEL_SOURCES                                                                      \
    "Kernels: SPEC... (\"family:key=value,...\"), --model FILE (a model description, see\n" \
    "README) or --preset NAME (`moeforge list --presets`): every kernel its forward passes\n" \
    "launch over its token range.\n"

static const command commands[] = {
    {"render", cmd_render, "render SPEC", "usage: moeforge render SPEC\n\n"
     "Prints the CUDA C source SPEC renders to, with #line directives naming the templates.\n"},
    {"compile", cmd_compile, "compile [--arch A] [--ptx] [--out DIR] SPEC...",
     "usage: moeforge compile [--arch A] [--ptx] [--out DIR] SPEC...\n\n"
     "Compiles each SPEC with NVRTC, in a child process, and prints its sizes and entry point.\n"
     "  --arch A    target GPU architecture (default sm_90a)\n"
     "  --ptx       also emit PTX for the matching virtual architecture\n"
     "  --out DIR   write <entry>.cubin (and <entry>.ptx) into DIR\n"
     "The cache is not used: this is for looking at compiler output.\n"},
    {"warmup", cli_warmup,
     "warmup [--arch A]... [--ptx] [--threads N] (SPEC... | --model F | --preset P)",
     "usage: moeforge warmup [options] (SPEC... | --model FILE | --preset NAME)\n\n"
     "Compiles every kernel missing from the cache, with one thread per core, so that\n"
     "programs using the cache start without compiling.\n"
     "  --arch A            target architecture, may repeat (default sm_90a)\n"
     "  --ptx               also cache PTX (compute_XY) for each architecture\n"
     "  --threads N         compiler threads (default: one per online core)\n"
     "  --include-builtin   also cache kernels the runtime library has built in\n"
     "  --quiet             no progress line (it is shown only on a terminal anyway)\n"
     KERNEL_SOURCES
     "Cache: $MOEFORGE_CACHE_DIR, else $XDG_CACHE_HOME/moeforge, else ~/.cache/moeforge;\n"
     "bounded by $MOEFORGE_CACHE_MAX_BYTES (default 4G). Exit 3 when some kernels failed.\n"},
    {"pack", cli_pack,
     "pack [--arch A]... [--no-ptx] OUT.mfa (SPEC... | --model F | --preset P | --from-cache)",
     "usage: moeforge pack [options] OUT.mfa (SPEC... | --model FILE | --preset NAME |\n"
     "                                        --from-cache)\n\n"
     "Writes one deployment archive (index, cubins and PTX, versioned and checksummed) that\n"
     "the runtime serves with mf_context_open_archive, with no Lua and no NVRTC. Kernels are\n"
     "compiled through the cache first.\n"
     "  --arch A        target architecture, may repeat (default sm_90a)\n"
     "  --no-ptx        cubins only (PTX lets newer GPUs of the family run the archive)\n"
     "  --threads N     compiler threads (default: one per online core)\n"
     "  --from-cache    every kernel of the cache, as it is (nothing compiled)\n"
     KERNEL_SOURCES
     "Nothing is written when a kernel fails (exit 3).\n"},
    {"list", cli_list,
     "list [ARCHIVE | --cache | --presets | --model F | --preset P]",
     "usage: moeforge list [ARCHIVE | --cache | --presets | --model FILE | --preset NAME]\n\n"
     "  (nothing)       kernels of the runtime's built-in set\n"
     "  ARCHIVE         kernels of a kernel archive\n"
     "  --cache         kernels of the cache, with sizes and last use\n"
     "  --presets       the model presets\n"
     "  --model FILE, --preset NAME\n"
     "                  the distinct kernel specs of a model, one per line\n"},
    {"clear", cli_clear, "clear [--cache]",
     "usage: moeforge clear [--cache]\n\n"
     "Removes every entry of the cache directory.\n"},
    {"device", cmd_device, "device", "usage: moeforge device\n\n"
     "Describes CUDA device 0, or says why there is none.\n"},
    {"version", cmd_version, "version", "usage: moeforge version\n\n"
     "Library, generator and NVRTC versions, and the cache directory.\n"},
};
static const size_t command_count = sizeof commands / sizeof commands[0];

static int overview(FILE *to, int code)
{
    fprintf(to, "usage: moeforge COMMAND [ARGS]     (moeforge COMMAND --help for details)\n\n");
    for (size_t i = 0; i < command_count; i++)
        fprintf(to, "  %s\n", commands[i].synopsis);
    fprintf(to, "\nSPEC is \"family:key=value,...\", e.g. "
                "silu_mul:block=256,dtype=bf16,layout=masked,unroll=4\n"
                "Exit codes: 0 success, 1 failure (reason on stderr), 2 usage error,\n"
                "3 warmup or pack: some kernels failed (each listed on stderr).\n"
                "Environment: MOEFORGE_LOG=error|warn|info|debug, MOEFORGE_CACHE=off,\n"
                "MOEFORGE_CACHE_DIR, MOEFORGE_CACHE_MAX_BYTES, MOEFORGE_TEMPLATE_DIR, "
                "MOEFORGE_NVRTC.\n");
    return code;
}

int cli_failed(const char *what)
{
    fprintf(stderr, "moeforge: %s: %s\n", what, mf_last_error());
    return CLI_FAILED;
}

int cli_usage_error(const char *command, const char *message)
{
    fprintf(stderr, "moeforge %s: %s (see moeforge %s --help)\n", command, message, command);
    return CLI_USAGE;
}

/* ---- option parsing --------------------------------------------------------------- */

static int allows(const char *allowed, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(allowed, name); p; p = strstr(p + 1, name))
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

static int parse_threads(const char *text, int *out)
{
    char *end;
    long n = strtol(text, &end, 10);
    if (*text == '\0' || *end || n < 1 || n > 4096)
        return 0;
    *out = (int)n;
    return 1;
}

/* One option at argv[*i]; takes its value from argv[*i + 1] when it has one. */
static int parse_option(int argc, char **argv, int *i, cli_args *a)
{
    const char *name = argv[*i] + 2, *value = *i + 1 < argc ? argv[*i + 1] : NULL;
    int *flags[] = {&a->ptx, &a->no_ptx, &a->include_builtin, &a->quiet, &a->cache, &a->presets,
                    &a->from_cache};
    const char *flag_names[] = {"ptx", "no-ptx", "include-builtin", "quiet", "cache", "presets",
                                "from-cache"};
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
        if (strcmp(name, flag_names[k]) == 0)
            return *flags[k] = 1;
    if (!value)
        return 0;
    ++*i;
    if (strcmp(name, "arch") == 0 && a->arch_count < CLI_MAX_ARCHS)
        return (a->archs[a->arch_count++] = value) != NULL;
    if (strcmp(name, "threads") == 0)
        return parse_threads(value, &a->threads);
    const char **texts[] = {&a->model, &a->preset, &a->out_dir};
    const char *text_names[] = {"model", "preset", "out"};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
        if (strcmp(name, text_names[k]) == 0)
            return (*texts[k] = value) != NULL;
    return 0;
}

int cli_parse(const char *command, int argc, char **argv, const char *allowed, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->positional = calloc((size_t)argc + 1, sizeof *a->positional);
    if (!a->positional) {
        fprintf(stderr, "moeforge %s: out of memory\n", command);
        return CLI_FAILED;
    }
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) {
            a->positional[a->positional_count++] = argv[i];
            continue;
        }
        char message[160];
        snprintf(message, sizeof message, "bad option %s", argv[i]);
        if (!allows(allowed, argv[i] + 2) || !parse_option(argc, argv, &i, a))
            return cli_usage_error(command, message);
    }
    if (a->arch_count == 0)
        a->archs[a->arch_count++] = "sm_90a";
    return CLI_OK;
}

/* ---- render, compile, device, version ---------------------------------------------- */

static int cmd_render(int argc, char **argv)
{
    if (argc != 1)
        return cli_usage_error("render", "one SPEC expected");
    char *source;
    if (mf_gen_render(argv[0], &source, NULL) != MF_OK)
        return cli_failed("render");
    fputs(source, stdout);
    free(source);
    return CLI_OK;
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
    return ok ? CLI_OK : CLI_FAILED;
}

static int compile_and_report(const char *spec, const char *arch, int ptx, const char *out_dir)
{
    mf_kernel_binary *b;
    if (mf_gen_compile_isolated(spec, arch, MF_EMIT_CUBIN | (ptx ? MF_EMIT_PTX : 0), &b) != MF_OK)
        return cli_failed(spec);
    printf("%-64s %-7s cubin %7zu B", b->spec, b->arch, b->cubin_size);
    if (ptx)
        printf("  PTX %7zu B", b->ptx_size);
    printf("  %s\n", b->entry);
    int rc = CLI_OK;
    if (out_dir)
        rc = write_file(out_dir, b->entry, "cubin", b->cubin, b->cubin_size) ||
             (ptx && write_file(out_dir, b->entry, "ptx", b->ptx, b->ptx_size - 1));
    mf_kernel_binary_free(b);
    return rc ? CLI_FAILED : CLI_OK;
}

static int cmd_compile(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("compile", argc, argv, "arch ptx out", &a);
    if (rc == CLI_OK && (a.positional_count == 0 || a.arch_count > 1))
        rc = cli_usage_error("compile", "one --arch and at least one SPEC expected");
    for (int i = 0; rc != CLI_USAGE && i < a.positional_count; i++)
        rc |= compile_and_report(a.positional[i], a.archs[0], a.ptx, a.out_dir);
    free(a.positional);
    return rc;
}

static int cmd_device(int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return cli_usage_error("device", "no arguments expected");
    mf_context *ctx;
    if (mf_context_create(0, &ctx) != MF_OK)
        return cli_failed("device 0");
    mf_device_info info;
    mf_context_info(ctx, &info);
    printf("device %d: %s, %s (cc %d.%d), %d SMs, %d KiB L2, %d KiB shared memory per block, "
           "driver %d\n", info.ordinal, info.name, info.arch, info.cc_major, info.cc_minor,
           info.sm_count, info.l2_bytes / 1024, info.max_smem_per_block_optin / 1024,
           info.driver_version);
    mf_context_destroy(ctx);
    return CLI_OK;
}

static int cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return cli_usage_error("version", "no arguments expected");
    const char *nvrtc;
    char dir[4096];
    printf("moeforge %s (generator %s, cache format %d)\n", mf_version(),
           MOEFORGE_GENERATOR_VERSION, MF_CACHE_FORMAT_VERSION);
    if (mf_cache_nvrtc_identity(&nvrtc) == MF_OK)
        printf("NVRTC %s\n", nvrtc);
    else
        printf("NVRTC unavailable: %s\n", mf_last_error());
    if (!mf_disk_cache_enabled())
        printf("cache: off (MOEFORGE_CACHE)\n");
    else if (mf_disk_cache_default_dir(dir, sizeof dir) == MF_OK)
        printf("cache: %s\n", dir);
    else
        printf("cache: none (%s)\n", mf_last_error());
    return CLI_OK;
}

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < command_count; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return overview(stderr, CLI_USAGE);
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        const command *c = argc > 2 ? find_command(argv[2]) : NULL;
        return c ? (fputs(c->help, stdout), CLI_OK) : overview(stdout, CLI_OK);
    }
    const command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "moeforge: unknown command '%s'\n\n", name);
        return overview(stderr, CLI_USAGE);
    }
    if (wants_help(argc - 2, argv + 2)) {
        fputs(c->help, stdout);
        return CLI_OK;
    }
    return c->run(argc - 2, argv + 2);
}
