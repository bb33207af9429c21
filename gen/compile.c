/* Spec -> rendered source -> NVRTC -> cubin and/or PTX. */
#include "moeforge_gen.h"

#include "arch.h"
#include "error.h"
#include "nvrtc_loader.h"
#include "spec.h"
#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char *last_log;

const char *mf_gen_last_log(void)
{
    return last_log ? last_log : "";
}

static void keep_last_log(const char *log)
{
    free(last_log);
    last_log = strdup(log);
}

mf_status mf_gen_canonical_spec(const char *spec, char *out, size_t size)
{
    if (!spec || !out || size == 0)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gen_canonical_spec: null argument or size 0");
    mf_spec parsed;
    char text[MF_SPEC_TEXT_MAX];
    MF_TRY(mf_spec_parse(spec, &parsed));
    MF_TRY(mf_spec_format(&parsed, text, sizeof text));
    if (strlen(text) >= size)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gen_canonical_spec: %zu bytes needed, %zu given",
                       strlen(text) + 1, size);
    memcpy(out, text, strlen(text) + 1);
    return MF_OK;
}

/* Parses spec, derives canonical text and entry name, renders "<family>.cu". */
static mf_status render_spec(const char *spec, char canonical[MF_SPEC_TEXT_MAX],
                             char entry[MF_ENTRY_MAX], char **source, size_t *size)
{
    mf_spec parsed;
    MF_TRY(mf_spec_parse(spec, &parsed));
    MF_TRY(mf_spec_format(&parsed, canonical, MF_SPEC_TEXT_MAX));
    MF_TRY(mf_spec_entry_name(&parsed, entry, MF_ENTRY_MAX));
    if (mf_spec_get(&parsed, "entry"))
        return MF_FAIL(MF_ERR_SPEC, "spec '%s': 'entry' is reserved", canonical);
    MF_TRY(mf_spec_set(&parsed, "entry", entry));
    char name[MF_SPEC_KEY_MAX + 8];
    snprintf(name, sizeof name, "%s.cu", parsed.family);
    return mf_template_render(name, parsed.params, parsed.count, source, size);
}

mf_status mf_gen_render(const char *spec, char **source, size_t *size)
{
    if (!spec || !source)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gen_render: null argument");
    char canonical[MF_SPEC_TEXT_MAX], entry[MF_ENTRY_MAX];
    size_t ignored;
    return render_spec(spec, canonical, entry, source, size ? size : &ignored);
}

mf_status mf_gen_nvrtc_version(int *major, int *minor)
{
    if (!major || !minor)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gen_nvrtc_version: null argument");
    const mf_nvrtc *nv;
    MF_TRY(mf_nvrtc_get(&nv));
    *major = nv->major;
    *minor = nv->minor;
    return MF_OK;
}

mf_status mf_arch_check(const char *arch, char ptx_target[16])
{
    size_t n = arch ? strlen(arch) : 0, digits = 0;
    while (n > 3 && 3 + digits < n && arch[3 + digits] >= '0' && arch[3 + digits] <= '9')
        digits++;
    int tail_ok = 3 + digits == n || (3 + digits + 1 == n && arch[n - 1] == 'a');
    if (n < 5 || n > 8 || strncmp(arch, "sm_", 3) != 0 || digits < 2 || !tail_ok)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "arch '%s' is not of the form sm_90a / sm_80",
                       arch ? arch : "(null)");
    snprintf(ptx_target, 16, "compute_%s", arch + 3);
    return MF_OK;
}

int mf_arch_cc(const char *arch)
{
    return arch && strncmp(arch, "sm_", 3) == 0 ? atoi(arch + 3) : 0;
}

/* Options in canonical (sorted) order: they are part of the cache key.
 * `common` receives every option but the target. */
static int build_options(const char *target, char arch_opt[48], const char *opts[3], char *common,
                         size_t size)
{
    snprintf(arch_opt, 48, "--gpu-architecture=%s", target);
    opts[0] = arch_opt;
    opts[1] = "--std=c++17";
    opts[2] = "-lineinfo";
    snprintf(common, size, "%s %s", opts[1], opts[2]);
    return 3;
}

static char *program_log(const mf_nvrtc *nv, nvrtcProgram prog)
{
    size_t size = 0;
    nv->nvrtcGetProgramLogSize(prog, &size);
    char *log = calloc(1, size + 1);
    if (log && size)
        nv->nvrtcGetProgramLog(prog, log);
    return log;
}

