/* SHA-256 vectors and the kernel archive: writer/reader round trips and the
 * reader's refusal of truncated, tampered and hostile archives. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "archive_writer.h"
#include "sha256.h"

/* ---- SHA-256 (FIPS 180-4 / NIST CSRC example vectors) --------------------- */

static void assert_sha256(const char *message, const char *expected_hex)
{
    uint8_t digest[32];
    char hex[65];
    mf_sha256(message, strlen(message), digest);
    mf_sha256_hex(digest, hex);
    cr_assert_str_eq(hex, expected_hex, "SHA-256(\"%s\")", message);
}

Test(sha256, empty_message)
{
    assert_sha256("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(sha256, abc)
{
    assert_sha256("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(sha256, nist_448_bit_message)
{
    assert_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, nist_896_bit_message)
{
    assert_sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

Test(sha256, million_a_in_odd_chunks)
{
    enum { total = 1000000 };
    static char a[997];
    memset(a, 'a', sizeof a);
    mf_sha256 s;
    mf_sha256_init(&s);
    /* Chunk sizes cycle through 1..997 so blocks split at every offset. */
    size_t fed = 0;
    for (size_t chunk = 1; fed < total; chunk = (chunk + 6) % sizeof a + 1) {
        size_t n = chunk < total - fed ? chunk : total - fed;
        mf_sha256_update(&s, a, n);
        fed += n;
    }
    uint8_t digest[32];
    char hex[65];
    mf_sha256_final(&s, digest);
    mf_sha256_hex(digest, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* ---- archive helpers ---------------------------------------------------------- */

#define SILU "silu_mul:block=256,dtype=bf16"
#define COMBINE "combine:block=128,dtype=bf16"
#define GEMM "gemm:bm=128,bn=128,dtype=e4m3"
#define GENERATOR "moeforge 0.1.0 test"

static const char ptx_text[] = ".version 8.8\n.target sm_90a\n.visible .entry mf_silu_mul_ptx() { ret; }\n";

static uint8_t cubin_silu[300];
static uint8_t cubin_combine[129];
static const uint8_t cubin_gemm[1] = {0x7f};

static uint64_t load_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void store_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void store_le64(uint8_t *p, uint64_t v)
{
    store_le32(p, (uint32_t)v);
    store_le32(p + 4, (uint32_t)(v >> 32));
}

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 31); /* includes zero bytes, as cubins do */
}

static void add_entry(mf_archive_writer *w, const char *spec, const char *target, const char *entry,
                      int is_ptx, const void *data, size_t size)
{
    cr_assert_eq(mf_archive_writer_add(w, spec, target, entry, is_ptx, data, size), MF_OK, "%s",
                 mf_last_error());
}

/* Four entries added out of order: cubins and PTX, two targets for one spec. */
static mf_archive_writer *sample_writer(void)
{
    fill_pattern(cubin_silu, sizeof cubin_silu, 1);
    fill_pattern(cubin_combine, sizeof cubin_combine, 2);
    mf_archive_writer *w;
    cr_assert_eq(mf_archive_writer_create(GENERATOR, &w), MF_OK);
    add_entry(w, SILU, "sm_90a", "mf_silu_cubin", 0, cubin_silu, sizeof cubin_silu);
    add_entry(w, GEMM, "sm_90a", "mf_gemm", 0, cubin_gemm, sizeof cubin_gemm);
    add_entry(w, SILU, "compute_90a", "mf_silu_ptx", 1, ptx_text, sizeof ptx_text);
    add_entry(w, COMBINE, "sm_90a", "mf_combine", 0, cubin_combine, sizeof cubin_combine);
    return w;
}

static void build_sample(void **data, size_t *size)
{
    mf_archive_writer *w = sample_writer();
    cr_assert_eq(mf_archive_writer_serialize(w, data, size), MF_OK);
    mf_archive_writer_destroy(w);
}

/* An exactly sized heap copy, so AddressSanitizer sees any read past the end. */
static uint8_t *exact_copy(const void *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    cr_assert_not_null(copy);
    memcpy(copy, data, size);
    return copy;
}

static size_t index_end(const uint8_t *archive)
{
    return load_le(archive + MF_ARCHIVE_HDR_INDEX_OFFSET, 8) + load_le(archive + MF_ARCHIVE_HDR_INDEX_SIZE, 8);
}

static uint8_t *record(uint8_t *archive, size_t i)
{
    return archive + load_le(archive + MF_ARCHIVE_HDR_INDEX_OFFSET, 8) + i * MF_ARCHIVE_RECORD_SIZE;
}

/* Recomputes both checksums after a deliberate edit, so only the structural checks remain. */
static void reseal(uint8_t *archive, size_t size)
{
    uint64_t off = load_le(archive + MF_ARCHIVE_HDR_INDEX_OFFSET, 8);
    uint64_t len = load_le(archive + MF_ARCHIVE_HDR_INDEX_SIZE, 8);
    if (off <= size && len <= size - off)
        mf_sha256(archive + off, len, archive + MF_ARCHIVE_HDR_INDEX_SHA);
    mf_sha256(archive, MF_ARCHIVE_HDR_SHA, archive + MF_ARCHIVE_HDR_SHA);
}

static void assert_entry(const mf_archive *a, const char *spec, const char *target, const char *entry,
                         int is_ptx, const void *data, size_t size)
{
    mf_archive_entry e;
    cr_assert_eq(mf_archive_find(a, spec, target, &e), MF_OK, "%s %s: %s", spec, target, mf_last_error());
    cr_assert_str_eq(e.spec, spec);
    cr_assert_str_eq(e.target, target);
    cr_assert_str_eq(e.entry, entry);
    cr_assert_eq(e.is_ptx, is_ptx);
    cr_assert_eq(e.size, size);
    cr_assert_eq(memcmp(e.data, data, size), 0, "payload of %s %s differs", spec, target);
}

static void assert_sample_contents(const mf_archive *a)
{
    cr_assert_eq(mf_archive_count(a), 4);
    cr_assert_str_eq(mf_archive_generator_version(a), GENERATOR);
    assert_entry(a, SILU, "sm_90a", "mf_silu_cubin", 0, cubin_silu, sizeof cubin_silu);
    assert_entry(a, SILU, "compute_90a", "mf_silu_ptx", 1, ptx_text, sizeof ptx_text);
    assert_entry(a, COMBINE, "sm_90a", "mf_combine", 0, cubin_combine, sizeof cubin_combine);
    assert_entry(a, GEMM, "sm_90a", "mf_gemm", 0, cubin_gemm, sizeof cubin_gemm);
}

/* Opens an exactly sized copy of the bytes and closes it again; returns the open status. */
static mf_status open_status(const void *data, size_t size)
{
    uint8_t *copy = exact_copy(data, size);
    mf_archive *a = NULL;
    mf_status st = mf_archive_open_memory(copy, size, "test", &a);
    cr_assert_eq(st == MF_OK, a != NULL);
    mf_archive_close(a);
    free(copy);
    return st;
}

/* ---- round trips ---------------------------------------------------------------- */

Test(archive, round_trip_in_memory)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "sample", &a), MF_OK, "%s", mf_last_error());
    assert_sample_contents(a);
    mf_archive_close(a);
    free(data);
}

Test(archive, index_is_sorted_and_payloads_aligned)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "sample", &a), MF_OK);
    const char *expected[][2] = {{COMBINE, "sm_90a"}, {GEMM, "sm_90a"}, {SILU, "compute_90a"}, {SILU, "sm_90a"}};
    for (size_t i = 0; i < 4; i++) {
        mf_archive_entry e;
        cr_assert_eq(mf_archive_entry_at(a, i, &e), MF_OK);
        cr_assert_str_eq(e.spec, expected[i][0]);
        cr_assert_str_eq(e.target, expected[i][1]);
        cr_assert_eq(((const uint8_t *)e.data - (const uint8_t *)data) % MF_ARCHIVE_ALIGN, 0);
    }
    mf_archive_entry e;
    cr_assert_eq(mf_archive_entry_at(a, 4, &e), MF_ERR_INVALID_ARGUMENT);
    mf_archive_close(a);
    free(data);
}

