/* CPU suite: faults survived. A crashing compiler, missing NVRTC, no driver,
 * a full file system while caching, and a warming process killed mid-write:
 * each comes back as a status (or a clean recompile), never as a crash or a
 * corrupt cache. Each test runs in its own process (Criterion), so library
 * loading decisions made from the environment start fresh. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "cache.h"
#include "kernels.h"
#include "moeforge_gen.h"
#include "warmup.h"

static const char *spec = "silu_mul:block=256,dtype=bf16,layout=masked,unroll=1";

/* A fresh private cache directory (meson's test environment turns the cache off). */
static void make_private_dir(char *dir)
{
    unsetenv("MOEFORGE_CACHE");
    strcpy(dir, "/tmp/mf_faults_XXXXXX");
    cr_assert(mkdtemp(dir));
}

/* Removes the files of a test's private directory, then the directory. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Every content entry in dir opens and verifies; returns the number of
 * entries and stores the number of temporary files (an interrupted writer's
 * leftovers, which no reader takes for an entry). */
static int check_cache_consistent(const char *dir, int *temporaries)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    struct dirent *e;
    int entries = 0;
    *temporaries = 0;
    while ((e = readdir(d))) {
        if (strstr(e->d_name, ".tmp.")) {
            (*temporaries)++;
            continue;
        }
        if (strncmp(e->d_name, "k-", 2) != 0 || !strstr(e->d_name, ".mfa"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        mf_archive *a;
        mf_status s = mf_archive_open_file(path, &a);
        cr_expect_eq(s, MF_OK, "%s: %s", path, mf_last_error());
        if (s != MF_OK)
            continue;
        mf_archive_entry entry;
        cr_expect(mf_archive_entry_at(a, 0, &entry) == MF_OK &&
                      mf_archive_find(a, entry.spec, entry.target, &entry) == MF_OK,
                  "%s: %s", path, mf_last_error());
        mf_archive_close(a);
        entries++;
    }
    closedir(d);
    return entries;
}

Test(faults, crashing_compiler_is_a_status_naming_the_spec)
{
    const char *fake = getenv("MF_FAKE_NVRTC");
    cr_assert(fake, "MF_FAKE_NVRTC not set");
    setenv("MOEFORGE_NVRTC", fake, 1);
    for (int attempt = 0; attempt < 2; attempt++) {
        mf_kernel_binary *b = NULL;
        cr_assert_eq(mf_gen_compile_isolated(spec, "sm_90a", MF_EMIT_CUBIN, &b),
                     MF_ERR_COMPILER_CRASHED);
        cr_assert_null(b);
        cr_assert(strstr(mf_last_error(), spec), "%s", mf_last_error());
        cr_assert(strstr(mf_last_error(), "signal 11"), "%s", mf_last_error());
    }
}

Test(faults, hung_compiler_is_killed_after_the_timeout, .timeout = 30)
{
    const char *fake = getenv("MF_FAKE_NVRTC");
    cr_assert(fake, "MF_FAKE_NVRTC not set");
    setenv("MOEFORGE_NVRTC", fake, 1);
    setenv("MF_FAKE_NVRTC_HANG", "1", 1);
    setenv("MOEFORGE_COMPILE_TIMEOUT", "1", 1);
    mf_kernel_binary *b = NULL;
    cr_assert_eq(mf_gen_compile_isolated(spec, "sm_90a", MF_EMIT_CUBIN, &b),
                 MF_ERR_COMPILER_CRASHED);
    cr_assert_null(b);
    cr_assert(strstr(mf_last_error(), "timed out after 1 s"), "%s", mf_last_error());
    cr_assert(strstr(mf_last_error(), spec), "%s", mf_last_error());
}

Test(faults, missing_nvrtc_is_a_status_and_rendering_and_archives_still_work)
{
    setenv("MOEFORGE_NVRTC", "/nonexistent/libnvrtc.so.13", 1);
    mf_kernel_binary *b = NULL;
    cr_assert_eq(mf_gen_compile(spec, "sm_90a", MF_EMIT_CUBIN, &b), MF_ERR_NO_COMPILER);
    cr_assert(strstr(mf_last_error(), "MOEFORGE_NVRTC"), "%s", mf_last_error());
    char *source;
    cr_assert_eq(mf_gen_render(spec, &source, NULL), MF_OK, "%s", mf_last_error());
    free(source);
    const mf_archive *builtin = mf_builtin_archive();
    cr_assert_not_null(builtin);
    mf_archive_entry e;
    cr_assert_eq(mf_archive_find(builtin, spec, "sm_90a", &e), MF_OK, "%s", mf_last_error());
}

Test(faults, no_driver_is_a_status_and_archives_still_open)
{
    int count = 0;
    if (mf_device_count(&count) == MF_OK && count > 0)
        cr_skip_test("a GPU driver is present");
    mf_context *ctx = NULL;
    mf_status s = mf_context_create(0, &ctx);
    cr_assert(s == MF_ERR_NO_DRIVER || s == MF_ERR_NO_DEVICE, "%s", mf_status_string(s));
    const char *path = getenv("MF_BUILTIN_ARCHIVE");
    cr_assert(path);
    mf_archive *a;
    cr_assert_eq(mf_archive_open_file(path, &a), MF_OK, "%s", mf_last_error());
    mf_archive_entry e;
    cr_assert_eq(mf_archive_find(a, spec, "compute_90a", &e), MF_OK, "%s", mf_last_error());
    cr_assert(e.is_ptx && strstr(e.data, ".entry"));
    mf_archive_close(a);
}

Test(faults, full_file_system_leaves_no_partial_entry)
{
    char dir[64];
    make_private_dir(dir);
    signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG instead */
    struct rlimit before, small;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &before), 0);
    small = (struct rlimit){2048, before.rlim_max}; /* soft only: it can be raised back */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    mf_cache *c;
    cr_assert_eq(mf_cache_open(dir, &c), MF_OK, "%s", mf_last_error());
    /* the write fails (EFBIG): the kernel is kept in memory, with a warning */
    mf_status s = mf_cache_ensure(c, spec, "sm_90a", NULL);
    cr_assert_eq(s, MF_OK, "%s: %s", mf_status_string(s), mf_last_error());
    mf_cache_close(c);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &before), 0);
    int temporaries;
    cr_assert_eq(check_cache_consistent(dir, &temporaries), 0);
    cr_assert_eq(temporaries, 0, "the failed write removes its temporary file");
    /* with space again the same call stores the entry */
    cr_assert_eq(mf_cache_open(dir, &c), MF_OK);
    cr_assert_eq(mf_cache_ensure(c, spec, "sm_90a", NULL), MF_OK, "%s", mf_last_error());
    mf_cache_close(c);
    cr_assert_eq(check_cache_consistent(dir, &temporaries), 1);
    cr_assert_eq(temporaries, 0);
    remove_dir(dir);
}

