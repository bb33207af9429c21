/* CPU suite: one test per row of tests/VALIDATION.md that no other CPU
 * test covers. Each provokes one precondition of a public entry point and checks
 * the exact status, a piece of mf_last_error(), and that no byte of a
 * guard-filled arena changed.
 *
 * Host memory stands in for device memory: every refusal below happens
 * before a pointer is dereferenced or the driver is called. Arguments are
 * checked before the context, so ctx = NULL reaches every argument check.
 * The checks that come after the context (e4m3 on a pre-sm_89 device, tile
 * limits that depend on the chosen config) get a stand-in context: a zeroed
 * struct mf_context whose `info` describes a device. Before refusing, the
 * ops read only `info` (mf_context_open_archive also its archive list and
 * lock), so nothing reaches the driver. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_writer.h"
#include "context.h"
#include "error.h"
#include "moeforge.h"
#include "moeforge_gen.h"

/* ---- guard arena, stand-in pointers, the refusal check --------------------------- */

enum { ARENA_BYTES = 1 << 18, GUARD = 0xA5 };
static unsigned char arena[ARENA_BYTES] __attribute__((aligned(256)));
static unsigned char snapshot[ARENA_BYTES];

/* A stand-in device (or output) pointer at a byte offset of the arena. */
#define AT(offset) ((void *)(arena + (offset)))

static void fill_guard(void)
{
    memset(arena, GUARD, sizeof arena);
    memcpy(snapshot, arena, sizeof arena);
}

/* A private folder (mode 0700) for files a test writes: the archive trust
 * check accepts what is in it. Removed after the test (files first). */
static char tmp_dir[64];

static const char *private_dir(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mf_validation_XXXXXX");
    cr_assert(mkdtemp(tmp_dir), "mkdtemp");
    return tmp_dir;
}

static void remove_dir(void)
{
    if (tmp_dir[0])
        rmdir(tmp_dir);
}