Test(archive, absent_kernels_are_not_found)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "sample", &a), MF_OK);
    mf_archive_entry e;
    cr_assert_eq(mf_archive_find(a, GEMM, "compute_90a", &e), MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(mf_archive_find(a, SILU, "sm_100a", &e), MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(mf_archive_find(a, "silu_mul:block=128,dtype=bf16", "sm_90a", &e), MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(mf_archive_find(a, "", "", &e), MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(mf_archive_find(a, "zzz", "sm_90a", &e), MF_ERR_KERNEL_NOT_FOUND);
    mf_archive_close(a);
    free(data);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t files = 0;
    for (struct dirent *de; (de = readdir(d));)
        files += de->d_name[0] != '.';
    closedir(d);
    return files;
}

Test(archive, round_trip_through_file)
{
    char dir[] = "/tmp/mf_archive_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/kernels.mfa", dir);

    /* An older archive at the path is replaced atomically. */
    mf_archive_writer *w;
    cr_assert_eq(mf_archive_writer_create(GENERATOR, &w), MF_OK);
    cr_assert_eq(mf_archive_writer_add(w, GEMM, "sm_90a", "old", 0, "old", 3), MF_OK);
    cr_assert_eq(mf_archive_writer_write(w, path), MF_OK, "%s", mf_last_error());
    mf_archive_writer_destroy(w);
    w = sample_writer();
    cr_assert_eq(mf_archive_writer_write(w, path), MF_OK, "%s", mf_last_error());
    mf_archive_writer_destroy(w);

    mf_archive *a;
    cr_assert_eq(mf_archive_open_file(path, &a), MF_OK, "%s", mf_last_error());
    assert_sample_contents(a);
    mf_archive_close(a);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    cr_assert_eq(count_files(dir), 1, "temporary files left behind");
    unlink(path);
    rmdir(dir);
}

Test(archive, failed_write_leaves_no_temporary_file)
{
    char dir[] = "/tmp/mf_archive_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/taken", dir);
    cr_assert_eq(mkdir(path, 0755), 0); /* rename onto a directory fails */
    mf_archive_writer *w = sample_writer();
    cr_assert_eq(mf_archive_writer_write(w, path), MF_ERR_IO);
    mf_archive_writer_destroy(w);
    cr_assert_eq(count_files(dir), 1, "temporary file left behind");
    rmdir(path);
    rmdir(dir);
}

Test(archive, open_file_errors)
{
    mf_archive *a = (mf_archive *)1;
    cr_assert_eq(mf_archive_open_file("/nonexistent/dir/kernels.mfa", &a), MF_ERR_IO);
    cr_assert_null(a);
    char dir[] = "/tmp/mf_archive_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(mf_archive_open_file(dir, &a), MF_ERR_IO, "a directory is not an archive");
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/empty.mfa", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_eq(mf_archive_open_file(path, &a), MF_ERR_ARCHIVE);
    unlink(path);
    rmdir(dir);
}

Test(archive, duplicate_add_replaces_the_first)
{
    mf_archive_writer *w;
    cr_assert_eq(mf_archive_writer_create(GENERATOR, &w), MF_OK);
    cr_assert_eq(mf_archive_writer_add(w, SILU, "sm_90a", "first", 0, "11111", 5), MF_OK);
    cr_assert_eq(mf_archive_writer_add(w, SILU, "compute_90a", "ptx", 1, "p", 2), MF_OK);
    cr_assert_eq(mf_archive_writer_add(w, SILU, "sm_90a", "second", 0, "222", 3), MF_OK);
    void *data;
    size_t size;
    cr_assert_eq(mf_archive_writer_serialize(w, &data, &size), MF_OK);
    mf_archive_writer_destroy(w);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "dup", &a), MF_OK, "%s", mf_last_error());
    cr_assert_eq(mf_archive_count(a), 2);
    assert_entry(a, SILU, "sm_90a", "second", 0, "222", 3);
    mf_archive_close(a);
    free(data);
}

