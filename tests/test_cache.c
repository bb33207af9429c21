/* CPU suite: the on-disk kernel cache. Keys, hit after miss, corrupt and
 * truncated entries, stale indexes, degradations (read-only, untrusted,
 * disabled), directory resolution, LRU eviction, clearing, and 2 and 4
 * processes warming one directory at once. Compiles need NVRTC, not a GPU. */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "disk_cache.h"
#include "moeforge_gen.h"
#include "warmup.h"

/* Not in the built-in set, quick to compile (NVRTC takes ~0.1 s each). */
#define SPEC_A "silu_mul:block=64,dtype=bf16,layout=masked,unroll=1"
#define SPEC_B "silu_mul:block=96,dtype=bf16,layout=masked,unroll=1"
#define SPEC_C "silu_mul:block=160,dtype=bf16,layout=masked,unroll=1"

#define OK_OR_FAIL(call) cr_assert_eq((call), MF_OK, "%s: %s", #call, mf_last_error())

static char dirs[8][64];
static int dir_count;

static void setup(void)
{
    setenv("MOEFORGE_LOG", "warn", 1); /* before the first log call fixes the level */
    unsetenv("MOEFORGE_CACHE");        /* meson's test environment turns it off */
    unsetenv("MOEFORGE_CACHE_MAX_BYTES");
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    for (int i = 0; i < dir_count; i++) {
        chmod(dirs[i], 0700);
        nftw(dirs[i], remove_one, 8, FTW_DEPTH | FTW_PHYS);
    }
}

TestSuite(cache, .init = setup, .fini = teardown, .timeout = 120);

static char *fresh_dir(void)
{
    cr_assert_lt(dir_count, 8);
    char *d = dirs[dir_count++];
    strcpy(d, "/tmp/mf_cache_test_XXXXXX");
    cr_assert(mkdtemp(d));
    return d;
}

/* ---- stderr capture, for the warnings the degradations promise --------------------- */

static int saved_stderr = -1;
static char capture_path[64];

static void capture_begin(void)
{
    strcpy(capture_path, "/tmp/mf_stderr_XXXXXX");
    int fd = mkstemp(capture_path);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(void)
{
    static char text[16384];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(capture_path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    unlink(capture_path);
    return text;
}

/* ---- helpers over the layout -------------------------------------------------------- */

static void canonical(const char *spec, char *out)
{
    OK_OR_FAIL(mf_gen_canonical_spec(spec, out, 1024));
}

/* Path of the content entry that the spec index of (spec, target) names. */
static void content_path(const char *dir, const char *spec, const char *target, char *path)
{
    char c[1024], key[MF_CACHE_KEY_HEX], name[96];
    mf_archive *index;
    canonical(spec, c);
    mf_disk_cache_spec_key(c, target, key);
    mf_disk_cache_index_name(key, name, sizeof name);
    OK_OR_FAIL(mf_disk_cache_open(dir, name, "index", &index));
    OK_OR_FAIL(mf_disk_cache_index_key(index, c, target, key));
    mf_archive_close(index);
    mf_disk_cache_content_name(key, name, sizeof name);
    sprintf(path, "%s/%s", dir, name);
}

static void index_path(const char *dir, const char *spec, const char *target, char *path)
{
    char c[1024], key[MF_CACHE_KEY_HEX], name[96];
    canonical(spec, c);
    mf_disk_cache_spec_key(c, target, key);
    mf_disk_cache_index_name(key, name, sizeof name);
    sprintf(path, "%s/%s", dir, name);
}

/* What the runtime finds for spec, as mf_disk_cache_find does per target. */
static mf_status runtime_lookup(const char *dir, const char *spec, const char *target)
{
    char c[1024];
    mf_archive *a = NULL;
    canonical(spec, c);
    mf_status s = mf_disk_cache_lookup(dir, c, target, &a);
    if (s == MF_OK)
        mf_archive_close(a);
    return s;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name), k = strlen(suffix);
        n += e->d_name[0] != '.' && len >= k && strcmp(e->d_name + len - k, suffix) == 0;
    }
    if (d)
        closedir(d);
    return n;
}

static mf_cache_outcome ensure(mf_cache *c, const char *spec, const char *target)
{
    mf_cache_outcome got;
    OK_OR_FAIL(mf_cache_ensure(c, spec, target, &got));
    return got;
}

