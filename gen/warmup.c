/* Parallel warmup: a pool of threads takes (spec, target) tasks, the longest
 * expected compiles first; results stay in the caller's order. */
#include "warmup.h"

#include "error.h"
#include "kernels.h"
#include "moeforge_gen.h"
#include "spec.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The progress line is redrawn at most this often. */
#define PROGRESS_PERIOD_SECONDS 0.1

typedef enum task_outcome { TASK_FAILED, TASK_HIT, TASK_BUILTIN, TASK_COMPILED } task_outcome;

typedef struct task {
    const char *spec, *target;
    task_outcome outcome;
    mf_status status;
    char *message;
} task;

typedef struct pool {
    mf_cache *cache;
    const mf_archive *builtin; /* NULL: built-in kernels are warmed like the others */
    task *tasks;
    size_t *order; /* indices into tasks, in the order they are taken */
    size_t count;
    atomic_size_t next, done;
    int show_progress;
    double start, last_shown;
    pthread_mutex_t progress_lock;
} pool;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int mf_warmup_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void draw_progress(pool *p, int final)
{
    size_t done = atomic_load(&p->done);
    double now = now_seconds(), elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    long eta = rate > 0 ? (long)((double)(p->count - done) / rate + 0.5) : 0;
    fprintf(stderr, "\rwarmup %zu/%zu kernels  %.1f kernels/s  ETA %ld:%02ld\033[K%s", done,
            p->count, rate, eta / 60, eta % 60, final ? "\n" : "");
    p->last_shown = now;
}

/* Redrawn by whichever worker finishes a task once the period has passed. */
static void update_progress(pool *p, int final)
{
    if (!p->show_progress)
        return;
    pthread_mutex_lock(&p->progress_lock);
    if (final || now_seconds() - p->last_shown >= PROGRESS_PERIOD_SECONDS)
        draw_progress(p, final);
    pthread_mutex_unlock(&p->progress_lock);
}

static int in_builtin_set(const pool *p, const task *t)
{
    char canonical[MF_SPEC_TEXT_MAX];
    mf_archive_entry e;
    return p->builtin && mf_gen_canonical_spec(t->spec, canonical, sizeof canonical) == MF_OK &&
           mf_archive_find(p->builtin, canonical, t->target, &e) == MF_OK;
}

static void run_task(pool *p, task *t)
{
    if (in_builtin_set(p, t)) {
        t->outcome = TASK_BUILTIN;
        return;
    }
    mf_cache_outcome got;
    t->status = mf_cache_ensure(p->cache, t->spec, t->target, &got);
    if (t->status == MF_OK)
        t->outcome = got == MF_CACHE_HIT ? TASK_HIT : TASK_COMPILED;
    else
        t->message = strdup(mf_last_error());
}

static void *worker(void *arg)
{
    pool *p = arg;
    for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->count;) {
        run_task(p, &p->tasks[p->order[i]]);
        atomic_fetch_add(&p->done, 1);
        update_progress(p, 0);
    }
    return NULL;
}

/* MOEFORGE_WARMUP_MAX_THREADS bounds every warmup of the process, whatever
 * the caller asked (as OMP_THREAD_LIMIT does): each compile child holds an
 * NVRTC instance in memory, and a process whose allocator is not fork-safe
 * with threads (ASan's) must fork its compilers from a single thread.
 * 0 when unset or invalid (with a warning): no bound. */
static size_t thread_limit(void)
{
    const char *v = getenv("MOEFORGE_WARMUP_MAX_THREADS");
    if (!v || !v[0])
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 1) {
        mf_log(MF_LOG_WARN, "MOEFORGE_WARMUP_MAX_THREADS=%s is not a positive integer: ignored", v);
        return 0;
    }
    return (size_t)n;
}