Test(archive, ptx_payloads_are_nul_terminated)
{
    mf_archive_writer *w;
    cr_assert_eq(mf_archive_writer_create(GENERATOR, &w), MF_OK);
    cr_assert_eq(mf_archive_writer_add(w, SILU, "compute_90a", "e", 1, ptx_text, strlen(ptx_text)), MF_OK);
    void *data;
    size_t size;
    cr_assert_eq(mf_archive_writer_serialize(w, &data, &size), MF_OK);
    mf_archive_writer_destroy(w);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "ptx", &a), MF_OK);
    assert_entry(a, SILU, "compute_90a", "e", 1, ptx_text, sizeof ptx_text);
    mf_archive_close(a);
    free(data);
}

Test(archive, zero_entries)
{
    mf_archive_writer *w;
    cr_assert_eq(mf_archive_writer_create("empty-gen", &w), MF_OK);
    void *data;
    size_t size;
    cr_assert_eq(mf_archive_writer_serialize(w, &data, &size), MF_OK);
    mf_archive_writer_destroy(w);
    cr_assert_eq(size, MF_ARCHIVE_HEADER_SIZE);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "empty", &a), MF_OK, "%s", mf_last_error());
    cr_assert_eq(mf_archive_count(a), 0);
    cr_assert_str_eq(mf_archive_generator_version(a), "empty-gen");
    mf_archive_entry e;
    cr_assert_eq(mf_archive_find(a, SILU, "sm_90a", &e), MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(mf_archive_entry_at(a, 0, &e), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_archive_has_target(a, "sm_90a"), 0);
    mf_archive_close(a);
    free(data);
}