#define VTest(suite, name, ...) \
    Test(suite, name, .init = fill_guard, .fini = remove_dir, ##__VA_ARGS__)

static int arena_unchanged(void)
{
    return memcmp(arena, snapshot, sizeof arena) == 0;
}

static void expect_refused(mf_status got, mf_status want, const char *needle, const char *call)
{
    cr_expect_eq(got, want, "%s: got %s, want %s (%s)", call, mf_status_string(got),
                 mf_status_string(want), mf_last_error());
    cr_expect(strstr(mf_last_error(), needle), "%s: message \"%s\" lacks \"%s\"", call,
              mf_last_error(), needle);
    cr_expect(arena_unchanged(), "%s: a refused call changed a guard byte", call);
}

/* A message no check produces: a stale one from an earlier call cannot pass. */
#define REFUSED(call, want, needle)                                      \
    do {                                                                 \
        (void)MF_FAIL(MF_OK, "(stale message)");                         \
        mf_status refused_got_ = (call);                                 \
        expect_refused(refused_got_, (want), (needle), #call);           \
    } while (0)

/* A stand-in context describing a device; freed with free(), never with
 * mf_context_destroy (it holds no driver state). */
static mf_context *stand_in(int cc_major, int cc_minor, const char *arch)
{
    mf_context *ctx = calloc(1, sizeof *ctx);
    cr_assert(ctx);
    ctx->info.cc_major = cc_major;
    ctx->info.cc_minor = cc_minor;
    ctx->info.sm_count = 132;
    ctx->info.max_smem_per_block_optin = 227 * 1024;
    snprintf(ctx->info.arch, sizeof ctx->info.arch, "%s", arch);
    pthread_mutex_init(&ctx->load_lock, NULL);
    return ctx;
}

static mf_context *hopper(void) { return stand_in(9, 0, "sm_90a"); }
static mf_context *ampere(void) { return stand_in(8, 0, "sm_80"); }

static void drop(mf_context *ctx)
{
    pthread_mutex_destroy(&ctx->load_lock);
    free(ctx);
}

/* ---- context, kernels, device count ---------------------------------------------- */

VTest(device_count, null_count)
{
    REFUSED(mf_device_count(NULL), MF_ERR_INVALID_ARGUMENT, "mf_device_count: count is NULL");
}

/* *count is set to 0 before the driver is looked for (documented row). */
VTest(device_count, no_driver)
{
    int count = -1;
    if (mf_device_count(&count) == MF_OK)
        cr_skip_test("a CUDA driver is present");
    count = -1;
    REFUSED(mf_device_count(&count), MF_ERR_NO_DRIVER, "libcuda.so.1");
    cr_expect_eq(count, 0);
}

VTest(context_create, null_out)
{
    REFUSED(mf_context_create(0, NULL), MF_ERR_INVALID_ARGUMENT, "mf_context_create: out is NULL");
    REFUSED(mf_context_create(-1, AT(0)), MF_ERR_INVALID_ARGUMENT, "ordinal -1 < 0");
}

VTest(context_info, null_arguments)
{
    mf_context *ctx = hopper();
    REFUSED(mf_context_info(NULL, AT(0)), MF_ERR_INVALID_ARGUMENT, "mf_context_info: null");
    REFUSED(mf_context_info(ctx, NULL), MF_ERR_INVALID_ARGUMENT, "mf_context_info: null");
    drop(ctx);
}

VTest(context_open_archive, null_arguments)
{
    mf_context *ctx = hopper();
    REFUSED(mf_context_open_archive(NULL, "x.mfa"), MF_ERR_INVALID_ARGUMENT,
            "mf_context_open_archive: null argument");
    REFUSED(mf_context_open_archive(ctx, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_context_open_archive: null argument");
    drop(ctx);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
}

/* An archive with one fake cubin for target; opening never loads it. */
static void write_archive(const char *path, const char *target)
{
    static const unsigned char cubin[64] = {0x7f, 'E', 'L', 'F'};
    mf_archive_writer *w;
    cr_assert_eq(mf_archive_writer_create("validation test", &w), MF_OK, "%s", mf_last_error());
    cr_assert_eq(mf_archive_writer_add(w, "silu_mul:block=256,dtype=bf16,layout=masked,unroll=1",
                                       target, "mf_entry", 0, cubin, sizeof cubin),
                 MF_OK, "%s", mf_last_error());
    cr_assert_eq(mf_archive_writer_write(w, path), MF_OK, "%s", mf_last_error());
    mf_archive_writer_destroy(w);
    cr_assert_eq(chmod(path, 0600), 0);
}

VTest(context_open_archive, missing_file)
{
    mf_context *ctx = hopper();
    char path[256];
    snprintf(path, sizeof path, "%s/absent.mfa", private_dir());
    REFUSED(mf_context_open_archive(ctx, path), MF_ERR_IO, "absent.mfa");
    cr_expect_eq(ctx->archive_count, 0);
    drop(ctx);
}

VTest(context_open_archive, writable_by_others)
{
    mf_context *ctx = hopper();
    char path[256];
    snprintf(path, sizeof path, "%s/open.mfa", private_dir());
    write_archive(path, "sm_90a");
    cr_assert_eq(chmod(path, 0666), 0);
    REFUSED(mf_context_open_archive(ctx, path), MF_ERR_UNTRUSTED, "writable by group or others");
    cr_expect_eq(ctx->archive_count, 0);
    unlink(path);
    drop(ctx);
}

VTest(context_open_archive, not_an_archive)
{
    mf_context *ctx = hopper();
    char path[256];
    snprintf(path, sizeof path, "%s/garbage.mfa", private_dir());
    write_text(path, "not an archive at all, just text", 0600);
    REFUSED(mf_context_open_archive(ctx, path), MF_ERR_ARCHIVE, "garbage.mfa");
    cr_expect_eq(ctx->archive_count, 0);
    unlink(path);
    drop(ctx);
}

VTest(context_open_archive, other_architecture)
{
    mf_context *ctx = ampere();
    char path[256];
    snprintf(path, sizeof path, "%s/hopper.mfa", private_dir());
    write_archive(path, "sm_90a");
    REFUSED(mf_context_open_archive(ctx, path), MF_ERR_ARCH_MISMATCH, "no code that runs on sm_80");
    cr_expect_eq(ctx->archive_count, 0);
    unlink(path);
    drop(ctx);
}

VTest(context_open_archive, more_than_16_archives)
{
    mf_context *ctx = hopper();
    ctx->archive_count = MF_MAX_ARCHIVES; /* full: the slots are never read on refusal */
    char path[256];
    snprintf(path, sizeof path, "%s/one_more.mfa", private_dir());
    write_archive(path, "sm_90a");
    REFUSED(mf_context_open_archive(ctx, path), MF_ERR_UNSUPPORTED, "more than 16 archives");
    cr_expect_eq(ctx->archive_count, MF_MAX_ARCHIVES);
    unlink(path);
    drop(ctx);
}

static mf_status never_called(void *user, const char *spec, const char *arch, mf_kernel_image *im)
{
    (void)user, (void)spec, (void)arch, (void)im;
    return MF_ERR_KERNEL_NOT_FOUND;
}

VTest(context_set_provider, null_context)
{
    mf_kernel_provider p = {never_called, NULL, NULL};
    REFUSED(mf_context_set_provider(NULL, &p), MF_ERR_INVALID_ARGUMENT,
            "mf_context_set_provider: ctx is NULL");
}

VTest(context_set_provider, null_compile)
{
    mf_context *ctx = hopper();
    mf_kernel_provider p = {NULL, NULL, NULL};
    REFUSED(mf_context_set_provider(ctx, &p), MF_ERR_INVALID_ARGUMENT, "compile is NULL");
    cr_expect_null(ctx->provider.compile);
    drop(ctx);
}

VTest(kernel_prepare, null_arguments)
{
    mf_context *ctx = hopper();
    REFUSED(mf_kernel_prepare(NULL, "silu_mul:block=256"), MF_ERR_INVALID_ARGUMENT,
            "mf_kernel_prepare: null argument");
    REFUSED(mf_kernel_prepare(ctx, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_kernel_prepare: null argument");
    drop(ctx);
}

VTest(kernel_prepare, malformed_spec)
{
    mf_context *ctx = hopper();
    REFUSED(mf_kernel_prepare(ctx, "silu_mul:block"), MF_ERR_SPEC, "has no '='");
    REFUSED(mf_kernel_prepare(ctx, "Silu"), MF_ERR_SPEC, "family 'Silu'");
    drop(ctx);
}

/* ---- error flags ----------------------------------------------------------------- */

VTest(error_flags, read_null_flags_or_value)
{
    REFUSED(mf_error_flags_read(NULL, NULL, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "mf_error_flags_read: flags or value is NULL");
    REFUSED(mf_error_flags_read(NULL, AT(16), NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_error_flags_read: flags or value is NULL");
}

VTest(error_flags, read_null_context)
{
    REFUSED(mf_error_flags_read(NULL, AT(16), AT(0)), MF_ERR_INVALID_ARGUMENT,
            "mf_error_flags_read: ctx is NULL");
}

VTest(error_flags, string_without_room)
{
    cr_expect_str_eq(mf_error_flags_string(MF_DEVICE_ERR_CAPACITY, NULL, 16), "");
    cr_expect_str_eq(mf_error_flags_string(MF_DEVICE_ERR_CAPACITY, AT(0), 0), "");
    cr_expect(arena_unchanged());
    char small[8];
    cr_expect_str_eq(mf_error_flags_string(MF_DEVICE_ERR_BAD_EXPERT_ID, small, sizeof small),
                     "bad exp"); /* truncated, NUL-terminated */
}

/* ---- contiguous capacity --------------------------------------------------------- */

VTest(contiguous_capacity, null_rows)
{
    REFUSED(mf_contiguous_capacity(4, 2, 4, 128, NULL), MF_ERR_INVALID_ARGUMENT, "rows is NULL");
}

VTest(contiguous_capacity, sizes_out_of_range)
{
    REFUSED(mf_contiguous_capacity(4, 0, 4, 128, AT(0)), MF_ERR_INVALID_ARGUMENT, "topk = 0");
    REFUSED(mf_contiguous_capacity(4, 2, 0, 128, AT(0)), MF_ERR_INVALID_ARGUMENT, "experts = 0");
    REFUSED(mf_contiguous_capacity(1 << 26, 32, 4, 128, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "too large");
}

VTest(contiguous_capacity, align_not_a_power_of_two)
{
    REFUSED(mf_contiguous_capacity(4, 2, 4, 3, AT(0)), MF_ERR_INVALID_ARGUMENT, "align = 3");
    REFUSED(mf_contiguous_capacity(4, 2, 4, 2048, AT(0)), MF_ERR_INVALID_ARGUMENT, "align = 2048");
    REFUSED(mf_contiguous_capacity(4, 2, 4, -4, AT(0)), MF_ERR_INVALID_ARGUMENT, "align = -4");
}

VTest(expected_m, non_positive_sizes_give_1)
{
    cr_expect_eq(mf_expected_m(0, 8, 256), 1);
    cr_expect_eq(mf_expected_m(-5, 8, 256), 1);
    cr_expect_eq(mf_expected_m(100, 0, 256), 1);
    cr_expect_eq(mf_expected_m(100, 8, 0), 1);
    cr_expect_eq(mf_expected_m(1 << 30, 32, 1), INT32_MAX); /* 2^35 rows: clamped, not wrapped */
}

/* ---- preprocess ------------------------------------------------------------------ */

static mf_preprocess_args pre_ok(void)
{
    return (mf_preprocess_args){
        .layout = MF_LAYOUT_MASKED, .topk_ids = AT(0x0000), .hidden = AT(0x1000), .tokens = 4,
        .topk = 2, .experts = 4, .hidden_size = 128, .a_dtype = MF_DTYPE_BF16, .a = AT(0x2000),
        .src2dst = AT(0x3000), .masked_m = AT(0x3100), .max_m = 8, .error_flags = AT(0x3200)};
}

static mf_preprocess_args pre_fp8(void)
{
    mf_preprocess_args a = pre_ok();
    a.a_dtype = MF_DTYPE_E4M3;
    a.a_scale = AT(0x4000);
    return a;
}

static mf_preprocess_args pre_contiguous(void)
{
    mf_preprocess_args a = pre_ok();
    a.layout = MF_LAYOUT_CONTIGUOUS;
    a.masked_m = NULL;
    a.m_indices = AT(0x3100);
    cr_assert_eq(mf_contiguous_capacity(a.tokens, a.topk, a.experts, 0, &a.m_capacity), MF_OK);
    return a;
}

static mf_status pre(mf_preprocess_args a)
{
    return mf_preprocess(NULL, &a, NULL);
}

/* ---- preprocess workspace size -------------------------------------------------- */

/* Sizes of a chunked call (T*K = 2000 > 1024); no pointers. */
static mf_preprocess_args sizes_chunked(mf_dtype dtype)
{
    return (mf_preprocess_args){.layout = MF_LAYOUT_MASKED, .tokens = 1000, .topk = 2,
                                .experts = 4, .hidden_size = 256, .a_dtype = dtype,
                                .max_m = 1000};
}

static size_t workspace_of(mf_preprocess_args a)
{
    size_t bytes = 0;
    cr_assert_eq(mf_preprocess_workspace_size(&a, &bytes), MF_OK, "%s", mf_last_error());
    return bytes;
}

VTest(preprocess_workspace_size, null_args_or_bytes)
{
    mf_preprocess_args a = sizes_chunked(MF_DTYPE_BF16);
    REFUSED(mf_preprocess_workspace_size(&a, NULL), MF_ERR_INVALID_ARGUMENT,
            "args or bytes is NULL");
    REFUSED(mf_preprocess_workspace_size(NULL, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "args or bytes is NULL");
}

VTest(preprocess_workspace_size, unknown_layout)
{
    mf_preprocess_args a = sizes_chunked(MF_DTYPE_BF16);
    a.layout = (mf_layout)7;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_INVALID_ARGUMENT, "layout 7 unknown");
}

VTest(preprocess_workspace_size, sizes_out_of_range)
{
    mf_preprocess_args a = sizes_chunked(MF_DTYPE_BF16);
    a.tokens = -1;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_INVALID_ARGUMENT, "tokens = -1");
    a = sizes_chunked(MF_DTYPE_BF16), a.topk = 33;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_INVALID_ARGUMENT, "topk = 33");
    a = sizes_chunked(MF_DTYPE_BF16), a.experts = 1025;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_INVALID_ARGUMENT, "experts = 1025");
}

VTest(preprocess_workspace_size, slots_overflow)
{
    mf_preprocess_args a = sizes_chunked(MF_DTYPE_BF16);
    a.tokens = 1 << 26, a.topk = 32;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "tokens * topk = 2147483648 too large");
}

/* The sizes it reads are checked as mf_preprocess checks them. */
VTest(preprocess_workspace_size, shape_checked_as_preprocess_does)
{
    mf_preprocess_args a = sizes_chunked(MF_DTYPE_E4M3);
    a.hidden_size = 136;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_MISALIGNED,
            "hidden_size = 136 must be a positive multiple of 128");
    a = sizes_chunked(MF_DTYPE_E4M3), a.max_m = 0;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_INVALID_ARGUMENT, "max_m = 0 < 1");
    a = sizes_chunked(MF_DTYPE_E4M3), a.layout = MF_LAYOUT_CONTIGUOUS, a.m_capacity = 100;
    REFUSED(mf_preprocess_workspace_size(&a, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "m_capacity = 100 < 2560 rows");
}

static size_t round_up_256(size_t n)
{
    return (n + 255) / 256 * 256;
}

/* One launch needs none; e4m3's chunked path adds the staged scales: T x H/128
 * floats and one int per row of a, each part rounded to 256 bytes. */
VTest(preprocess_workspace_size, e4m3_adds_token_scales_and_row_tokens)
{
    mf_preprocess_args a = sizes_chunked(MF_DTYPE_BF16);
    a.tokens = 512;
    cr_expect_eq(workspace_of(a), 0);
    size_t bf16 = workspace_of(sizes_chunked(MF_DTYPE_BF16));
    cr_expect_gt(bf16, 0);
    cr_expect_eq(bf16 % 256, 0);
    size_t token_scales = round_up_256(1000 * 2 * 4), row_tokens = round_up_256(4 * 1000 * 4);
    cr_expect_eq(workspace_of(sizes_chunked(MF_DTYPE_E4M3)), bf16 + token_scales + row_tokens);
    a = sizes_chunked(MF_DTYPE_E4M3), a.layout = MF_LAYOUT_CONTIGUOUS, a.m_capacity = 2560;
    cr_expect_eq(workspace_of(a), bf16 + token_scales + round_up_256(2560 * 4));
}

VTest(preprocess, null_args)
{
    REFUSED(mf_preprocess(NULL, NULL, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_preprocess: args is NULL");
}

VTest(preprocess, negative_tokens)
{
    mf_preprocess_args a = pre_ok();
    a.tokens = -1;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "tokens = -1");
}

VTest(preprocess, topk_out_of_range)
{
    mf_preprocess_args a = pre_ok();
    a.topk = 0;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "topk = 0");
    a.topk = 33;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "topk = 33");
}

VTest(preprocess, experts_out_of_range)
{
    mf_preprocess_args a = pre_ok();
    a.experts = 0;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "experts = 0");
    a.experts = 1025;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "experts = 1025");
}

VTest(preprocess, slots_overflow)
{
    mf_preprocess_args a = pre_ok();
    a.tokens = 1 << 26, a.topk = 32;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "tokens * topk = 2147483648 too large");
}

VTest(preprocess, a_dtype_not_bf16_or_e4m3)
{
    mf_preprocess_args a = pre_ok();
    a.a_dtype = MF_DTYPE_F32;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "a_dtype 3 is not bf16 or e4m3");
}

