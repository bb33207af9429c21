/* Hash table of loaded kernels. */
#include "kernel_table.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>

static size_t hash_spec(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)h;
}

mf_status mf_kernel_table_init(mf_kernel_table *t)
{
    t->capacity = 64;
    t->count = 0;
    t->slots = calloc(t->capacity, sizeof *t->slots);
    if (!t->slots)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "kernel table: no host memory");
    pthread_rwlock_init(&t->lock, NULL);
    return MF_OK;
}

void mf_kernel_table_destroy(mf_kernel_table *t)
{
    free(t->slots);
    t->slots = NULL;
    pthread_rwlock_destroy(&t->lock);
}

static size_t probe(mf_kernel *const *slots, size_t capacity, const char *spec)
{
    size_t i = hash_spec(spec) & (capacity - 1);
    while (slots[i] && strcmp(slots[i]->spec, spec) != 0)
        i = (i + 1) & (capacity - 1);
    return i;
}

mf_kernel *mf_kernel_table_find(mf_kernel_table *t, const char *spec)
{
    pthread_rwlock_rdlock(&t->lock);
    mf_kernel *k = t->slots[probe(t->slots, t->capacity, spec)];
    pthread_rwlock_unlock(&t->lock);
    return k;
}

static mf_status grow(mf_kernel_table *t)
{
    size_t capacity = t->capacity * 2;
    mf_kernel **slots = calloc(capacity, sizeof *slots);
    if (!slots)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "kernel table: no host memory to grow");
    for (size_t i = 0; i < t->capacity; i++)
        if (t->slots[i])
            slots[probe(slots, capacity, t->slots[i]->spec)] = t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->capacity = capacity;
    return MF_OK;
}

mf_status mf_kernel_table_insert(mf_kernel_table *t, mf_kernel *k)
{
    mf_status s = MF_OK;
    pthread_rwlock_wrlock(&t->lock);
    if (2 * (t->count + 1) > t->capacity)
        s = grow(t);
    if (s == MF_OK) {
        t->slots[probe(t->slots, t->capacity, k->spec)] = k;
        t->count++;
    }
    pthread_rwlock_unlock(&t->lock);
    return s;
}

void mf_kernel_table_clear(mf_kernel_table *t, void (*unload)(void *user, CUmodule module),
                           void *user)
{
    pthread_rwlock_wrlock(&t->lock);
    for (size_t i = 0; i < t->capacity; i++) {
        if (!t->slots[i])
            continue;
        unload(user, t->slots[i]->module);
        free(t->slots[i]);
        t->slots[i] = NULL;
    }
    t->count = 0;
    pthread_rwlock_unlock(&t->lock);
}