/* ---- keys ------------------------------------------------------------------------------ */

static mf_cache_key_input with_field(mf_cache_key_input in, int field, const char *value)
{
    switch (field) {
    case 0: in.spec = value; break;
    case 1: in.target = value; break;
    case 2: in.source = value; break;
    case 3: in.options = value; break;
    case 4: in.nvrtc = value; break;
    default: in.generator = value; break;
    }
    return in;
}

Test(cache, key_covers_every_input)
{
    mf_cache_key_input base = {"silu_mul:block=64", "sm_90a", "source", "--std=c++17",
                               "13.0 libnvrtc.so.13 1", "0.1.0"};
    const char *changed[] = {"silu_mul:block=96", "sm_100a", "source ", "--std=c++20",
                             "13.1 libnvrtc.so.13 1", "0.2.0"};
    char k0[MF_CACHE_KEY_HEX], k[MF_CACHE_KEY_HEX];
    mf_cache_content_key(&base, k0);
    mf_cache_content_key(&base, k);
    cr_assert_str_eq(k0, k, "same inputs, same key");
    for (int i = 0; i < 6; i++) {
        mf_cache_key_input in = with_field(base, i, changed[i]);
        mf_cache_content_key(&in, k);
        cr_expect_str_neq(k0, k, "changing field %d left the key alone", i);
    }
    /* NVRTC's build (the library's size) counts, not only its version */
    mf_cache_key_input build = with_field(base, 4, "13.0 libnvrtc.so.13 2");
    mf_cache_content_key(&build, k);
    cr_expect_str_neq(k0, k);
    /* fields are delimited: moving a byte from one to the next changes the key */
    mf_cache_key_input shifted = with_field(with_field(base, 2, "sourc"), 3, "e--std=c++17");
    mf_cache_content_key(&shifted, k);
    cr_expect_str_neq(k0, k);
}

Test(cache, key_options_are_the_compilers)
{
    mf_kernel_binary *b;
    OK_OR_FAIL(mf_gen_compile(SPEC_A, "sm_90a", MF_EMIT_CUBIN, &b));
    cr_assert_str_eq(b->options, MF_CACHE_COMPILE_OPTIONS);
    const char *nvrtc;
    OK_OR_FAIL(mf_cache_nvrtc_identity(&nvrtc));
    char version[16];
    snprintf(version, sizeof version, "%d.%d ", b->nvrtc_major, b->nvrtc_minor);
    cr_assert(strncmp(nvrtc, version, strlen(version)) == 0, "%s", nvrtc);
    mf_kernel_binary_free(b);
}

Test(cache, spec_key_depends_on_spec_and_target)
{
    char a[MF_CACHE_KEY_HEX], b[MF_CACHE_KEY_HEX], c[MF_CACHE_KEY_HEX];
    mf_disk_cache_spec_key(SPEC_A, "sm_90a", a);
    mf_disk_cache_spec_key(SPEC_B, "sm_90a", b);
    mf_disk_cache_spec_key(SPEC_A, "compute_90a", c);
    cr_expect_str_neq(a, b);
    cr_expect_str_neq(a, c);
    cr_expect_eq(strlen(a), 64);
}

/* ---- hits, misses, bad entries -------------------------------------------------------- */

Test(cache, hit_after_miss)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/sub/cache", fresh_dir()); /* created with its parents */
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    cr_assert_str_eq(mf_cache_directory(c), dir);
    cr_assert(mf_cache_persistent(c));
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
    cr_assert_eq(runtime_lookup(dir, SPEC_A, "sm_90a"), MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_COMPILED);
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_HIT);
    cr_assert_eq(count_files(dir, ".mfa"), 1);
    cr_assert_eq(count_files(dir, ".idx"), 1);
    OK_OR_FAIL(runtime_lookup(dir, SPEC_A, "sm_90a"));
    mf_archive *a;
    mf_archive_entry e;
    OK_OR_FAIL(mf_cache_open_entry(c, SPEC_A, "sm_90a", &a));
    OK_OR_FAIL(mf_archive_entry_at(a, 0, &e));
    cr_expect(!e.is_ptx && memcmp(e.data, "\177ELF", 4) == 0, "not a cubin");
    cr_expect(strncmp(e.entry, "mf_silu_mul_", 12) == 0, "%s", e.entry);
    mf_archive_close(a);
    mf_cache_close(c);
    /* another process (here: another cache object) hits too */
    OK_OR_FAIL(mf_cache_open(dir, &c));
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_HIT);
    mf_cache_close(c);
}

