/* A list of distinct spec strings: adding one that is there already does
 * nothing (a hash probe), so enumerations that repeat themselves stay cheap. */
#ifndef MF_SPEC_LIST_H
#define MF_SPEC_LIST_H

#include <stddef.h>

#include "moeforge.h"

typedef struct mf_spec_list {
    char **items; /* insertion order until mf_spec_list_sort */
    size_t count, capacity;
    size_t *slots; /* open addressing: index + 1, 0 = empty */
    size_t slot_count;
} mf_spec_list;

/* Copies spec in unless the list holds it already. */
mf_status mf_spec_list_add(mf_spec_list *l, const char *spec);

/* 1 when the list holds spec. */
int mf_spec_list_contains(const mf_spec_list *l, const char *spec);

/* Sorts the items in strcmp order. */
void mf_spec_list_sort(mf_spec_list *l);

void mf_spec_list_free(mf_spec_list *l); /* leaves an empty list */

#endif