VTest(preprocess, ue8m0_with_bf16)
{
    mf_preprocess_args a = pre_ok();
    a.ue8m0 = 1;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "ue8m0 scales need a_dtype e4m3");
}

VTest(preprocess, hidden_size_below_8)
{
    mf_preprocess_args a = pre_ok();
    a.hidden_size = 0;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "hidden_size = 0 must be a positive multiple of 8");
}

VTest(preprocess, hidden_size_not_multiple_of_8)
{
    mf_preprocess_args a = pre_ok();
    a.hidden_size = 132;
    REFUSED(pre(a), MF_ERR_MISALIGNED, "hidden_size = 132 must be a positive multiple of 8");
}

VTest(preprocess, e4m3_hidden_size_not_multiple_of_128)
{
    mf_preprocess_args a = pre_fp8();
    a.hidden_size = 136;
    REFUSED(pre(a), MF_ERR_MISALIGNED, "hidden_size = 136 must be a positive multiple of 128");
}

VTest(preprocess, null_pointer)
{
    for (int i = 0; i < 4; i++) {
        mf_preprocess_args a = pre_ok();
        if (i == 0) a.topk_ids = NULL;
        if (i == 1) a.hidden = NULL;
        if (i == 2) a.a = NULL;
        if (i == 3) a.src2dst = NULL;
        REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "topk_ids, hidden, a, src2dst is NULL");
    }
}

VTest(preprocess, e4m3_null_a_scale)
{
    mf_preprocess_args a = pre_fp8();
    a.a_scale = NULL;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "src2dst or a_scale is NULL");
}

VTest(preprocess, hidden_or_a_not_16_byte_aligned)
{
    mf_preprocess_args a = pre_ok();
    a.hidden = AT(0x1008);
    REFUSED(pre(a), MF_ERR_MISALIGNED, "hidden or a not 16-byte aligned");
    a = pre_ok(), a.a = AT(0x2004);
    REFUSED(pre(a), MF_ERR_MISALIGNED, "hidden or a not 16-byte aligned");
}

VTest(preprocess, int32_array_not_4_byte_aligned)
{
    for (int i = 0; i < 5; i++) {
        mf_preprocess_args a = i == 2 ? pre_fp8() : pre_ok();
        if (i == 0) a.topk_ids = AT(0x0002);
        if (i == 1) a.src2dst = AT(0x3002);
        if (i == 2) a.a_scale = AT(0x4002);
        if (i == 3) a.masked_m = AT(0x3102);
        if (i == 4) a.error_flags = AT(0x3201);
        REFUSED(pre(a), MF_ERR_MISALIGNED, "an int32/fp32 array is not 4-byte aligned");
    }
    mf_preprocess_args c = pre_contiguous();
    c.m_indices = AT(0x3102);
    REFUSED(pre(c), MF_ERR_MISALIGNED, "an int32/fp32 array is not 4-byte aligned");
}

VTest(preprocess, masked_null_masked_m)
{
    mf_preprocess_args a = pre_ok();
    a.masked_m = NULL;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "masked_m is NULL");
}

VTest(preprocess, masked_max_m_below_1)
{
    mf_preprocess_args a = pre_ok();
    a.max_m = 0;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "max_m = 0 < 1");
}

VTest(preprocess, masked_rows_overflow_int32)
{
    mf_preprocess_args a = pre_ok();
    a.experts = 1024, a.max_m = 1 << 22;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "experts * max_m = 4294967296 rows overflow int32");
}

VTest(preprocess, unknown_layout)
{
    mf_preprocess_args a = pre_ok();
    a.layout = (mf_layout)9;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "preprocess: layout 9 unknown");
}

VTest(preprocess, contiguous_bad_align)
{
    mf_preprocess_args a = pre_contiguous();
    a.align = 96;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "align = 96 must be a power of two");
}

VTest(preprocess, contiguous_null_m_indices)
{
    mf_preprocess_args a = pre_contiguous();
    a.m_indices = NULL;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "m_indices is NULL");
}

VTest(preprocess, contiguous_capacity_too_small)
{
    mf_preprocess_args a = pre_contiguous();
    a.m_capacity = 100;
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "m_capacity = 100 < 640 rows");
}

/* One-launch path (T*K <= 1024): m_indices is filled in grid y slices of
 * T * 1024 rows, at most 65535 of them. */
VTest(preprocess, contiguous_capacity_past_the_fill_grid)
{
    mf_preprocess_args a = pre_contiguous();
    a.tokens = 1;
    a.m_capacity = 65535 * 1024; /* the most one token's launch fills: only ctx is missing */
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, "mf_preprocess: ctx is NULL");
    a.m_capacity++;
    REFUSED(pre(a), MF_ERR_UNSUPPORTED,
            "m_capacity = 67107841 rows for 1 tokens, at most 67107840");
}

/* T*K = 2000 > 1024: the chunked path, which needs a workspace. */
static mf_preprocess_args pre_chunked(size_t *needed)
{
    mf_preprocess_args a = pre_ok();
    a.tokens = 1000, a.max_m = 1000;
    cr_assert_eq(mf_preprocess_workspace_size(&a, needed), MF_OK);
    cr_assert_gt(*needed, 0);
    a.workspace = AT(0x8000);
    a.workspace_size = *needed;
    return a;
}

VTest(preprocess, workspace_missing_or_small)
{
    size_t needed;
    mf_preprocess_args a = pre_chunked(&needed);
    char want[128];
    a.workspace = NULL;
    snprintf(want, sizeof want, "need %zu bytes", needed);
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, want);
    a = pre_chunked(&needed), a.workspace_size = needed - 1;
    snprintf(want, sizeof want, "of %zu bytes, need %zu", needed - 1, needed);
    REFUSED(pre(a), MF_ERR_INVALID_ARGUMENT, want);
}

VTest(preprocess, workspace_not_16_byte_aligned)
{
    size_t needed;
    mf_preprocess_args a = pre_chunked(&needed);
    a.workspace = AT(0x8008);
    REFUSED(pre(a), MF_ERR_MISALIGNED, "not 16-byte aligned");
}

VTest(preprocess, null_context)
{
    REFUSED(pre(pre_ok()), MF_ERR_INVALID_ARGUMENT, "mf_preprocess: ctx is NULL");
}

VTest(preprocess, e4m3_before_sm_89)
{
    mf_context *ctx = ampere();
    mf_preprocess_args a = pre_fp8();
    REFUSED(mf_preprocess(ctx, &a, NULL), MF_ERR_UNSUPPORTED,
            "e4m3 needs sm_89 or newer, device is sm_80");
    drop(ctx);
}

VTest(preprocess, zero_tokens_launch_nothing)
{
    mf_context *ctx = hopper();
    mf_preprocess_args a = pre_ok();
    a.tokens = 0;
    cr_expect_eq(mf_preprocess(ctx, &a, NULL), MF_OK, "%s", mf_last_error());
    cr_expect(arena_unchanged());
    drop(ctx);
}

/* ---- SiLU-and-mul: the rows test_runtime.c does not cover ------------------------ */

static mf_silu_mul_args silu_ok(void)
{
    return (mf_silu_mul_args){.layout = MF_LAYOUT_MASKED, .input = AT(0), .output = AT(0x4000),
                              .masked_m = AT(0x8000), .experts = 2, .max_m = 4, .n = 128};
}