Test(archive, has_target)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "sample", &a), MF_OK);
    cr_assert_eq(mf_archive_has_target(a, "sm_90a"), 1);
    cr_assert_eq(mf_archive_has_target(a, "compute_90a"), 1);
    cr_assert_eq(mf_archive_has_target(a, "sm_90"), 0);
    cr_assert_eq(mf_archive_has_target(a, "sm_100a"), 0);
    cr_assert_eq(mf_archive_has_target(a, "compute_100a"), 0);
    mf_archive_close(a);
    free(data);
}

Test(archive, writer_rejects_bad_arguments)
{
    char long_version[MF_ARCHIVE_GENERATOR_MAX + 1];
    memset(long_version, 'v', sizeof long_version - 1);
    long_version[sizeof long_version - 1] = '\0';
    mf_archive_writer *w;
    cr_assert_eq(mf_archive_writer_create(long_version, &w), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_archive_writer_create(GENERATOR, &w), MF_OK);
    cr_assert_eq(mf_archive_writer_add(w, "", "sm_90a", "e", 0, "x", 1), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_archive_writer_add(w, SILU, NULL, "e", 0, "x", 1), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_archive_writer_add(w, SILU, "sm_90a", "", 0, "x", 1), MF_ERR_INVALID_ARGUMENT);
    cr_assert_eq(mf_archive_writer_add(w, SILU, "sm_90a", "e", 0, "x", 0), MF_ERR_INVALID_ARGUMENT);
    mf_archive_writer_destroy(w);
}

/* ---- refusals ---------------------------------------------------------------------- */

Test(archive, every_truncation_is_refused)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    cr_assert_eq(open_status(data, size), MF_OK);
    for (size_t len = 0; len < size; len++)
        cr_assert_eq(open_status(data, len), MF_ERR_ARCHIVE, "prefix of %zu of %zu bytes", len, size);
    free(data);
}