/* No more threads than tasks or the limit, and at least one. */
static int pool_threads(const mf_warmup_options *o, size_t tasks)
{
    size_t n = o->threads > 0 ? (size_t)o->threads : (size_t)mf_warmup_default_threads();
    size_t limit = thread_limit();
    if (limit && n > limit)
        n = limit;
    if (n > tasks)
        n = tasks;
    return n < 1 ? 1 : (int)n;
}

/* Runs the pool's workers; the calling thread is one of them. */
static int run_pool(pool *p, int threads)
{
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    int started = 0;
    while (ids && started < threads - 1 && pthread_create(&ids[started], NULL, worker, p) == 0)
        started++;
    worker(p);
    for (int i = 0; i < started; i++)
        pthread_join(ids[i], NULL);
    free(ids);
    return started + 1;
}

/* Expected compile cost of a spec, only to order the pool's tasks: with the
 * long compiles taken last, a few of them run on after the other threads
 * are idle. NVRTC spends ~0.1 s on a glue kernel (tier 1) and seconds on a
 * GEMM (tier 2), most on the sm90 (wgmma) GEMM families named "gemm_*"
 * (tier 3). Within a GEMM tier a larger bm x bn tile unrolls further and
 * e4m3 adds the conversions: weight bm * bn, doubled for e4m3. A spec that
 * does not parse fails at once (tier 0). */
typedef struct task_cost {
    int tier;
    unsigned long weight;
    size_t index;
} task_cost;

/* Capped so that bm * bn * 2 cannot overflow. */
static unsigned long tile_dim(const mf_spec *s, const char *key)
{
    const char *v = mf_spec_get(s, key);
    unsigned long n = v ? strtoul(v, NULL, 10) : 0;
    return n < 65536 ? n : 65536;
}

static task_cost estimate_cost(const char *text, size_t index)
{
    task_cost c = {0, 0, index};
    mf_spec s;
    if (mf_spec_parse(text, &s) != MF_OK)
        return c;
    c.tier = strncmp(s.family, "gemm", 4) != 0 ? 1 : strcmp(s.family, "gemm") == 0 ? 2 : 3;
    if (c.tier == 1)
        return c;
    const char *dtype = mf_spec_get(&s, "dtype");
    c.weight = tile_dim(&s, "bm") * tile_dim(&s, "bn") *
               (dtype && strcmp(dtype, "e4m3") == 0 ? 2 : 1);
    return c;
}