static mf_silu_mul_args silu_fp8(void)
{
    mf_silu_mul_args a = silu_ok();
    a.out_dtype = MF_DTYPE_E4M3;
    a.out_scale = AT(0x9000);
    return a;
}

static mf_silu_mul_args silu_contiguous(void)
{
    mf_silu_mul_args a = silu_ok();
    a.layout = MF_LAYOUT_CONTIGUOUS;
    a.masked_m = NULL;
    a.m_indices = AT(0x8000);
    a.m_capacity = 8;
    return a;
}

static mf_status silu(mf_silu_mul_args a)
{
    return mf_silu_mul(NULL, &a, NULL);
}

VTest(silu_mul, unknown_layout)
{
    mf_silu_mul_args a = silu_ok();
    a.layout = (mf_layout)7;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "layout = 7 is neither masked nor contiguous");
}

VTest(silu_mul, f32_output)
{
    mf_silu_mul_args a = silu_ok();
    a.out_dtype = MF_DTYPE_F32;
    REFUSED(silu(a), MF_ERR_UNSUPPORTED, "out_dtype = f32 not supported");
}

VTest(silu_mul, unknown_out_dtype)
{
    mf_silu_mul_args a = silu_ok();
    a.out_dtype = (mf_dtype)42;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "out_dtype = 42 is not a dtype");
}

VTest(silu_mul, ue8m0_with_bf16)
{
    mf_silu_mul_args a = silu_ok();
    a.ue8m0 = 1;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "ue8m0 = 1 needs out_dtype e4m3");
}

VTest(silu_mul, masked_null_masked_m)
{
    mf_silu_mul_args a = silu_ok();
    a.masked_m = NULL;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "masked_m is NULL (masked layout)");
}

VTest(silu_mul, e4m3_null_out_scale)
{
    mf_silu_mul_args a = silu_fp8();
    a.out_scale = NULL;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "out_scale is NULL (e4m3 output)");
}

VTest(silu_mul, experts_above_grid_limit)
{
    mf_silu_mul_args a = silu_ok();
    a.experts = 65536;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "experts = 65536, must be in [1, 65535]");
}

VTest(silu_mul, contiguous_capacity_below_1)
{
    mf_silu_mul_args a = silu_contiguous();
    a.m_capacity = 0;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "m_capacity = 0, must be >= 1");
}

/* Used to be computed as rows * 2n, which itself overflowed int64 here. */
VTest(silu_mul, size_overflow_at_the_int_limits)
{
    mf_silu_mul_args a = silu_ok();
    a.experts = 65535, a.max_m = INT32_MAX, a.n = INT32_MAX & ~7;
    REFUSED(silu(a), MF_ERR_INVALID_ARGUMENT, "tensor size overflows");
}

VTest(silu_mul, e4m3_n_not_multiple_of_128)
{
    mf_silu_mul_args a = silu_fp8();
    a.n = 192;
    REFUSED(silu(a), MF_ERR_MISALIGNED, "n = 192 is not a multiple of 128 (e4m3 output)");
}

VTest(silu_mul, out_scale_not_4_byte_aligned)
{
    mf_silu_mul_args a = silu_fp8();
    a.out_scale = AT(0x9002);
    REFUSED(silu(a), MF_ERR_MISALIGNED, "out_scale not 4-byte aligned");
}

VTest(silu_mul, masked_m_not_4_byte_aligned)
{
    mf_silu_mul_args a = silu_ok();
    a.masked_m = AT(0x8001);
    REFUSED(silu(a), MF_ERR_MISALIGNED, "masked_m");
    cr_expect(strstr(mf_last_error(), "not 4-byte aligned"), "%s", mf_last_error());
}

VTest(silu_mul, m_indices_not_4_byte_aligned)
{
    mf_silu_mul_args a = silu_contiguous();
    a.m_indices = AT(0x8002);
    REFUSED(silu(a), MF_ERR_MISALIGNED, "m_indices");
    cr_expect(strstr(mf_last_error(), "not 4-byte aligned"), "%s", mf_last_error());
}

VTest(silu_mul, e4m3_before_sm_89)
{
    mf_context *ctx = ampere();
    mf_silu_mul_args a = silu_fp8();
    REFUSED(mf_silu_mul(ctx, &a, NULL), MF_ERR_UNSUPPORTED,
            "e4m3 needs sm_89 or newer, device is sm_80");
    drop(ctx);
}

/* ---- combine --------------------------------------------------------------------- */

static mf_combine_args combine_ok(void)
{
    return (mf_combine_args){.d = AT(0), .d_rows = 4, .src2dst = AT(0x1000),
                             .topk_weights = AT(0x2000), .out = AT(0x3000), .tokens = 2,
                             .topk = 2, .hidden_size = 64, .error_flags = AT(0x4000)};
}

static mf_status combine(mf_combine_args a)
{
    return mf_combine(NULL, &a, NULL);
}

VTest(combine, null_args)
{
    REFUSED(mf_combine(NULL, NULL, NULL), MF_ERR_INVALID_ARGUMENT, "mf_combine: args is NULL");
}

VTest(combine, null_pointer)
{
    for (int i = 0; i < 4; i++) {
        mf_combine_args a = combine_ok();
        if (i == 0) a.d = NULL;
        if (i == 1) a.src2dst = NULL;
        if (i == 2) a.topk_weights = NULL;
        if (i == 3) a.out = NULL;
        REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "d, src2dst, topk_weights or out is NULL");
    }
}

VTest(combine, d_or_out_not_16_byte_aligned)
{
    mf_combine_args a = combine_ok();
    a.d = AT(2);
    REFUSED(combine(a), MF_ERR_MISALIGNED, "d or out not 16-byte aligned");
    a = combine_ok(), a.out = AT(0x3008);
    REFUSED(combine(a), MF_ERR_MISALIGNED, "d or out not 16-byte aligned");
}

VTest(combine, int32_array_not_4_byte_aligned)
{
    for (int i = 0; i < 3; i++) {
        mf_combine_args a = combine_ok();
        if (i == 0) a.src2dst = AT(0x1002);
        if (i == 1) a.topk_weights = AT(0x2001);
        if (i == 2) a.error_flags = AT(0x4003);
        REFUSED(combine(a), MF_ERR_MISALIGNED,
                "src2dst, topk_weights or error_flags not 4-byte aligned");
    }
}

VTest(combine, hidden_size_below_8)
{
    mf_combine_args a = combine_ok();
    a.hidden_size = 4;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "hidden_size = 4, must be >= 8");
    a.hidden_size = -8;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "hidden_size = -8, must be >= 8");
}

VTest(combine, hidden_size_not_multiple_of_8)
{
    mf_combine_args a = combine_ok();
    a.hidden_size = 12;
    REFUSED(combine(a), MF_ERR_MISALIGNED, "hidden_size = 12 is not a multiple of 8");
}

VTest(combine, topk_out_of_range)
{
    mf_combine_args a = combine_ok();
    a.topk = 0;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "topk = 0, must be in [1, 32]");
    a.topk = 33;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "topk = 33, must be in [1, 32]");
}

VTest(combine, negative_tokens)
{
    mf_combine_args a = combine_ok();
    a.tokens = -1;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "tokens = -1, must be >= 0");
}

VTest(combine, no_d_rows_with_tokens)
{
    mf_combine_args a = combine_ok();
    a.d_rows = 0;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "d_rows = 0, must be >= 1 when tokens > 0");
    a.d_rows = -5;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "d_rows = -5");
}

VTest(combine, d_rows_overflow)
{
    mf_combine_args a = combine_ok();
    a.d_rows = INT64_MAX / 64;
    REFUSED(combine(a), MF_ERR_INVALID_ARGUMENT, "overflows d's size");
}

VTest(combine, null_context)
{
    REFUSED(combine(combine_ok()), MF_ERR_INVALID_ARGUMENT, "mf_combine: ctx is NULL");
}

VTest(combine, zero_tokens_launch_nothing)
{
    mf_context *ctx = hopper();
    mf_combine_args a = combine_ok();
    a.tokens = 0, a.d_rows = 0;
    cr_expect_eq(mf_combine(ctx, &a, NULL), MF_OK, "%s", mf_last_error());
    cr_expect(arena_unchanged());
    drop(ctx);
}

/* ---- GEMM heuristic and configs -------------------------------------------------- */

VTest(gemm_choose, null_out_or_size_below_1)
{
    const char *m = "mf_gemm_choose: out NULL or a size < 1";
    mf_gemm_config *c = AT(0);
    REFUSED(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 128, 128, 1, 132, 90, NULL),
            MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 128, 128, 0, 132, 90, c),
            MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 128, 128, 1, 0, 90, c),
            MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 0, 128, 1, 132, 90, c),
            MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 128, 0, 1, 132, 90, c),
            MF_ERR_INVALID_ARGUMENT, m);
}

