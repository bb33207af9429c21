/* Timing helpers shared by the benchmarks: median of event-timed runs and the
 * device-to-device copy ceiling measured in the same process. */
#ifndef MF_BENCH_COMMON_H
#define MF_BENCH_COMMON_H

#include <moeforge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_CHECK(call)                                                              \
    do {                                                                               \
        mf_status bench_s_ = (call);                                                   \
        if (bench_s_ != MF_OK) {                                                       \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,          \
                    mf_status_string(bench_s_), mf_last_error());                       \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

typedef void (*bench_fn)(void *user);

/* Context on device 0, or a line saying why there is none and exit(0): a
 * benchmark on a machine without a GPU has nothing to measure, not a failure. */
static inline mf_context *bench_context_or_exit(const char *program, mf_device_info *info)
{
    mf_context *ctx;
    mf_status s = mf_context_create(0, &ctx);
    if (s != MF_OK) {
        printf("%s: no GPU to run on (%s: %s)\n", program, mf_status_string(s), mf_last_error());
        exit(0);
    }
    mf_context_info(ctx, info);
    return ctx;
}

/* `--csv FILE` as the only arguments opens FILE; no arguments: NULL. */
static inline FILE *bench_csv_or_exit(int argc, char **argv)
{
    if (argc == 1)
        return NULL;
    FILE *f = argc == 3 && strcmp(argv[1], "--csv") == 0 ? fopen(argv[2], "w") : NULL;
    if (!f) {
        fprintf(stderr, "usage: %s [--csv FILE]\n", argv[0]);
        exit(2);
    }
    return f;
}

static inline int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median milliseconds of `reps` event-timed calls on `stream` after `warmup`
 * untimed ones. */
static inline float bench_median_ms_on(mf_context *ctx, bench_fn fn, void *user, mf_stream stream,
                                       int warmup, int reps)
{
    mf_timer *timer;
    BENCH_CHECK(mf_timer_create(ctx, &timer));
    for (int i = 0; i < warmup; i++)
        fn(user);
    float *ms = malloc(sizeof(float) * (size_t)reps);
    for (int i = 0; i < reps; i++) {
        BENCH_CHECK(mf_timer_start(timer, stream));
        fn(user);
        BENCH_CHECK(mf_timer_stop(timer, stream));
        BENCH_CHECK(mf_timer_elapsed_ms(timer, &ms[i]));
    }
    qsort(ms, (size_t)reps, sizeof(float), compare_floats);
    float median = ms[reps / 2];
    free(ms);
    mf_timer_destroy(timer);
    return median;
}

static inline float bench_median_ms(mf_context *ctx, bench_fn fn, void *user, int warmup, int reps)
{
    return bench_median_ms_on(ctx, fn, user, NULL, warmup, reps);
}

typedef struct copy_job {
    mf_context *ctx;
    void *dst, *src;
    size_t bytes;
} copy_job;

static inline void run_copy(void *user)
{
    copy_job *c = user;
    BENCH_CHECK(mf_memcpy_dtod_async(c->ctx, c->dst, c->src, c->bytes, NULL));
}

/* Device time of one call in microseconds, for calls shorter than their host
 * launch cost: a 256 MB copy keeps the GPU busy while `batch` calls queue up
 * behind the start event, so they run back to back. Median of 21 batches. */
static inline float bench_device_us(mf_context *ctx, bench_fn fn, void *user, int batch)
{
    copy_job filler = {ctx, NULL, NULL, (size_t)256 << 20};
    BENCH_CHECK(mf_malloc(ctx, &filler.src, filler.bytes));
    BENCH_CHECK(mf_malloc(ctx, &filler.dst, filler.bytes));
    mf_timer *timer;
    BENCH_CHECK(mf_timer_create(ctx, &timer));
    float ms[21];
    for (int i = 0; i < 21; i++) {
        run_copy(&filler);
        BENCH_CHECK(mf_timer_start(timer, NULL));
        for (int j = 0; j < batch; j++)
            fn(user);
        BENCH_CHECK(mf_timer_stop(timer, NULL));
        BENCH_CHECK(mf_timer_elapsed_ms(timer, &ms[i]));
    }
    qsort(ms, 21, sizeof(float), compare_floats);
    mf_timer_destroy(timer);
    mf_free(ctx, filler.src);
    mf_free(ctx, filler.dst);
    return ms[10] * 1e3f / (float)batch;
}

/* Device-to-device copy rate in GB/s, counting bytes read plus bytes written. */
static inline double bench_copy_ceiling_gbs(mf_context *ctx, size_t bytes)
{
    copy_job c = {ctx, NULL, NULL, bytes};
    BENCH_CHECK(mf_malloc(ctx, &c.src, bytes));
    BENCH_CHECK(mf_malloc(ctx, &c.dst, bytes));
    BENCH_CHECK(mf_memset_d8(ctx, c.src, 0x3c, bytes));
    float ms = bench_median_ms(ctx, run_copy, &c, 3, 20);
    mf_free(ctx, c.src);
    mf_free(ctx, c.dst);
    return 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
}

typedef struct fill_job {
    mf_context *ctx;
    void *dst;
    size_t bytes;
} fill_job;

static inline void run_fill(void *user)
{
    fill_job *f = user;
    BENCH_CHECK(mf_memset_d8(f->ctx, f->dst, 0x5a, f->bytes));
}

/* Write-only rate in GB/s: the driver's memset of `bytes` (the stream's
 * ordering puts it between the timer's events). */
static inline double bench_write_ceiling_gbs(mf_context *ctx, size_t bytes)
{
    fill_job f = {ctx, NULL, bytes};
    BENCH_CHECK(mf_malloc(ctx, &f.dst, bytes));
    float ms = bench_median_ms(ctx, run_fill, &f, 3, 20);
    mf_free(ctx, f.dst);
    return (double)bytes / (ms * 1e-3) / 1e9;
}

/* Measures the copy ceiling and prints it with the device's name. */
static inline double bench_print_copy_ceiling(mf_context *ctx, const mf_device_info *info)
{
    double gbs = bench_copy_ceiling_gbs(ctx, (size_t)1 << 30);
    printf("device: %s (%s, %d SMs); device-to-device copy: %.1f GB/s (read + write)\n",
           info->name, info->arch, info->sm_count, gbs);
    return gbs;
}

#endif