/* Costliest first; equal costs in list order. */
static int compare_costs(const void *a, const void *b)
{
    const task_cost *x = a, *y = b;
    if (x->tier != y->tier)
        return x->tier > y->tier ? -1 : 1;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

mf_status mf_warmup_order(const char *const *specs, size_t count, size_t *order)
{
    task_cost *costs = calloc(count ? count : 1, sizeof *costs);
    if (!costs)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory to order %zu warmup specs", count);
    for (size_t i = 0; i < count; i++)
        costs[i] = estimate_cost(specs[i], i);
    qsort(costs, count, sizeof *costs, compare_costs);
    for (size_t i = 0; i < count; i++)
        order[i] = costs[i].index;
    free(costs);
    return MF_OK;
}

/* Tasks in the caller's order (spec-major); the order takes each spec's
 * targets together, specs by expected cost. */
static mf_status make_tasks(pool *p, const char *const *specs, size_t count,
                            const mf_warmup_options *o)
{
    size_t targets = (size_t)o->target_count;
    p->count = count * targets;
    p->tasks = calloc(p->count ? p->count : 1, sizeof *p->tasks);
    p->order = calloc(p->count ? p->count : 1, sizeof *p->order);
    if (!p->tasks || !p->order)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for %zu warmup tasks", p->count);
    for (size_t i = 0; i < p->count; i++) {
        p->tasks[i].spec = specs[i / targets];
        p->tasks[i].target = o->targets[i % targets];
    }
    /* Spec indices in the first count entries, expanded to task indices from
     * the back: entry k reads entry k / targets, which is not yet rewritten. */
    MF_TRY(mf_warmup_order(specs, count, p->order));
    for (size_t k = p->count; k-- > 0;)
        p->order[k] = p->order[k / targets] * targets + k % targets;
    return MF_OK;
}

static mf_status collect(pool *p, mf_warmup_report *r)
{
    r->tasks = p->count;
    for (size_t i = 0; i < p->count; i++) {
        task_outcome o = p->tasks[i].outcome;
        r->hits += o == TASK_HIT;
        r->builtin += o == TASK_BUILTIN;
        r->compiled += o == TASK_COMPILED;
        r->failed += o == TASK_FAILED;
    }
    r->failures = calloc(r->failed ? r->failed : 1, sizeof *r->failures);
    if (!r->failures)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for the warmup report");
    size_t n = 0;
    for (size_t i = 0; i < p->count; i++) {
        task *t = &p->tasks[i];
        if (t->outcome != TASK_FAILED)
            continue;
        mf_warmup_failure *f = &r->failures[n++];
        f->spec = strdup(t->spec);
        snprintf(f->target, sizeof f->target, "%s", t->target);
        f->status = t->status;
        f->message = t->message; /* ownership moves to the report */
        t->message = NULL;
    }
    return MF_OK;
}

static mf_status check_options(mf_cache *c, const char *const *specs, size_t count,
                               const mf_warmup_options *o, mf_warmup_report *r)
{
    if (!c || (!specs && count) || !o || !r)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_warmup: null argument");
    if (o->target_count < 1 || !o->targets)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_warmup: no target");
    return MF_OK;
}

/* The size bound is applied once the whole list is in. */
static void apply_size_bound(mf_cache *c)
{
    size_t removed = 0;
    if (mf_cache_evict(c, mf_cache_max_bytes(), &removed) == MF_OK && removed)
        mf_log(MF_LOG_WARN, "cache size bound (MOEFORGE_CACHE_MAX_BYTES) evicted %zu files "
               "after warmup", removed);
}

static mf_status summarize(const mf_warmup_report *r)
{
    if (!r->failed)
        return MF_OK;
    const mf_warmup_failure *f = &r->failures[0];
    return MF_FAIL(f->status, "%zu of %zu kernels failed; first %s (%s): %s", r->failed, r->tasks,
                   f->spec, f->target, f->message ? f->message : "");
}

mf_status mf_warmup(mf_cache *c, const char *const *specs, size_t count,
                    const mf_warmup_options *o, mf_warmup_report *r)
{
    if (r)
        memset(r, 0, sizeof *r);
    MF_TRY(check_options(c, specs, count, o, r));
    const char *nvrtc;
    MF_TRY(mf_cache_nvrtc_identity(&nvrtc)); /* loads NVRTC before any thread forks */
    pool p = {.cache = c, .builtin = o->include_builtin ? NULL : mf_builtin_archive(),
              .start = now_seconds()};
    p.show_progress = o->progress == MF_PROGRESS_ON ||
                      (o->progress == MF_PROGRESS_AUTO && isatty(STDERR_FILENO));
    pthread_mutex_init(&p.progress_lock, NULL);
    mf_status s = make_tasks(&p, specs, count, o);
    if (s == MF_OK) {
        r->threads = run_pool(&p, pool_threads(o, p.count));
        update_progress(&p, 1);
        s = collect(&p, r);
    }
    for (size_t i = 0; i < p.count && p.tasks; i++)
        free(p.tasks[i].message);
    free(p.tasks);
    free(p.order);
    pthread_mutex_destroy(&p.progress_lock);
    r->seconds = now_seconds() - p.start;
    apply_size_bound(c);
    return s == MF_OK ? summarize(r) : s;
}

void mf_warmup_report_free(mf_warmup_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->failed && r->failures; i++) {
        free(r->failures[i].spec);
        free(r->failures[i].message);
    }
    free(r->failures);
    r->failures = NULL;
}