VTest(gemm_choose, unknown_dtype)
{
    REFUSED(mf_gemm_choose(MF_DTYPE_F32, MF_LAYOUT_MASKED, 4, 128, 128, 1, 132, 90, AT(0)),
            MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: dtype 3");
}

VTest(gemm_choose, unknown_layout)
{
    REFUSED(mf_gemm_choose(MF_DTYPE_BF16, (mf_layout)5, 4, 128, 128, 1, 132, 90, AT(0)),
            MF_ERR_INVALID_ARGUMENT, "mf_gemm_choose: layout 5 unknown");
}

VTest(gemm_choose, n_fits_no_tile)
{
    REFUSED(mf_gemm_choose(MF_DTYPE_BF16, MF_LAYOUT_MASKED, 4, 100, 128, 1, 132, 90, AT(0)),
            MF_ERR_UNSUPPORTED, "no tile config fits N = 100");
}

VTest(gemm_configs, null_arguments_or_negative_max)
{
    REFUSED(mf_gemm_configs(MF_DTYPE_BF16, NULL, 6, AT(0x100)), MF_ERR_INVALID_ARGUMENT,
            "mf_gemm_configs: null argument");
    REFUSED(mf_gemm_configs(MF_DTYPE_BF16, AT(0), 6, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_gemm_configs: null argument");
    REFUSED(mf_gemm_configs(MF_DTYPE_BF16, AT(0), -1, AT(0x100)), MF_ERR_INVALID_ARGUMENT,
            "mf_gemm_configs: null argument");
}

VTest(gemm_configs, unknown_dtype)
{
    REFUSED(mf_gemm_configs((mf_dtype)9, AT(0), 6, AT(0x100)), MF_ERR_INVALID_ARGUMENT,
            "mf_gemm_configs: dtype 9");
}

/* ---- grouped GEMM ---------------------------------------------------------------- */

static mf_gemm_args gemm_ok(void)
{
    return (mf_gemm_args){.layout = MF_LAYOUT_MASKED, .dtype = MF_DTYPE_BF16, .a = AT(0),
                          .b = AT(0x4000), .d = AT(0x8000), .experts = 2, .n = 128, .k = 128,
                          .masked_m = AT(0xC000), .max_m = 8};
}

static mf_gemm_args gemm_fp8(void)
{
    mf_gemm_args a = gemm_ok();
    a.dtype = MF_DTYPE_E4M3;
    a.a_scale = AT(0xD000);
    a.b_scale = AT(0xE000);
    return a;
}

static mf_gemm_args gemm_contiguous(void)
{
    mf_gemm_args a = gemm_ok();
    a.layout = MF_LAYOUT_CONTIGUOUS;
    a.masked_m = NULL;
    a.m_indices = AT(0xC000);
    a.m_capacity = 128;
    return a;
}

static mf_status gemm(mf_gemm_args a)
{
    return mf_gemm(NULL, &a, NULL);
}

VTest(gemm, null_args)
{
    REFUSED(mf_gemm(NULL, NULL, NULL), MF_ERR_INVALID_ARGUMENT, "mf_gemm: args is NULL");
}

VTest(gemm, unknown_dtype)
{
    mf_gemm_args a = gemm_ok();
    a.dtype = MF_DTYPE_F32;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "gemm: dtype 3 is not bf16 or e4m3");
}

VTest(gemm, size_below_1)
{
    mf_gemm_args a = gemm_ok();
    a.experts = 0;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "experts = 0, n = 128, k = 128 must be >= 1");
    a = gemm_ok(), a.n = -32;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "n = -32");
    a = gemm_ok(), a.k = 0;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "k = 0 must be >= 1");
}

VTest(gemm, n_not_multiple_of_32)
{
    mf_gemm_args a = gemm_ok();
    a.n = 100;
    REFUSED(gemm(a), MF_ERR_UNSUPPORTED, "N = 100 is not a multiple of 32");
}

VTest(gemm, bf16_k_not_multiple_of_64)
{
    mf_gemm_args a = gemm_ok();
    a.k = 96;
    REFUSED(gemm(a), MF_ERR_UNSUPPORTED, "K = 96 is not a multiple of 64");
}

VTest(gemm, e4m3_k_not_multiple_of_128)
{
    mf_gemm_args a = gemm_fp8();
    a.k = 192;
    REFUSED(gemm(a), MF_ERR_UNSUPPORTED, "K = 192 is not a multiple of 128");
}

/* Used to be computed as experts * n * k, which itself overflowed int64 here. */
VTest(gemm, b_size_overflow)
{
    mf_gemm_args a = gemm_ok();
    a.experts = INT32_MAX, a.n = INT32_MAX & ~31, a.k = 1 << 29;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "B size overflows");
}

VTest(gemm, k_row_bytes_overflow_int32)
{
    mf_gemm_args a = gemm_ok();
    a.experts = 1, a.n = 32, a.k = 1 << 30;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "K = 1073741824 is 2147483648 bytes per row");
}

VTest(gemm, masked_null_masked_m_or_bad_counts)
{
    mf_gemm_args a = gemm_ok();
    a.masked_m = NULL;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "gemm (masked): masked_m NULL");
    a = gemm_ok(), a.max_m = 0;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "max_m = 0");
}

VTest(gemm, negative_expected_m)
{
    mf_gemm_args a = gemm_ok();
    a.expected_m = -1;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "gemm: expected_m = -1 is negative");
    a = gemm_contiguous(), a.expected_m = -1;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "gemm: expected_m = -1 is negative");
}

VTest(gemm, masked_rows_overflow_int32)
{
    mf_gemm_args a = gemm_ok();
    a.experts = 1024, a.max_m = 1 << 22;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "experts * max_m = 4294967296 rows overflow int32");
}

VTest(gemm, e4m3_masked_max_m_not_multiple_of_4)
{
    mf_gemm_args a = gemm_fp8();
    a.max_m = 6;
    REFUSED(gemm(a), MF_ERR_UNSUPPORTED, "max_m = 6 is not a multiple of 4");
}

VTest(gemm, unknown_layout)
{
    mf_gemm_args a = gemm_ok();
    a.layout = (mf_layout)9;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "gemm: layout 9 unknown");
}

VTest(gemm, contiguous_null_m_indices_or_no_capacity)
{
    mf_gemm_args a = gemm_contiguous();
    a.m_indices = NULL;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "m_indices NULL or m_capacity = 128");
    a = gemm_contiguous(), a.m_capacity = 0;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "m_capacity = 0");
}

VTest(gemm, contiguous_capacity_not_multiple_of_32)
{
    mf_gemm_args a = gemm_contiguous();
    a.m_capacity = 100;
    REFUSED(gemm(a), MF_ERR_UNSUPPORTED, "m_capacity = 100 (a positive multiple of 32");
}

VTest(gemm, null_operand)
{
    for (int i = 0; i < 3; i++) {
        mf_gemm_args a = gemm_ok();
        if (i == 0) a.a = NULL;
        if (i == 1) a.b = NULL;
        if (i == 2) a.d = NULL;
        REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "gemm: a, b, d is NULL");
    }
}

VTest(gemm, e4m3_null_scale)
{
    mf_gemm_args a = gemm_fp8();
    a.a_scale = NULL;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "a, b, d, a_scale or b_scale is NULL");
    a = gemm_fp8(), a.b_scale = NULL;
    REFUSED(gemm(a), MF_ERR_INVALID_ARGUMENT, "a, b, d, a_scale or b_scale is NULL");
}

VTest(gemm, operand_not_16_byte_aligned)
{
    for (int i = 0; i < 3; i++) {
        mf_gemm_args a = gemm_ok();
        if (i == 0) a.a = AT(8);
        if (i == 1) a.b = AT(0x4004);
        if (i == 2) a.d = AT(0x8002);
        REFUSED(gemm(a), MF_ERR_MISALIGNED, "a, b or d not 16-byte aligned");
    }
}

VTest(gemm, scale_not_4_byte_aligned)
{
    mf_gemm_args a = gemm_fp8();
    a.a_scale = AT(0xD002);
    REFUSED(gemm(a), MF_ERR_MISALIGNED, "a scale array not 4-byte aligned");
    a = gemm_fp8(), a.b_scale = AT(0xE001);
    REFUSED(gemm(a), MF_ERR_MISALIGNED, "a scale array not 4-byte aligned");
}

VTest(gemm, row_counts_not_4_byte_aligned)
{
    mf_gemm_args a = gemm_ok();
    a.masked_m = AT(0xC002);
    REFUSED(gemm(a), MF_ERR_MISALIGNED, "gemm: masked_m");
    a = gemm_contiguous(), a.m_indices = AT(0xC001);
    REFUSED(gemm(a), MF_ERR_MISALIGNED, "gemm: m_indices");
    cr_expect(strstr(mf_last_error(), "not 4-byte aligned"), "%s", mf_last_error());
}

VTest(gemm, null_context)
{
    REFUSED(gemm(gemm_ok()), MF_ERR_INVALID_ARGUMENT, "mf_gemm: ctx is NULL");
}

VTest(gemm, e4m3_before_sm_89)
{
    mf_context *ctx = ampere();
    mf_gemm_args a = gemm_fp8();
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED,
            "e4m3 needs sm_89 or newer, device is sm_80");
    drop(ctx);
}

/* The refusals below come from the tile choice, after the context check:
 * the stand-in context is never used for a kernel lookup. */