static const char *const warm_specs[] = {
    "silu_mul:block=64,dtype=bf16,layout=masked,unroll=1",
    "silu_mul:block=96,dtype=bf16,layout=masked,unroll=1",
    "silu_mul:block=128,dtype=bf16,layout=masked,unroll=2",
    "silu_mul:block=160,dtype=bf16,layout=masked,unroll=2",
    "silu_mul:block=192,dtype=bf16,layout=masked,unroll=3",
    "silu_mul:block=224,dtype=bf16,layout=masked,unroll=3",
};

static mf_status warm(const char *dir, mf_warmup_report *report)
{
    const char *targets[] = {"sm_90a"};
    mf_warmup_options options = {targets, 1, 1, MF_PROGRESS_OFF, 1};
    mf_cache *c;
    mf_status s = mf_cache_open(dir, &c);
    if (s == MF_OK)
        s = mf_warmup(c, warm_specs, sizeof warm_specs / sizeof warm_specs[0], &options, report);
    mf_cache_close(c);
    return s;
}

/* The path a writer's temporary file for a content entry would have. */
static void temporary_path(const char *dir, const char *suffix, char (*path)[512])
{
    snprintf(*path, sizeof *path, "%s/k-%064d.mfa.tmp.%s", dir, 0, suffix);
}

/* Plants a temporary file as a killed writer would leave it, hours_old hours ago. */
static void plant_temporary(const char *dir, const char *suffix, int hours_old)
{
    char path[512];
    temporary_path(dir, suffix, &path);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("half an archive", f);
    fclose(f);
    time_t when = time(NULL) - hours_old * 3600;
    struct timespec t[2] = {{when, 0}, {when, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

static int temporary_exists(const char *dir, const char *suffix)
{
    char path[512];
    temporary_path(dir, suffix, &path);
    return access(path, F_OK) == 0;
}

/* The kill may land between a temporary file's creation and its rename: the
 * temporary then stays (a live writer's looks the same) until the sweep that
 * ends a warmup finds it stale (an hour old), and no reader ever takes it for
 * an entry. */
Test(faults, warming_process_killed_mid_write_leaves_a_usable_cache)
{
    char dir[64];
    make_private_dir(dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        mf_warmup_report report;
        _exit(warm(dir, &report) == MF_OK ? 0 : 1);
    }
    struct timespec pause = {0, 350 * 1000 * 1000}; /* a few compiles in */
    nanosleep(&pause, NULL);
    kill(pid, SIGKILL);
    int status, temporaries;
    waitpid(pid, &status, 0);
    check_cache_consistent(dir, &temporaries);
    cr_assert_leq(temporaries, 1, "one writer leaves at most one temporary file");
    plant_temporary(dir, "stale0", 2);
    plant_temporary(dir, "fresh0", 0);
    mf_warmup_report report;
    cr_assert_eq(warm(dir, &report), MF_OK, "%s", mf_last_error());
    cr_assert_eq(report.failed, 0);
    cr_assert_eq(report.hits + report.compiled, report.tasks);
    mf_warmup_report_free(&report);
    int entries = check_cache_consistent(dir, &temporaries);
    cr_assert_eq(entries, (int)(sizeof warm_specs / sizeof warm_specs[0]), "%d entries", entries);
    cr_expect(!temporary_exists(dir, "stale0"), "the warmup's sweep removes a stale temporary file");
    cr_expect(temporary_exists(dir, "fresh0"), "the sweep keeps a recent one (a writer may own it)");
    cr_assert_eq(check_cache_consistent(dir, &temporaries), entries);
    remove_dir(dir);
}