Test(archive, bit_flips_in_header_or_index_are_refused_at_open)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    uint8_t *bytes = data;
    size_t end = index_end(bytes);
    cr_assert_gt(end, MF_ARCHIVE_HEADER_SIZE + 4 * MF_ARCHIVE_RECORD_SIZE);
    for (size_t bit = 0; bit < 8 * end; bit++) {
        bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        mf_status expected = bit / 8 >= MF_ARCHIVE_HDR_VERSION && bit / 8 < MF_ARCHIVE_HDR_VERSION + 4
                                 ? MF_ERR_ARCHIVE_VERSION
                                 : MF_ERR_ARCHIVE;
        cr_assert_eq(open_status(bytes, size), expected, "bit %zu flipped", bit);
        bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    free(data);
}

Test(archive, bit_flip_in_payload_is_refused_at_find)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "tampered.mfa", &a), MF_OK);
    mf_archive_entry e;
    cr_assert_eq(mf_archive_entry_at(a, 3, &e), MF_OK);
    cr_assert_str_eq(e.spec, SILU);
    cr_assert_str_eq(e.target, "sm_90a");
    ((uint8_t *)data)[(const uint8_t *)e.data - (const uint8_t *)data + 123] ^= 0x10;
    for (int attempt = 0; attempt < 2; attempt++) {
        cr_assert_eq(mf_archive_find(a, SILU, "sm_90a", &e), MF_ERR_ARCHIVE, "attempt %d", attempt);
        cr_assert_not_null(strstr(mf_last_error(), SILU), "message: %s", mf_last_error());
        cr_assert_not_null(strstr(mf_last_error(), "tampered.mfa"), "message: %s", mf_last_error());
    }
    assert_entry(a, SILU, "compute_90a", "mf_silu_ptx", 1, ptx_text, sizeof ptx_text);
    assert_entry(a, GEMM, "sm_90a", "mf_gemm", 0, cubin_gemm, sizeof cubin_gemm);
    mf_archive_close(a);
    free(data);
}

struct finder {
    const mf_archive *archive;
    mf_status status;
};

static void *find_silu(void *arg)
{
    struct finder *f = arg;
    mf_archive_entry e;
    f->status = mf_archive_find(f->archive, SILU, "sm_90a", &e);
    if (f->status == MF_OK && memcmp(e.data, cubin_silu, sizeof cubin_silu) != 0)
        f->status = MF_ERR_ARCHIVE;
    return NULL;
}

Test(archive, concurrent_first_finds_agree)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_memory(data, size, "sample", &a), MF_OK);
    enum { threads = 8 };
    pthread_t tid[threads];
    struct finder finders[threads];
    for (int i = 0; i < threads; i++) {
        finders[i] = (struct finder){a, MF_ERR_INVALID_ARGUMENT};
        cr_assert_eq(pthread_create(&tid[i], NULL, find_silu, &finders[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        cr_assert_eq(finders[i].status, MF_OK, "thread %d", i);
    }
    mf_archive_close(a);
    free(data);
}

Test(archive, other_format_version_is_refused)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    uint8_t *bytes = data;
    uint32_t versions[] = {0, 2, MF_ARCHIVE_FORMAT_VERSION + 0x100, UINT32_MAX};
    for (size_t i = 0; i < sizeof versions / sizeof *versions; i++) {
        store_le32(bytes + MF_ARCHIVE_HDR_VERSION, versions[i]);
        reseal(bytes, size);
        cr_assert_eq(open_status(bytes, size), MF_ERR_ARCHIVE_VERSION, "version %u", versions[i]);
    }
    /* A newer version's header may be shorter than ours: the version decides first. */
    cr_assert_eq(open_status(bytes, MF_ARCHIVE_HDR_VERSION + 4), MF_ERR_ARCHIVE_VERSION);
    free(data);
}

Test(archive, wrong_magic_is_refused)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    uint8_t *bytes = data;
    memcpy(bytes, "\x7f" "ELF\2\1\1\0", 8);
    reseal(bytes, size);
    cr_assert_eq(open_status(bytes, size), MF_ERR_ARCHIVE);
    cr_assert_eq(open_status("MFKARCH", 7), MF_ERR_ARCHIVE);
    free(data);
}