Test(cache, ptx_target_holds_ptx)
{
    char *dir = fresh_dir();
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    cr_assert_eq(ensure(c, SPEC_A, "compute_90a"), MF_CACHE_COMPILED);
    mf_archive *a;
    mf_archive_entry e;
    OK_OR_FAIL(mf_cache_open_entry(c, SPEC_A, "compute_90a", &a));
    OK_OR_FAIL(mf_archive_entry_at(a, 0, &e));
    cr_expect(e.is_ptx && strstr(e.data, e.entry), "not the kernel's PTX");
    mf_archive_close(a);
    cr_expect_eq(runtime_lookup(dir, SPEC_A, "sm_90a"), MF_ERR_KERNEL_NOT_FOUND);
    cr_expect_eq(mf_cache_ensure(c, SPEC_A, "gfx90a", NULL), MF_ERR_INVALID_ARGUMENT);
    mf_cache_close(c);
}

static void damage(const char *path, int truncate_it)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    if (truncate_it) {
        cr_assert_eq(truncate(path, st.st_size / 2), 0);
        return;
    }
    int fd = open(path, O_RDWR);
    unsigned char byte;
    cr_assert_eq(pread(fd, &byte, 1, st.st_size - 1), 1);
    byte ^= 0x40; /* inside the payload, which ends the file */
    cr_assert_eq(pwrite(fd, &byte, 1, st.st_size - 1), 1);
    close(fd);
}

/* The runtime sees a damaged entry as a miss (with a warning); the generator
 * compiles it again and replaces it (with a warning). */
static void damaged_entry_is_recompiled(int truncate_it)
{
    char *dir = fresh_dir(), path[512];
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_COMPILED);
    content_path(dir, SPEC_A, "sm_90a", path);
    damage(path, truncate_it);
    capture_begin();
    mf_status runtime = runtime_lookup(dir, SPEC_A, "sm_90a");
    mf_cache_outcome got = ensure(c, SPEC_A, "sm_90a");
    char *warnings = capture_end();
    cr_assert_eq(runtime, MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(got, MF_CACHE_COMPILED);
    cr_assert(strstr(warnings, "warn") && strstr(warnings, "cache entry"), "%s", warnings);
    OK_OR_FAIL(runtime_lookup(dir, SPEC_A, "sm_90a"));
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_HIT);
    mf_cache_close(c);
}

Test(cache, corrupt_entry_is_recompiled)
{
    damaged_entry_is_recompiled(0);
}

Test(cache, truncated_entry_is_recompiled)
{
    damaged_entry_is_recompiled(1);
}

Test(cache, corrupt_index_is_a_miss_and_is_rewritten)
{
    char *dir = fresh_dir(), path[512];
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    ensure(c, SPEC_A, "sm_90a");
    index_path(dir, SPEC_A, "sm_90a", path);
    damage(path, 0);
    capture_begin();
    mf_status runtime = runtime_lookup(dir, SPEC_A, "sm_90a");
    mf_cache_outcome got = ensure(c, SPEC_A, "sm_90a");
    char *warnings = capture_end();
    cr_assert_eq(runtime, MF_ERR_KERNEL_NOT_FOUND);
    cr_assert_eq(got, MF_CACHE_HIT, "the content entry was fine");
    cr_assert(strstr(warnings, "cache index"), "%s", warnings);
    OK_OR_FAIL(runtime_lookup(dir, SPEC_A, "sm_90a"));
    mf_cache_close(c);
}

static void write_template(const char *dir, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, "%s/probe.cu", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(body, f);
    fclose(f);
}

