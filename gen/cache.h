/* The on-disk kernel cache, generator side: full content keys, compiling on a
 * miss under a lock, atomic entry writes, LRU eviction, clearing and listing.
 * The layout and the two-level lookup are described in runtime/disk_cache.h.
 *
 * Concurrency: any number of threads and processes may use one directory.
 * Readers take no lock (entries appear by rename, complete). A miss takes an
 * exclusive flock on k-<content key>.lock, looks again, and only then
 * compiles, so each kernel is compiled about once however many processes
 * warm the directory together.
 *
 * Degradations (each logged as a warning, never an error): an untrusted
 * directory is not used at all; a directory that cannot be created or written
 * is still read, and new entries are kept in memory for the life of the
 * mf_cache. MOEFORGE_CACHE=off keeps everything in memory, silently.
 *
 * Size bound: MOEFORGE_CACHE_MAX_BYTES (bytes, or with a K, M or G suffix;
 * default 4G). mf_cache_evict removes least recently used entries (oldest
 * mtime: the runtime and hits here touch the entries they use) until the
 * directory's entries fit. */
#ifndef MF_CACHE_H
#define MF_CACHE_H

#include <stdint.h>
#include <time.h>

#include "archive.h"
#include "disk_cache.h"
#include "moeforge.h"

/* Options mf_gen_compile passes to NVRTC besides the target, canonical order;
 * a test checks them against mf_kernel_binary.options. */
#define MF_CACHE_COMPILE_OPTIONS "--std=c++17 -lineinfo"
#define MF_CACHE_DEFAULT_MAX_BYTES ((uint64_t)4 << 30)

typedef struct mf_cache mf_cache;

/* Everything a content key covers. */
typedef struct mf_cache_key_input {
    const char *spec;    /* canonical */
    const char *target;  /* "sm_90a" (cubin) or "compute_90a" (PTX) */
    const char *source;  /* rendered CUDA C */
    const char *options; /* MF_CACHE_COMPILE_OPTIONS */
    const char *nvrtc;   /* mf_cache_nvrtc_identity() */
    const char *generator;
} mf_cache_key_input;

void mf_cache_content_key(const mf_cache_key_input *in, char hex[MF_CACHE_KEY_HEX]);

/* NVRTC's version and build, e.g. "13.0 libnvrtc.so.13 109338064": the
 * version alone does not change with a patch release, the library's size does. */
mf_status mf_cache_nvrtc_identity(const char **identity);

/* Opens the cache in dir, or the default directory when dir is NULL (see
 * runtime/disk_cache.h), creating it with mode 0700. Fails only for lack of
 * memory; see the degradations above. */
mf_status mf_cache_open(const char *dir, mf_cache **out);
void mf_cache_close(mf_cache *c); /* NULL-safe */

/* The directory read (NULL when none) and whether new entries go there. */
const char *mf_cache_directory(const mf_cache *c);
int mf_cache_persistent(const mf_cache *c);

typedef enum mf_cache_outcome {
    MF_CACHE_HIT,      /* a current entry was there (maybe written meanwhile by another process) */
    MF_CACHE_COMPILED  /* compiled (isolated) and stored */
} mf_cache_outcome;

/* Makes sure the cache holds the current entry of (spec, target): renders
 * the spec, computes its content key, and compiles on a miss. A target
 * "sm_XY" stores a cubin, "compute_XY" PTX. The spec index is repointed when
 * it names another key. outcome may be NULL. */
mf_status mf_cache_ensure(mf_cache *c, const char *spec, const char *target,
                          mf_cache_outcome *outcome);

/* The entry the spec index of (spec, target) names, opened and verified;
 * the caller closes it before closing the cache. MF_ERR_KERNEL_NOT_FOUND when
 * there is none. */
mf_status mf_cache_open_entry(mf_cache *c, const char *spec, const char *target,
                              mf_archive **out);

/* MOEFORGE_CACHE_MAX_BYTES, or the default. */
uint64_t mf_cache_max_bytes(void);

/* Removes least recently used entries until the directory's entries take at
 * most max_bytes, and temporary files left by crashed writers. *removed (may
 * be NULL) counts the files removed. No-op without a persistent directory. */
mf_status mf_cache_evict(mf_cache *c, uint64_t max_bytes, size_t *removed);

/* Removes every entry, lock and temporary file of the directory (not the
 * directory itself). MF_ERR_IO without a writable directory. */
mf_status mf_cache_clear(mf_cache *c, size_t *removed);

/* One kernel of the cache, as found through its spec index. */
typedef struct mf_cache_item {
    const char *spec, *target, *entry;
    const char *content_key;
    size_t size;       /* payload bytes */
    size_t file_bytes; /* content entry plus index */
    time_t last_used;
} mf_cache_item;

typedef void (*mf_cache_visitor)(void *user, const mf_cache_item *item);

/* Calls visit for each kernel the directory's spec indexes name, in file
 * name order; entries that fail their checks are skipped with a warning. */
mf_status mf_cache_list(mf_cache *c, mf_cache_visitor visit, void *user);

#endif