/* One structural defect, with checksums recomputed so that only the bounds checks can catch it. */
typedef void (*defect_fn)(uint8_t *archive, size_t size);

static void payload_past_end(uint8_t *a, size_t size)
{
    store_le64(record(a, 0) + MF_ARCHIVE_REC_PAYLOAD_OFFSET, (size + 63) / 64 * 64);
}
static void payload_size_past_end(uint8_t *a, size_t size)
{
    store_le64(record(a, 3) + MF_ARCHIVE_REC_PAYLOAD_SIZE, size);
}
static void payload_offset_wraps(uint8_t *a, size_t size)
{
    (void)size;
    store_le64(record(a, 1) + MF_ARCHIVE_REC_PAYLOAD_OFFSET, UINT64_MAX - 63);
    store_le64(record(a, 1) + MF_ARCHIVE_REC_PAYLOAD_SIZE, 128);
}
static void payload_misaligned(uint8_t *a, size_t size)
{
    (void)size;
    uint8_t *rec = record(a, 2);
    store_le64(rec + MF_ARCHIVE_REC_PAYLOAD_OFFSET, load_le(rec + MF_ARCHIVE_REC_PAYLOAD_OFFSET, 8) + 8);
}
static void payload_empty(uint8_t *a, size_t size)
{
    (void)size;
    store_le64(record(a, 0) + MF_ARCHIVE_REC_PAYLOAD_SIZE, 0);
}
static void string_offset_past_table(uint8_t *a, size_t size)
{
    (void)size;
    store_le32(record(a, 0) + MF_ARCHIVE_REC_SPEC, 0xfffffff0u);
}
static void string_length_wraps(uint8_t *a, size_t size)
{
    (void)size;
    store_le32(record(a, 0) + MF_ARCHIVE_REC_TARGET + 4, UINT32_MAX);
}
static void string_without_nul(uint8_t *a, size_t size)
{
    (void)size;
    uint8_t *field = record(a, 1) + MF_ARCHIVE_REC_ENTRY + 4;
    store_le32(field, (uint32_t)load_le(field, 4) - 1);
}
static void string_empty(uint8_t *a, size_t size)
{
    (void)size;
    store_le32(record(a, 1) + MF_ARCHIVE_REC_SPEC + 4, 0);
}
static void unknown_flag(uint8_t *a, size_t size)
{
    (void)size;
    store_le32(record(a, 0) + MF_ARCHIVE_REC_FLAGS, 2);
}
static void records_out_of_order(uint8_t *a, size_t size)
{
    (void)size;
    uint8_t tmp[MF_ARCHIVE_RECORD_SIZE];
    memcpy(tmp, record(a, 0), sizeof tmp);
    memcpy(record(a, 0), record(a, 1), sizeof tmp);
    memcpy(record(a, 1), tmp, sizeof tmp);
}
static void duplicate_record(uint8_t *a, size_t size)
{
    (void)size;
    memcpy(record(a, 1), record(a, 0), MF_ARCHIVE_RECORD_SIZE);
}
static void count_exceeds_index(uint8_t *a, size_t size)
{
    (void)size;
    store_le64(a + MF_ARCHIVE_HDR_COUNT, load_le(a + MF_ARCHIVE_HDR_INDEX_SIZE, 8) / MF_ARCHIVE_RECORD_SIZE + 1);
}
static void huge_count(uint8_t *a, size_t size)
{
    (void)size;
    store_le64(a + MF_ARCHIVE_HDR_COUNT, UINT64_MAX / 2);
}
static void index_past_end(uint8_t *a, size_t size)
{
    store_le64(a + MF_ARCHIVE_HDR_INDEX_SIZE, size);
}
static void index_offset_wraps(uint8_t *a, size_t size)
{
    (void)size;
    store_le64(a + MF_ARCHIVE_HDR_INDEX_OFFSET, UINT64_MAX - 8);
}
static void index_overlaps_header(uint8_t *a, size_t size)
{
    (void)size;
    store_le64(a + MF_ARCHIVE_HDR_INDEX_OFFSET, 0);
}
static void generator_without_nul(uint8_t *a, size_t size)
{
    (void)size;
    memset(a + MF_ARCHIVE_HDR_GENERATOR, 'g', MF_ARCHIVE_GENERATOR_MAX);
}
static void file_size_mismatch(uint8_t *a, size_t size)
{
    store_le64(a + MF_ARCHIVE_HDR_FILE_SIZE, size - 1);
}
static void header_size_mismatch(uint8_t *a, size_t size)
{
    (void)size;
    store_le32(a + MF_ARCHIVE_HDR_HEADER_SIZE, 128);
}