/* The key covers the rendered source: a template edit recompiles and repoints. */
Test(cache, changed_source_recompiles_and_repoints_the_index)
{
    char *dir = fresh_dir(), *templates = fresh_dir(), before[512], after[512];
    setenv("MOEFORGE_TEMPLATE_DIR", templates, 1);
    write_template(templates, "extern \"C\" __global__ void $(entry)(int *x) { x[0] = 1; }\n");
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    cr_assert_eq(ensure(c, "probe:v=1", "sm_90a"), MF_CACHE_COMPILED);
    content_path(dir, "probe:v=1", "sm_90a", before);
    write_template(templates, "extern \"C\" __global__ void $(entry)(int *x) { x[0] = 2; }\n");
    cr_assert_eq(ensure(c, "probe:v=1", "sm_90a"), MF_CACHE_COMPILED);
    content_path(dir, "probe:v=1", "sm_90a", after);
    cr_assert_str_neq(before, after, "index still names the old content key");
    cr_assert_eq(ensure(c, "probe:v=1", "sm_90a"), MF_CACHE_HIT);
    mf_cache_close(c);
}

/* ---- degradations ---------------------------------------------------------------------- */

/* Runs in a child that cannot write dir (as "nobody" when we are root, since
 * root writes anywhere): the cache is read, new kernels stay in memory. */
static int read_only_child(const char *dir)
{
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 10;
    capture_begin();
    mf_cache *c;
    mf_cache_outcome a, b;
    mf_archive *entry;
    int rc = mf_cache_open(dir, &c) != MF_OK                                       ? 11
             : !mf_cache_directory(c) || mf_cache_persistent(c)                      ? 12
             : mf_cache_ensure(c, SPEC_A, "sm_90a", &a) != MF_OK || a != MF_CACHE_HIT ? 13
             : mf_cache_ensure(c, SPEC_B, "sm_90a", &b) != MF_OK || b != MF_CACHE_COMPILED ? 14
             : mf_cache_open_entry(c, SPEC_B, "sm_90a", &entry) != MF_OK               ? 15
                                                                                       : 0;
    if (rc == 0)
        mf_archive_close(entry);
    char *warnings = capture_end();
    if (rc == 0 && !strstr(warnings, "read-only"))
        rc = 16;
    mf_cache_close(c);
    return rc;
}

Test(cache, read_only_directory_degrades_to_memory_with_a_warning)
{
    char *dir = fresh_dir();
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    ensure(c, SPEC_A, "sm_90a");
    mf_cache_close(c);
    if (geteuid() == 0)
        cr_assert_eq(chown(dir, 65534, 65534), 0);
    cr_assert_eq(chmod(dir, 0500), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(read_only_child(dir));
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child check %d failed",
              WEXITSTATUS(status));
    cr_assert_eq(count_files(dir, ".mfa"), 1, "the read-only directory was written");
}

Test(cache, untrusted_directory_is_not_used)
{
    char *dir = fresh_dir();
    cr_assert_eq(chmod(dir, 0777), 0);
    capture_begin();
    mf_status check = mf_disk_cache_check_dir(dir);
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    char *warnings = capture_end();
    cr_assert_eq(check, MF_ERR_IO);
    cr_assert(strstr(warnings, "writable by group or others"), "%s", warnings);
    cr_assert_null(mf_cache_directory(c));
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_COMPILED);
    mf_archive *a;
    OK_OR_FAIL(mf_cache_open_entry(c, SPEC_A, "sm_90a", &a)); /* served from memory */
    mf_archive_close(a);
    cr_assert_eq(count_files(dir, ".mfa"), 0, "an untrusted directory was written");
    mf_cache_close(c);
    if (geteuid() == 0) { /* owned by someone else */
        cr_assert_eq(chmod(dir, 0700), 0);
        cr_assert_eq(chown(dir, 65534, 65534), 0);
        capture_begin();
        check = mf_disk_cache_check_dir(dir);
        warnings = capture_end();
        cr_assert_eq(check, MF_ERR_IO);
        cr_assert(strstr(warnings, "not by this user"), "%s", warnings);
    }
}

Test(cache, cache_off_keeps_kernels_in_memory)
{
    char *dir = fresh_dir();
    setenv("MOEFORGE_CACHE", "off", 1);
    cr_assert_eq(mf_disk_cache_enabled(), 0);
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    cr_assert_null(mf_cache_directory(c));
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_COMPILED);
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_HIT);
    cr_assert_eq(count_files(dir, ".mfa"), 0);
    mf_cache_close(c);
}