VTest(gemm, config_not_of_the_family)
{
    mf_context *ctx = hopper();
    mf_gemm_args a = gemm_ok();
    a.config = &(mf_gemm_config){96, 128, 2, 2, 3, MF_GEMM_PORTABLE};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED, "is not one of the families'");
    a.config = &(mf_gemm_config){128, 128, 2, 2, 3, MF_GEMM_SM90};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED, "is not one of the families'");
    drop(ctx);
}

VTest(gemm, sm90_config_off_hopper)
{
    mf_context *ctx = ampere();
    mf_gemm_args a = gemm_ok();
    a.config = &(mf_gemm_config){128, 128, 2, 1, 5, MF_GEMM_SM90};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED,
            "the sm90 family (TMA + wgmma) runs on compute capability 9.0 only, device is 8.0");
    drop(ctx);
}

VTest(gemm, sm90_config_past_shared_memory)
{
    mf_context *ctx = hopper();
    mf_gemm_args a = gemm_ok();
    a.experts = 16384; /* the masked tile prefix (E + 1 ints) no longer fits beside 5 stages */
    a.config = &(mf_gemm_config){128, 128, 2, 1, 5, MF_GEMM_SM90};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED, "needs more shared memory with E = 16384");
    drop(ctx);
}

VTest(gemm, config_does_not_divide)
{
    mf_context *ctx = hopper();
    mf_gemm_args a = gemm_ok();
    a.n = 96;
    a.config = &(mf_gemm_config){128, 128, 2, 2, 3, MF_GEMM_PORTABLE};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED,
            "config bm=128 bn=128 does not divide N = 96");
    a = gemm_contiguous(), a.m_capacity = 96;
    a.config = &(mf_gemm_config){64, 128, 2, 2, 4, MF_GEMM_PORTABLE};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED, "or m_capacity = 96");
    drop(ctx);
}

/* A cluster of two CTAs takes n-tiles in pairs: 3 tiles of 128 cannot pair. */
VTest(gemm, cluster_config_needs_paired_n_tiles)
{
    mf_context *ctx = hopper();
    mf_gemm_args a = gemm_ok();
    a.n = 384;
    a.config = &(mf_gemm_config){128, 128, 2, 2, 5, MF_GEMM_SM90};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED,
            "does not divide N = 384 (into a multiple of wn = 2 tiles)");
    drop(ctx);
}

VTest(gemm, contiguous_no_tile_fits)
{
    mf_context *ctx = hopper();
    mf_gemm_args a = gemm_contiguous();
    a.n = 32, a.m_capacity = 96;
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED,
            "no tile config fits N = 32 and m_capacity = 96");
    drop(ctx);
}

VTest(gemm, contiguous_grid_y_limit)
{
    mf_context *ctx = ampere(); /* the portable family; sm90 grids are persistent */
    mf_gemm_args a = gemm_contiguous();
    a.m_capacity = 1 << 23;
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED, "m_capacity = 8388608 is");
    cr_expect(strstr(mf_last_error(), "65535"), "%s", mf_last_error());
    a.config = &(mf_gemm_config){128, 128, 2, 2, 3, MF_GEMM_PORTABLE};
    REFUSED(mf_gemm(ctx, &a, NULL), MF_ERR_UNSUPPORTED, "is 65536 tiles of bm = 128 rows");
    drop(ctx);
}

/* ---- the layer ------------------------------------------------------------------- */

static mf_layer_desc desc_ok(void)
{
    return (mf_layer_desc){.hidden = 256, .intermediate = 128, .experts = 4, .topk = 2,
                           .dtype = MF_DTYPE_BF16, .layout = MF_LAYOUT_MASKED, .max_tokens = 8,
                           .w13 = AT(0), .w2 = AT(0x10000)};
}

static mf_layer_desc desc_fp8(void)
{
    mf_layer_desc d = desc_ok();
    d.dtype = MF_DTYPE_E4M3;
    d.w13_scale = AT(0x20000);
    d.w2_scale = AT(0x21000);
    return d;
}

/* On refusal *out is set to NULL (documented); everything else stays. */
static mf_status create(mf_context *ctx, mf_layer_desc d)
{
    mf_layer *layer = (mf_layer *)&layer; /* not NULL */
    mf_status s = mf_layer_create(ctx, &d, &layer);
    if (s != MF_OK)
        cr_expect_null(layer, "*out not cleared on refusal");
    else
        mf_layer_destroy(layer);
    return s;
}

VTest(layer_create, null_desc_or_out)
{
    mf_layer *layer;
    mf_layer_desc d = desc_ok();
    REFUSED(mf_layer_create(NULL, NULL, &layer), MF_ERR_INVALID_ARGUMENT, "desc or out is NULL");
    REFUSED(mf_layer_create(NULL, &d, NULL), MF_ERR_INVALID_ARGUMENT, "desc or out is NULL");
}

VTest(layer_create, sizes_not_multiples_of_128)
{
    mf_layer_desc d = desc_ok();
    d.hidden = 100;
    REFUSED(create(NULL, d), MF_ERR_UNSUPPORTED,
            "hidden = 100 and intermediate = 128 must be positive multiples of 128");
    d = desc_ok(), d.intermediate = 0;
    REFUSED(create(NULL, d), MF_ERR_UNSUPPORTED, "intermediate = 0");
}

VTest(layer_create, sizes_past_int32_index_math)
{
    mf_layer_desc d = desc_ok();
    d.intermediate = 1 << 30;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "intermediate = 1073741824 must be at most");
    d = desc_ok(), d.hidden = INT32_MAX / 128 * 128;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "must be at most 1073741823");
}

VTest(layer_create, counts_out_of_range)
{
    const char *m = "(1..1024), topk = ";
    mf_layer_desc d = desc_ok();
    d.experts = 1025;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "experts = 1025");
    d = desc_ok(), d.topk = 33;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, m);
    d = desc_ok(), d.max_tokens = 0;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "max_tokens = 0 (>= 1)");
}

VTest(layer_create, unknown_dtype)
{
    mf_layer_desc d = desc_ok();
    d.dtype = MF_DTYPE_F32;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "layer: dtype 3 is not bf16 or e4m3");
}

VTest(layer_create, unknown_layout)
{
    mf_layer_desc d = desc_ok();
    d.layout = (mf_layout)9;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "layer: layout 9 unknown");
}

VTest(layer_create, null_weights)
{
    mf_layer_desc d = desc_ok();
    d.w13 = NULL;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "layer: w13, w2 is NULL");
    d = desc_ok(), d.w2 = NULL;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "layer: w13, w2 is NULL");
}

VTest(layer_create, e4m3_null_scales)
{
    mf_layer_desc d = desc_fp8();
    d.w2_scale = NULL;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "w13, w2, w13_scale or w2_scale is NULL");
}

VTest(layer_create, weights_not_16_byte_aligned)
{
    mf_layer_desc d = desc_ok();
    d.w13 = AT(8);
    REFUSED(create(NULL, d), MF_ERR_MISALIGNED, "w13 or w2 not 16-byte aligned");
    d = desc_ok(), d.w2 = AT(0x10004);
    REFUSED(create(NULL, d), MF_ERR_MISALIGNED, "w13 or w2 not 16-byte aligned");
}

VTest(layer_create, scales_not_4_byte_aligned)
{
    mf_layer_desc d = desc_fp8();
    d.w13_scale = AT(0x20002);
    REFUSED(create(NULL, d), MF_ERR_MISALIGNED, "w13_scale or w2_scale not 4-byte aligned");
    d = desc_fp8(), d.w2_scale = AT(0x21001);
    REFUSED(create(NULL, d), MF_ERR_MISALIGNED, "w13_scale or w2_scale not 4-byte aligned");
}

VTest(layer_create, ue8m0_with_bf16)
{
    mf_layer_desc d = desc_ok();
    d.ue8m0 = 1;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "ue8m0 needs dtype e4m3");
}

VTest(layer_create, max_tokens_times_topk_too_large)
{
    mf_layer_desc d = desc_ok();
    d.max_tokens = 1 << 26, d.topk = 32;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT, "max_tokens * topk too large");
}

VTest(layer_create, masked_rows_overflow_int32)
{
    mf_layer_desc d = desc_ok();
    d.experts = 1024, d.topk = 1, d.max_tokens = 1 << 22;
    REFUSED(create(NULL, d), MF_ERR_INVALID_ARGUMENT,
            "experts * max_m = 4294967296 rows overflow int32");
}

VTest(layer_create, null_context)
{
    REFUSED(create(NULL, desc_ok()), MF_ERR_INVALID_ARGUMENT, "mf_layer_create: ctx is NULL");
}

VTest(layer_create, e4m3_before_sm_89)
{
    mf_context *ctx = ampere();
    REFUSED(create(ctx, desc_fp8()), MF_ERR_UNSUPPORTED,
            "e4m3 needs sm_89 or newer, device is sm_80");
    drop(ctx);
}

