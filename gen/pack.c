/* Deployment archives from the cache. */
#include "pack.h"

#include "archive_writer.h"
#include "error.h"
#include "moeforge_gen.h"

static mf_status add_cached(mf_archive_writer *w, mf_cache *c, const char *spec,
                            const char *target)
{
    mf_archive *entry;
    mf_archive_entry e;
    MF_TRY(mf_cache_open_entry(c, spec, target, &entry));
    mf_status s = mf_archive_entry_at(entry, 0, &e);
    if (s == MF_OK)
        s = mf_archive_writer_add(w, e.spec, e.target, e.entry, e.is_ptx, e.data, e.size);
    mf_archive_close(entry);
    return s;
}

static mf_status add_all(mf_archive_writer *w, mf_cache *c, const char *const *specs,
                         size_t count, const mf_warmup_options *o)
{
    for (size_t i = 0; i < count; i++)
        for (int t = 0; t < o->target_count; t++)
            MF_TRY(add_cached(w, c, specs[i], o->targets[t]));
    return MF_OK;
}

mf_status mf_pack(mf_cache *c, const char *const *specs, size_t count,
                  const mf_warmup_options *options, const char *path, mf_warmup_report *report)
{
    if (!options || !path)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_pack: null argument");
    mf_warmup_options o = *options;
    o.include_builtin = 1;
    MF_TRY(mf_warmup(c, specs, count, &o, report));
    mf_archive_writer *w;
    MF_TRY(mf_archive_writer_create(MOEFORGE_GENERATOR_VERSION, &w));
    mf_status s = add_all(w, c, specs, count, &o);
    if (s == MF_OK)
        s = mf_archive_writer_write(w, path);
    mf_archive_writer_destroy(w);
    return s;
}

typedef struct cache_packer {
    mf_archive_writer *w;
    mf_cache *cache;
    mf_status status;
    size_t kernels;
} cache_packer;

static void pack_item(void *user, const mf_cache_item *item)
{
    cache_packer *p = user;
    if (p->status == MF_OK)
        p->status = add_cached(p->w, p->cache, item->spec, item->target);
    p->kernels++;
}

mf_status mf_pack_cache(mf_cache *c, const char *path, size_t *kernels)
{
    if (!c || !path)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_pack_cache: null argument");
    cache_packer p = {NULL, c, MF_OK, 0};
    MF_TRY(mf_archive_writer_create(MOEFORGE_GENERATOR_VERSION, &p.w));
    mf_status s = mf_cache_list(c, pack_item, &p);
    if (s == MF_OK)
        s = p.status;
    if (s == MF_OK)
        s = mf_archive_writer_write(p.w, path);
    mf_archive_writer_destroy(p.w);
    if (kernels)
        *kernels = p.kernels;
    return s;
}
