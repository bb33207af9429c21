/* The on-disk kernel cache as the runtime reads it: no Lua, no NVRTC.
 *
 * Where: $MOEFORGE_CACHE_DIR, else $XDG_CACHE_HOME/moeforge, else
 * $HOME/.cache/moeforge (the generator creates it 0700). MOEFORGE_CACHE=off
 * turns the cache off. A directory not owned by the user or writable by group
 * or others is refused with a warning and treated as no cache: whoever can
 * write there could make this process load their code.
 *
 * Two levels. The cache key of DESIGN.md ("Kernel identity") hashes the
 * rendered source, which only the generator can produce, so the runtime looks
 * kernels up through a key it can compute:
 *
 *   k-<content key>.mfa  content entry: a one-entry kernel archive
 *                        (runtime/archive.h) with the code of (spec, target).
 *                        content key = SHA-256 over spec, target, rendered
 *                        source, canonical compile options, NVRTC version and
 *                        build, generator version, MF_CACHE_FORMAT_VERSION.
 *   s-<spec key>.idx     spec index: a one-entry archive whose record is
 *                        (spec, target, entry point) and whose payload is the
 *                        64 hex digits of the current content key.
 *                        spec key = SHA-256 over spec, target, generator
 *                        version, MF_CACHE_FORMAT_VERSION.
 *   k-<content key>.lock the generator's lock for compiling that content.
 *
 * Keys are lower-case hex. Both kinds of entry are written atomically
 * (temporary file in the directory, fsync, rename) and carry the archive
 * format's version and checksums; a content entry is written before the index
 * that names it. Readers take no lock: a file is absent or complete. Every
 * open checks the checksums; a corrupt or truncated entry is a miss, with a
 * warning, that the generator recompiles and replaces.
 *
 * The runtime follows spec index -> content entry. The generator
 * (gen/cache.c) always recomputes the full content key, and when the index
 * names another one (templates or NVRTC changed) it compiles again and
 * repoints the index. Until then (a warmup, or a JIT miss) the runtime serves
 * the kernel the index names: after editing templates under
 * $MOEFORGE_TEMPLATE_DIR run `moeforge warmup` or set MOEFORGE_CACHE=off.
 *
 * Least recently used: the runtime sets the mtime of the index and content
 * entry it loads; the generator's eviction removes the oldest mtimes first.
 */
#ifndef MF_DISK_CACHE_H
#define MF_DISK_CACHE_H

#include <stddef.h>

#include "archive.h"
#include "context.h"

#define MF_CACHE_FORMAT_VERSION 1
#define MF_CACHE_KEY_HEX 65 /* 64 hex digits and the NUL */

#define MF_SHARED __attribute__((visibility("default"))) /* used by the generator too */

/* 0 when MOEFORGE_CACHE is "off" (also "0", "no", "false"), else 1. */
MF_SHARED int mf_disk_cache_enabled(void);

/* The default directory from the environment (see above); MF_ERR_IO when
 * neither variable gives one. Does not create it. */
MF_SHARED mf_status mf_disk_cache_default_dir(char *dir, size_t size);

/* MF_OK when dir is a directory owned by this user that group and others
 * cannot write. Otherwise MF_ERR_IO, logged as a warning unless dir does not
 * exist. */
MF_SHARED mf_status mf_disk_cache_check_dir(const char *dir);

/* Hex spec key of (canonical spec, target). */
MF_SHARED void mf_disk_cache_spec_key(const char *spec, const char *target,
                                      char hex[MF_CACHE_KEY_HEX]);

/* File names (no directory) of the entries of a key. */
MF_SHARED void mf_disk_cache_index_name(const char *spec_key, char *name, size_t size);
MF_SHARED void mf_disk_cache_content_name(const char *content_key, char *name, size_t size);

/* Content key named by an opened spec index, which must hold (spec, target).
 * MF_ERR_ARCHIVE when it does not or the payload is not a key. */
MF_SHARED mf_status mf_disk_cache_index_key(const mf_archive *index, const char *spec,
                                            const char *target, char hex[MF_CACHE_KEY_HEX]);

/* MF_OK when an opened content entry holds exactly (spec, target), its
 * payload verified; MF_ERR_ARCHIVE otherwise. */
MF_SHARED mf_status mf_disk_cache_check_content(const mf_archive *content, const char *spec,
                                                const char *target);

/* Sets the mtime of dir/name to now: entries in use are not evicted. Fails
 * harmlessly (read-only directory). */
MF_SHARED void mf_disk_cache_touch(const char *dir, const char *name);

/* Opens dir/name as an archive. Absent: MF_ERR_KERNEL_NOT_FOUND, last error
 * untouched. Corrupt: MF_ERR_ARCHIVE, logged as a warning that names `what`. */
MF_SHARED mf_status mf_disk_cache_open(const char *dir, const char *name, const char *what,
                                       mf_archive **out);

/* Opens the content entry that the spec index of (spec, target) names, its
 * payload verified, and marks it used. Absent, corrupt or inconsistent
 * entries are MF_ERR_KERNEL_NOT_FOUND (the last two with a warning). */
MF_SHARED mf_status mf_disk_cache_lookup(const char *dir, const char *spec, const char *target,
                                         mf_archive **out);

/* A context's view of the cache: its directory, resolved on first use, and
 * the entries it mapped, kept open until mf_disk_cache_close. */
typedef struct mf_disk_cache mf_disk_cache;

/* Finds spec for ctx's device, trying its targets best first. The caller
 * holds ctx->load_lock. MF_ERR_KERNEL_NOT_FOUND when the cache has none. */
mf_status mf_disk_cache_find(mf_context *ctx, const char *spec, const mf_archive **out);

void mf_disk_cache_close(mf_disk_cache *cache); /* NULL-safe */

#endif