Test(cache, default_directory_follows_the_environment)
{
    char *home = fresh_dir(), dir[512], expected[512];
    setenv("HOME", home, 1);
    setenv("XDG_CACHE_HOME", "/somewhere/xdg", 1);
    setenv("MOEFORGE_CACHE_DIR", "/somewhere/explicit", 1);
    OK_OR_FAIL(mf_disk_cache_default_dir(dir, sizeof dir));
    cr_expect_str_eq(dir, "/somewhere/explicit");
    unsetenv("MOEFORGE_CACHE_DIR");
    OK_OR_FAIL(mf_disk_cache_default_dir(dir, sizeof dir));
    cr_expect_str_eq(dir, "/somewhere/xdg/moeforge");
    unsetenv("XDG_CACHE_HOME");
    OK_OR_FAIL(mf_disk_cache_default_dir(dir, sizeof dir));
    snprintf(expected, sizeof expected, "%s/.cache/moeforge", home);
    cr_expect_str_eq(dir, expected);
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(NULL, &c));
    cr_assert_str_eq(mf_cache_directory(c), expected);
    struct stat st;
    cr_assert_eq(stat(expected, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700);
    mf_cache_close(c);
    unsetenv("HOME");
    cr_expect_eq(mf_disk_cache_default_dir(dir, sizeof dir), MF_ERR_IO);
}

/* ---- size bound, clear, list ----------------------------------------------------------- */

