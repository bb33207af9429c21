/* Distinct spec strings: a growing array plus an open-addressing hash of indexes. */
#include "spec_list.h"

#include "error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

/* Slot holding spec, or the empty slot where it would go. */
static size_t *find_slot(const mf_spec_list *l, const char *spec)
{
    size_t mask = l->slot_count - 1;
    for (size_t i = hash_text(spec) & mask;; i = (i + 1) & mask) {
        size_t *slot = &l->slots[i];
        if (*slot == 0 || strcmp(l->items[*slot - 1], spec) == 0)
            return slot;
    }
}

static void rehash(mf_spec_list *l)
{
    memset(l->slots, 0, l->slot_count * sizeof *l->slots);
    for (size_t i = 0; i < l->count; i++)
        *find_slot(l, l->items[i]) = i + 1;
}

/* Keeps the table at most half full, so probes stay short and always end. */
static mf_status reserve(mf_spec_list *l)
{
    if (l->count == l->capacity) {
        size_t capacity = l->capacity ? 2 * l->capacity : 64;
        char **items = realloc(l->items, capacity * sizeof *items);
        if (!items)
            return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for %zu specs", capacity);
        l->items = items;
        l->capacity = capacity;
    }
    if (2 * (l->count + 1) > l->slot_count) {
        size_t slot_count = l->slot_count ? 2 * l->slot_count : 128;
        size_t *slots = malloc(slot_count * sizeof *slots);
        if (!slots)
            return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for %zu specs", l->count + 1);
        free(l->slots);
        l->slots = slots;
        l->slot_count = slot_count;
        rehash(l);
    }
    return MF_OK;
}

mf_status mf_spec_list_add(mf_spec_list *l, const char *spec)
{
    if (mf_spec_list_contains(l, spec))
        return MF_OK;
    MF_TRY(reserve(l));
    char *copy = strdup(spec);
    if (!copy)
        return MF_FAIL(MF_ERR_OUT_OF_MEMORY, "no memory for spec %s", spec);
    l->items[l->count++] = copy;
    *find_slot(l, copy) = l->count;
    return MF_OK;
}

int mf_spec_list_contains(const mf_spec_list *l, const char *spec)
{
    return l->slot_count && *find_slot(l, spec) != 0;
}

static int compare_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mf_spec_list_sort(mf_spec_list *l)
{
    if (l->count == 0)
        return;
    qsort(l->items, l->count, sizeof *l->items, compare_text);
    rehash(l);
}

void mf_spec_list_free(mf_spec_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    free(l->slots);
    *l = (mf_spec_list){0};
}