Test(archive, structural_defects_with_valid_checksums_are_refused)
{
    static const struct { const char *name; defect_fn apply; } defects[] = {
        {"payload past end", payload_past_end},
        {"payload size past end", payload_size_past_end},
        {"payload offset wraps", payload_offset_wraps},
        {"payload misaligned", payload_misaligned},
        {"payload empty", payload_empty},
        {"string offset past table", string_offset_past_table},
        {"string length wraps", string_length_wraps},
        {"string without NUL", string_without_nul},
        {"string empty", string_empty},
        {"unknown flag", unknown_flag},
        {"records out of order", records_out_of_order},
        {"duplicate record", duplicate_record},
        {"count exceeds index", count_exceeds_index},
        {"huge count", huge_count},
        {"index past end", index_past_end},
        {"index offset wraps", index_offset_wraps},
        {"index overlaps header", index_overlaps_header},
        {"generator without NUL", generator_without_nul},
        {"file size mismatch", file_size_mismatch},
        {"header size mismatch", header_size_mismatch},
    };
    void *data;
    size_t size;
    build_sample(&data, &size);
    for (size_t i = 0; i < sizeof defects / sizeof *defects; i++) {
        uint8_t *bytes = exact_copy(data, size);
        defects[i].apply(bytes, size);
        reseal(bytes, size);
        cr_assert_eq(open_status(bytes, size), MF_ERR_ARCHIVE, "%s", defects[i].name);
        free(bytes);
    }
    free(data);
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Every entry of an archive that opened must be findable or refused, never read out of bounds. */
static void find_every_entry(const mf_archive *a)
{
    for (size_t i = 0; i < mf_archive_count(a); i++) {
        mf_archive_entry e, found;
        cr_assert_eq(mf_archive_entry_at(a, i, &e), MF_OK);
        mf_status st = mf_archive_find(a, e.spec, e.target, &found);
        cr_assert(st == MF_OK || st == MF_ERR_ARCHIVE, "status %d", st);
    }
}

Test(archive, random_resealed_mutations_never_crash)
{
    void *data;
    size_t size;
    build_sample(&data, &size);
    size_t end = index_end(data);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t opened = 0;
    for (int iteration = 0; iteration < 20000; iteration++) {
        uint8_t *bytes = exact_copy(data, size);
        int edits = 1 + (int)(next_random(&rng) % 4);
        for (int k = 0; k < edits; k++)
            bytes[MF_ARCHIVE_HDR_COUNT + next_random(&rng) % (end - MF_ARCHIVE_HDR_COUNT)] = (uint8_t)next_random(&rng);
        reseal(bytes, size);
        mf_archive *a = NULL;
        mf_status st = mf_archive_open_memory(bytes, size, "fuzz", &a);
        cr_assert(st == MF_OK || st == MF_ERR_ARCHIVE || st == MF_ERR_OUT_OF_MEMORY, "status %d", st);
        if (st == MF_OK) {
            find_every_entry(a);
            opened++;
        }
        mf_archive_close(a);
        free(bytes);
    }
    cr_assert_gt(opened, 0, "no mutation kept the archive valid; the loop tested only refusals");
    free(data);
}