static void set_mtime(const char *path, time_t when)
{
    struct timespec t[2] = {{when, 0}, {when, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void age_kernel(const char *dir, const char *spec, time_t when)
{
    char path[512];
    content_path(dir, spec, "sm_90a", path);
    set_mtime(path, when);
    index_path(dir, spec, "sm_90a", path);
    set_mtime(path, when);
}

static off_t kernel_bytes(const char *dir, const char *spec)
{
    char path[512];
    struct stat a, b;
    content_path(dir, spec, "sm_90a", path);
    stat(path, &a);
    index_path(dir, spec, "sm_90a", path);
    stat(path, &b);
    return a.st_size + b.st_size;
}

Test(cache, size_bound_evicts_the_least_recently_used)
{
    char *dir = fresh_dir();
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    const char *specs[] = {SPEC_A, SPEC_B, SPEC_C};
    for (int i = 0; i < 3; i++) {
        ensure(c, specs[i], "sm_90a");
        age_kernel(dir, specs[i], 1000000 + i); /* A oldest, then B, then C */
    }
    cr_assert_eq(ensure(c, SPEC_A, "sm_90a"), MF_CACHE_HIT); /* a use makes A the newest */
    uint64_t keep = (uint64_t)(kernel_bytes(dir, SPEC_A) + kernel_bytes(dir, SPEC_C));
    size_t removed = 0;
    OK_OR_FAIL(mf_cache_evict(c, keep, &removed));
    cr_expect_eq(removed, 2, "B's content entry and index");
    cr_expect_eq(runtime_lookup(dir, SPEC_B, "sm_90a"), MF_ERR_KERNEL_NOT_FOUND);
    OK_OR_FAIL(runtime_lookup(dir, SPEC_A, "sm_90a"));
    OK_OR_FAIL(runtime_lookup(dir, SPEC_C, "sm_90a"));
    OK_OR_FAIL(mf_cache_evict(c, keep, &removed));
    cr_expect_eq(removed, 0, "already within the bound");
    mf_cache_close(c);
}

Test(cache, max_bytes_from_the_environment)
{
    cr_expect_eq(mf_cache_max_bytes(), MF_CACHE_DEFAULT_MAX_BYTES);
    const char *texts[] = {"1234", "2K", "3M", "1G"};
    uint64_t values[] = {1234, 2048, 3u << 20, 1u << 30};
    for (int i = 0; i < 4; i++) {
        setenv("MOEFORGE_CACHE_MAX_BYTES", texts[i], 1);
        cr_expect_eq(mf_cache_max_bytes(), values[i], "%s", texts[i]);
    }
    setenv("MOEFORGE_CACHE_MAX_BYTES", "lots", 1);
    capture_begin();
    uint64_t fallback = mf_cache_max_bytes();
    capture_end();
    cr_expect_eq(fallback, MF_CACHE_DEFAULT_MAX_BYTES);
}

typedef struct seen {
    int count;
    char specs[4][256];
} seen;

static void remember(void *user, const mf_cache_item *item)
{
    seen *s = user;
    if (s->count < 4)
        snprintf(s->specs[s->count], 256, "%s %s %zu", item->spec, item->target,
                 item->size > 1000 ? (size_t)1 : (size_t)0);
    s->count++;
}

Test(cache, list_then_clear)
{
    char *dir = fresh_dir(), a[1024], b[1024], line[1100];
    mf_cache *c;
    OK_OR_FAIL(mf_cache_open(dir, &c));
    ensure(c, SPEC_A, "sm_90a");
    ensure(c, SPEC_B, "sm_90a");
    seen s = {0};
    OK_OR_FAIL(mf_cache_list(c, remember, &s));
    cr_assert_eq(s.count, 2);
    canonical(SPEC_A, a);
    canonical(SPEC_B, b);
    for (int i = 0; i < 2; i++) {
        snprintf(line, sizeof line, "%s sm_90a 1", i == 0 ? a : b);
        cr_expect(strcmp(s.specs[0], line) == 0 || strcmp(s.specs[1], line) == 0, "%s", line);
    }
    size_t removed = 0;
    OK_OR_FAIL(mf_cache_clear(c, &removed));
    cr_expect_eq(removed, 6, "2 entries, 2 indexes, 2 locks");
    cr_expect_eq(count_files(dir, ""), 0);
    cr_expect_eq(runtime_lookup(dir, SPEC_A, "sm_90a"), MF_ERR_KERNEL_NOT_FOUND);
    mf_cache_close(c);
}

/* ---- several processes, one directory ----------------------------------------------------- */

static const char *const shared_specs[] = {
    SPEC_A, SPEC_B, SPEC_C,
    "silu_mul:block=192,dtype=bf16,layout=masked,unroll=1",
    "silu_mul:block=224,dtype=bf16,layout=masked,unroll=1",
    "silu_mul:block=288,dtype=bf16,layout=masked,unroll=1",
};
#define SHARED_COUNT (sizeof shared_specs / sizeof shared_specs[0])

/* One warming process: reports how many kernels it compiled, or -1. */
static void warming_child(const char *dir, int fd)
{
    mf_cache *c;
    const char *targets[] = {"sm_90a"};
    mf_warmup_options o = {targets, 1, 2, MF_PROGRESS_OFF, 1};
    mf_warmup_report r;
    int compiled = -1;
    if (mf_cache_open(dir, &c) == MF_OK &&
        mf_warmup(c, shared_specs, SHARED_COUNT, &o, &r) == MF_OK)
        compiled = (int)r.compiled;
    if (write(fd, &compiled, sizeof compiled) != sizeof compiled)
        _exit(2);
    _exit(0);
}

/* Every file is an entry, an index or a lock; no temporary is left; the
 * runtime finds every kernel. */
static void assert_consistent(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; (e = readdir(d));)
        cr_expect(e->d_name[0] == '.' || !strstr(e->d_name, ".tmp."), "left behind: %s",
                  e->d_name);
    closedir(d);
    cr_expect_eq(count_files(dir, ".mfa"), (int)SHARED_COUNT);
    cr_expect_eq(count_files(dir, ".idx"), (int)SHARED_COUNT);
    for (size_t i = 0; i < SHARED_COUNT; i++)
        cr_expect_eq(runtime_lookup(dir, shared_specs[i], "sm_90a"), MF_OK, "%s: %s",
                     shared_specs[i], mf_last_error());
}

static void warm_concurrently(int processes)
{
    char *dir = fresh_dir();
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    for (int p = 0; p < processes; p++)
        if (fork() == 0)
            warming_child(dir, fds[1]);
    close(fds[1]);
    int total = 0, compiled;
    for (int p = 0; p < processes; p++) {
        int status;
        wait(&status);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        cr_assert_eq(read(fds[0], &compiled, sizeof compiled), (ssize_t)sizeof compiled);
        cr_assert_geq(compiled, 0, "a warming process failed");
        total += compiled;
    }
    close(fds[0]);
    cr_expect_eq(total, (int)SHARED_COUNT, "%d compiles for %zu kernels by %d processes", total,
                 SHARED_COUNT, processes);
    assert_consistent(dir);
}

Test(cache, two_processes_warming_one_directory)
{
    warm_concurrently(2);
}

Test(cache, four_processes_warming_one_directory)
{
    warm_concurrently(4);
}