VTest(layer, workspace_size_null_arguments)
{
    mf_context *ctx = hopper();
    mf_layer_desc d = desc_ok();
    mf_layer *layer;
    cr_assert_eq(mf_layer_create(ctx, &d, &layer), MF_OK, "%s", mf_last_error());
    REFUSED(mf_layer_workspace_size(NULL, AT(0x30000)), MF_ERR_INVALID_ARGUMENT,
            "mf_layer_workspace_size: null argument");
    REFUSED(mf_layer_workspace_size(layer, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_layer_workspace_size: null argument");
    mf_layer_destroy(layer);
    drop(ctx);
}

VTest(layer, prepare_null_layer)
{
    REFUSED(mf_layer_prepare(NULL), MF_ERR_INVALID_ARGUMENT, "mf_layer_prepare: layer is NULL");
}

VTest(layer, layout_of_null_is_auto)
{
    cr_expect_eq(mf_layer_layout(NULL), MF_LAYOUT_AUTO);
    mf_layer_destroy(NULL);
}

/* A layer on a stand-in Hopper and io that passes every check. */
typedef struct forward_fixture {
    mf_context *ctx;
    mf_layer *layer;
    mf_layer_io io;
} forward_fixture;

static forward_fixture forward_ok(void)
{
    forward_fixture f = {hopper(), NULL, {0}};
    mf_layer_desc d = desc_ok();
    cr_assert_eq(mf_layer_create(f.ctx, &d, &f.layer), MF_OK, "%s", mf_last_error());
    size_t bytes;
    cr_assert_eq(mf_layer_workspace_size(f.layer, &bytes), MF_OK);
    cr_assert_leq(bytes, ARENA_BYTES - 0x10000);
    f.io = (mf_layer_io){.hidden = AT(0x1000), .topk_ids = AT(0x2000), .topk_weights = AT(0x3000),
                         .out = AT(0x4000), .tokens = 8, .workspace = AT(0x10000),
                         .workspace_size = bytes, .error_flags = AT(0x5000)};
    return f;
}

static void forward_done(forward_fixture *f)
{
    mf_layer_destroy(f->layer);
    drop(f->ctx);
}

VTest(layer_forward, null_layer_or_io)
{
    forward_fixture f = forward_ok();
    REFUSED(mf_layer_forward(NULL, &f.io, NULL), MF_ERR_INVALID_ARGUMENT, "layer or io is NULL");
    REFUSED(mf_layer_forward(f.layer, NULL, NULL), MF_ERR_INVALID_ARGUMENT, "layer or io is NULL");
    forward_done(&f);
}

VTest(layer_forward, tokens_outside_0_max_tokens)
{
    forward_fixture f = forward_ok();
    f.io.tokens = 9;
    REFUSED(mf_layer_forward(f.layer, &f.io, NULL), MF_ERR_INVALID_ARGUMENT,
            "tokens = 9 outside [0, 8]");
    f.io.tokens = -1;
    REFUSED(mf_layer_forward(f.layer, &f.io, NULL), MF_ERR_INVALID_ARGUMENT,
            "tokens = -1 outside [0, 8]");
    forward_done(&f);
}

VTest(layer_forward, null_pointer)
{
    for (int i = 0; i < 5; i++) {
        forward_fixture f = forward_ok();
        if (i == 0) f.io.hidden = NULL;
        if (i == 1) f.io.topk_ids = NULL;
        if (i == 2) f.io.topk_weights = NULL;
        if (i == 3) f.io.out = NULL;
        if (i == 4) f.io.workspace = NULL;
        REFUSED(mf_layer_forward(f.layer, &f.io, NULL), MF_ERR_INVALID_ARGUMENT,
                "hidden, topk_ids, topk_weights, out or workspace is NULL");
        forward_done(&f);
    }
}

VTest(layer_forward, workspace_too_small)
{
    forward_fixture f = forward_ok();
    char want[96];
    snprintf(want, sizeof want, "workspace of %zu bytes, need %zu", f.io.workspace_size - 1,
             f.io.workspace_size);
    f.io.workspace_size--;
    REFUSED(mf_layer_forward(f.layer, &f.io, NULL), MF_ERR_INVALID_ARGUMENT, want);
    forward_done(&f);
}

VTest(layer_forward, buffer_not_16_byte_aligned)
{
    for (int i = 0; i < 3; i++) {
        forward_fixture f = forward_ok();
        if (i == 0) f.io.workspace = AT(0x10008);
        if (i == 1) f.io.hidden = AT(0x1004);
        if (i == 2) f.io.out = AT(0x4002);
        REFUSED(mf_layer_forward(f.layer, &f.io, NULL), MF_ERR_MISALIGNED,
                "workspace, hidden or out not 16-byte aligned");
        forward_done(&f);
    }
}

VTest(layer_forward, int32_array_not_4_byte_aligned)
{
    for (int i = 0; i < 3; i++) {
        forward_fixture f = forward_ok();
        if (i == 0) f.io.topk_ids = AT(0x2002);
        if (i == 1) f.io.topk_weights = AT(0x3001);
        if (i == 2) f.io.error_flags = AT(0x5003);
        REFUSED(mf_layer_forward(f.layer, &f.io, NULL), MF_ERR_MISALIGNED,
                "topk_ids, topk_weights or error_flags not 4-byte aligned");
        forward_done(&f);
    }
}

VTest(layer_forward, zero_tokens_launch_nothing)
{
    forward_fixture f = forward_ok();
    f.io.tokens = 0;
    cr_expect_eq(mf_layer_forward(f.layer, &f.io, NULL), MF_OK, "%s", mf_last_error());
    cr_expect(arena_unchanged());
    forward_done(&f);
}

VTest(layer_forward_timed, null_times)
{
    forward_fixture f = forward_ok();
    REFUSED(mf_layer_forward_timed(f.layer, &f.io, NULL, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_layer_forward_timed: times is NULL");
    forward_done(&f);
}

VTest(layer_forward_timed, refused_io_leaves_times_alone)
{
    forward_fixture f = forward_ok();
    f.io.tokens = 9;
    REFUSED(mf_layer_forward_timed(f.layer, &f.io, NULL, AT(0x6000)), MF_ERR_INVALID_ARGUMENT,
            "tokens = 9 outside [0, 8]");
    forward_done(&f);
}

/* ---- device helpers -------------------------------------------------------------- */

VTest(device_helpers, malloc_null_ptr_or_zero_bytes)
{
    REFUSED(mf_malloc(NULL, NULL, 16), MF_ERR_INVALID_ARGUMENT,
            "mf_malloc: ptr is NULL or bytes is 0");
    REFUSED(mf_malloc(NULL, AT(0), 0), MF_ERR_INVALID_ARGUMENT,
            "mf_malloc: ptr is NULL or bytes is 0");
}

VTest(device_helpers, malloc_null_context)
{
    REFUSED(mf_malloc(NULL, AT(0), 16), MF_ERR_INVALID_ARGUMENT, "mf_malloc: ctx is NULL");
}

VTest(device_helpers, copy_null_end)
{
    REFUSED(mf_memcpy_htod(NULL, NULL, AT(0), 16), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_htod: dst or src is NULL (16 bytes)");
    REFUSED(mf_memcpy_htod(NULL, AT(0), NULL, 16), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_htod: dst or src is NULL");
    REFUSED(mf_memcpy_dtoh(NULL, NULL, AT(0), 16), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_dtoh: dst or src is NULL");
    REFUSED(mf_memcpy_dtoh(NULL, AT(0), NULL, 16), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_dtoh: dst or src is NULL");
    REFUSED(mf_memcpy_dtod_async(NULL, NULL, AT(0), 16, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_dtod_async: dst or src is NULL");
    REFUSED(mf_memset_d8(NULL, NULL, 0, 16), MF_ERR_INVALID_ARGUMENT,
            "mf_memset_d8: dst is NULL (16 bytes)");
}

VTest(device_helpers, copy_null_context)
{
    REFUSED(mf_memcpy_htod(NULL, AT(0), AT(64), 16), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_htod: ctx is NULL");
    REFUSED(mf_memcpy_dtoh(NULL, AT(0), AT(64), 16), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_dtoh: ctx is NULL");
    REFUSED(mf_memcpy_dtod_async(NULL, AT(0), AT(64), 16, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_dtod_async: ctx is NULL");
    REFUSED(mf_memset_d8(NULL, AT(0), 0, 16), MF_ERR_INVALID_ARGUMENT, "mf_memset_d8: ctx is NULL");
    /* 0 bytes needs no pointer, but still a context */
    REFUSED(mf_memcpy_htod(NULL, NULL, NULL, 0), MF_ERR_INVALID_ARGUMENT,
            "mf_memcpy_htod: ctx is NULL");
}

VTest(device_helpers, stream_null_arguments)
{
    REFUSED(mf_stream_synchronize(NULL, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_stream_synchronize: ctx is NULL");
    mf_context *ctx = hopper();
    REFUSED(mf_stream_create(ctx, NULL), MF_ERR_INVALID_ARGUMENT, "mf_stream_create: out is NULL");
    drop(ctx);
    REFUSED(mf_stream_create(NULL, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "mf_stream_create: ctx is NULL");
    mf_stream_destroy(NULL, NULL); /* accepted, does nothing */
}

VTest(device_helpers, graph_null_arguments)
{
    REFUSED(mf_graph_capture_begin(NULL, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_graph_capture_begin: ctx is NULL");
    mf_context *ctx = hopper();
    REFUSED(mf_graph_capture_end(ctx, NULL, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_graph_capture_end: out is NULL");
    drop(ctx);
    REFUSED(mf_graph_capture_end(NULL, NULL, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "mf_graph_capture_end: ctx is NULL");
    REFUSED(mf_graph_launch(NULL, NULL), MF_ERR_INVALID_ARGUMENT, "mf_graph_launch: graph is NULL");
    mf_graph_destroy(NULL);
}

VTest(device_helpers, timer_null_arguments)
{
    mf_context *ctx = hopper();
    REFUSED(mf_timer_create(ctx, NULL), MF_ERR_INVALID_ARGUMENT, "mf_timer_create: out is NULL");
    drop(ctx);
    REFUSED(mf_timer_create(NULL, AT(0)), MF_ERR_INVALID_ARGUMENT, "mf_timer_create: ctx is NULL");
    REFUSED(mf_timer_start(NULL, NULL), MF_ERR_INVALID_ARGUMENT, "mf_timer_start: timer is NULL");
    REFUSED(mf_timer_stop(NULL, NULL), MF_ERR_INVALID_ARGUMENT, "mf_timer_stop: timer is NULL");
    REFUSED(mf_timer_elapsed_ms(NULL, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "mf_timer_elapsed_ms: null argument");
    mf_timer_destroy(NULL);
}

/* ---- generator and JIT ----------------------------------------------------------- */

static const char *silu_spec = "silu_mul:block=256,dtype=bf16,layout=masked,unroll=1";

VTest(gen_canonical_spec, null_spec)
{
    REFUSED(mf_gen_canonical_spec(NULL, AT(0), 64), MF_ERR_INVALID_ARGUMENT,
            "mf_gen_canonical_spec: null argument or size 0");
    REFUSED(mf_gen_canonical_spec(silu_spec, NULL, 64), MF_ERR_INVALID_ARGUMENT,
            "mf_gen_canonical_spec: null argument or size 0");
}

VTest(gen_canonical_spec, malformed_spec)
{
    REFUSED(mf_gen_canonical_spec("silu_mul:block=256,block=128", AT(0), 64), MF_ERR_SPEC,
            "spec key 'block' appears twice");
    REFUSED(mf_gen_canonical_spec("silu_mul:x=a b", AT(0), 64), MF_ERR_SPEC,
            "may hold only [A-Za-z0-9_.+-]");
}

/* A buffer too small is refused with the size needed; nothing is written. */
VTest(gen_canonical_spec, buffer_too_small)
{
    REFUSED(mf_gen_canonical_spec(silu_spec, AT(0), 16), MF_ERR_INVALID_ARGUMENT,
            "bytes needed, 16 given");
}

VTest(gen_render, null_arguments)
{
    REFUSED(mf_gen_render(NULL, AT(0), NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_gen_render: null argument");
    REFUSED(mf_gen_render(silu_spec, NULL, NULL), MF_ERR_INVALID_ARGUMENT,
            "mf_gen_render: null argument");
}

VTest(gen_render, malformed_spec_or_reserved_key)
{
    REFUSED(mf_gen_render("Silu", AT(0), AT(64)), MF_ERR_SPEC, "family 'Silu'");
    REFUSED(mf_gen_render("silu_mul:entry=mine", AT(0), AT(64)), MF_ERR_SPEC,
            "'entry' is reserved");
}

VTest(gen_render, unknown_family)
{
    REFUSED(mf_gen_render("nosuchfamily:x=1", AT(0), AT(64)), MF_ERR_TEMPLATE,
            "template 'nosuchfamily.cu' not found");
}

/* The template ran: *source is set to NULL (documented), not left alone. */
VTest(gen_render, parameter_refused_by_the_template)
{
    char *source = (char *)&source;
    REFUSED(mf_gen_render("silu_mul:block=100,dtype=bf16,layout=masked,unroll=1", &source, NULL),
            MF_ERR_TEMPLATE, "silu_mul.cu:8: silu_mul: block must be a multiple of 32");
    cr_expect_null(source);
}

/* mf_gen_compile writes *out only on success: a refusal leaves it alone. */
static mf_status compile(const char *spec, const char *arch, unsigned emit)
{
    mf_kernel_binary *b = (mf_kernel_binary *)&b;
    mf_status s = mf_gen_compile(spec, arch, emit, &b);
    if (s != MF_OK)
        cr_expect_eq(b, (mf_kernel_binary *)&b, "*out written by a refused call");
    mf_kernel_binary_free(s == MF_OK ? b : NULL);
    return s;
}

/* Refused: *out keeps its guard bytes. */
VTest(gen_compile, null_arguments_or_nothing_to_emit)
{
    const char *m = "mf_gen_compile: null argument or nothing to emit";
    REFUSED(mf_gen_compile(silu_spec, "sm_90a", MF_EMIT_CUBIN, NULL), MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gen_compile(NULL, "sm_90a", MF_EMIT_CUBIN, AT(0)), MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gen_compile(silu_spec, "sm_90a", 0, AT(0)), MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gen_compile(silu_spec, "sm_90a", 4, AT(0)), MF_ERR_INVALID_ARGUMENT, m);
}

VTest(gen_compile, null_arch)
{
    REFUSED(compile(silu_spec, NULL, MF_EMIT_CUBIN), MF_ERR_INVALID_ARGUMENT,
            "arch '(null)' is not of the form sm_90a / sm_80");
}

VTest(gen_compile, malformed_spec)
{
    REFUSED(compile("silu_mul:block", "sm_90a", MF_EMIT_CUBIN), MF_ERR_SPEC, "has no '='");
}

VTest(gen_compile_isolated, null_arguments)
{
    REFUSED(mf_gen_compile_isolated(NULL, "sm_90a", MF_EMIT_CUBIN, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "mf_gen_compile_isolated: null argument");
    REFUSED(mf_gen_compile_isolated(silu_spec, "sm_90a", MF_EMIT_CUBIN, NULL),
            MF_ERR_INVALID_ARGUMENT, "mf_gen_compile_isolated: null argument");
}

/* The child refuses; its status and message come back, *out is left alone. */
VTest(gen_compile_isolated, refusals_of_the_child)
{
    REFUSED(mf_gen_compile_isolated(silu_spec, "sm90", MF_EMIT_CUBIN, AT(0)),
            MF_ERR_INVALID_ARGUMENT, "arch 'sm90' is not of the form");
    REFUSED(mf_gen_compile_isolated(silu_spec, "sm_90a", 0, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "nothing to emit");
    REFUSED(mf_gen_compile_isolated("silu_mul:block", "sm_90a", MF_EMIT_CUBIN, AT(0)), MF_ERR_SPEC,
            "has no '='");
}

VTest(gen_precompile, null_arguments)
{
    const char *m = "mf_gen_precompile: null argument or threads < 0";
    REFUSED(mf_gen_precompile(NULL, "sm_90a", 1, "x.mfa", AT(0)), MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gen_precompile("qwen3-30b-a3b", NULL, 1, "x.mfa", AT(0)),
            MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gen_precompile("qwen3-30b-a3b", "sm_90a", 1, NULL, AT(0)),
            MF_ERR_INVALID_ARGUMENT, m);
    REFUSED(mf_gen_precompile("qwen3-30b-a3b", "sm_90a", -1, "x.mfa", AT(0)),
            MF_ERR_INVALID_ARGUMENT, m);
}

static void expect_absent(const char *path)
{
    cr_expect_neq(access(path, F_OK), 0, "%s was written by a refused call", path);
}

VTest(gen_precompile, unknown_preset)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out.mfa", private_dir());
    REFUSED(mf_gen_precompile("no-such-model", "sm_90a", 1, path, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "no model preset 'no-such-model' (presets: ");
    expect_absent(path);
}

VTest(gen_precompile, missing_model_file)
{
    char path[256], model[256];
    const char *dir = private_dir();
    snprintf(path, sizeof path, "%s/out.mfa", dir);
    snprintf(model, sizeof model, "%s/absent.lua", dir);
    REFUSED(mf_gen_precompile(model, "sm_90a", 1, path, AT(0)), MF_ERR_IO,
            "cannot open model file");
    expect_absent(path);
}

/* The arch is not checked up front: every kernel fails (one line each on
 * stderr), then the call does, naming the target. Nothing is written. */
VTest(gen_precompile, malformed_arch)
{
    char path[256];
    snprintf(path, sizeof path, "%s/out.mfa", private_dir());
    REFUSED(mf_gen_precompile("qwen3-30b-a3b", "bogus", 0, path, AT(0)), MF_ERR_INVALID_ARGUMENT,
            "arch 'bogus' is not of the form sm_90a / sm_80");
    expect_absent(path);
}

VTest(jit_enable, null_context)
{
    REFUSED(mf_jit_enable(NULL), MF_ERR_INVALID_ARGUMENT, "mf_context_set_provider: ctx is NULL");
}