/* Copies the program's PTX or cubin out of NVRTC. */
static mf_status fetch_output(const mf_nvrtc *nv, nvrtcProgram prog, int want_ptx,
                              void **data, size_t *size)
{
    nvrtcResult r = want_ptx ? nv->nvrtcGetPTXSize(prog, size) : nv->nvrtcGetCUBINSize(prog, size);
    if (r == NVRTC_SUCCESS && !(*data = malloc(*size)))
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no host memory for %zu-byte output", *size);
    if (r == NVRTC_SUCCESS)
        r = want_ptx ? nv->nvrtcGetPTX(prog, *data) : nv->nvrtcGetCUBIN(prog, *data);
    if (r != NVRTC_SUCCESS)
        return MF_FAIL(MF_ERR_COMPILE, "reading NVRTC output: %s", nv->nvrtcGetErrorString(r));
    return MF_OK;
}

/* One NVRTC program for one target (a real arch gives cubin, a virtual one PTX). */
static mf_status compile_for_target(mf_kernel_binary *b, const char *source, const char *target,
                                    int want_ptx)
{
    const mf_nvrtc *nv;
    MF_TRY(mf_nvrtc_get(&nv));
    b->nvrtc_major = nv->major;
    b->nvrtc_minor = nv->minor;
    const char *opts[3];
    char arch_opt[48];
    int nopts = build_options(target, arch_opt, opts, b->options, sizeof b->options);
    char name[MF_SPEC_KEY_MAX + 8];
    snprintf(name, sizeof name, "%.*s.cu", (int)strcspn(b->spec, ":"), b->spec);
    nvrtcProgram prog;
    nvrtcResult r = nv->nvrtcCreateProgram(&prog, source, name, 0, NULL, NULL);
    if (r != NVRTC_SUCCESS)
        return MF_FAIL(MF_ERR_COMPILE, "nvrtcCreateProgram(%s): %s", b->spec,
                       nv->nvrtcGetErrorString(r));
    r = nv->nvrtcCompileProgram(prog, nopts, opts);
    char *log = program_log(nv, prog);
    mf_status s = MF_OK;
    if (r != NVRTC_SUCCESS) {
        keep_last_log(log ? log : "");
        s = MF_FAIL(MF_ERR_COMPILE, "compiling %s for %s: %s\n%.1500s", b->spec, target,
                    nv->nvrtcGetErrorString(r), log ? log : "");
    } else {
        void *data = NULL;
        size_t size = 0;
        s = fetch_output(nv, prog, want_ptx, &data, &size);
        if (want_ptx) {
            b->ptx = data;
            b->ptx_size = size;
        } else {
            b->cubin = data;
            b->cubin_size = size;
        }
    }
    if (log && !b->log)
        b->log = log;
    else
        free(log);
    nv->nvrtcDestroyProgram(&prog);
    return s;
}

mf_status mf_gen_compile(const char *spec, const char *arch, unsigned emit, mf_kernel_binary **out)
{
    if (!spec || !out || !(emit & (MF_EMIT_CUBIN | MF_EMIT_PTX)))
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_gen_compile: null argument or nothing to emit");
    mf_kernel_binary *b = calloc(1, sizeof *b);
    if (!b)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "mf_gen_compile: no host memory");
    char *source = NULL;
    size_t size;
    mf_status s = mf_arch_check(arch, b->ptx_target);
    if (s == MF_OK) {
        snprintf(b->arch, sizeof b->arch, "%s", arch);
        s = render_spec(spec, b->spec, b->entry, &source, &size);
    }
    if (s == MF_OK && (emit & MF_EMIT_CUBIN))
        s = compile_for_target(b, source, b->arch, 0);
    if (s == MF_OK && (emit & MF_EMIT_PTX))
        s = compile_for_target(b, source, b->ptx_target, 1);
    free(source);
    if (s != MF_OK) {
        mf_kernel_binary_free(b);
        return s;
    }
    mf_log(MF_LOG_DEBUG, "compiled %s for %s (cubin %zu B, PTX %zu B)", b->spec, arch,
           b->cubin_size, b->ptx_size);
    *out = b;
    return MF_OK;
}

void mf_kernel_binary_free(mf_kernel_binary *b)
{
    if (!b)
        return;
    free(b->cubin);
    free(b->ptx);
    free(b->log);
    free(b);
}
