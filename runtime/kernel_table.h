/* Loaded kernels by spec: an open-addressing hash table under a read-write lock,
 * so the launch path costs one hash probe and never touches the file system. */
#ifndef MF_KERNEL_TABLE_H
#define MF_KERNEL_TABLE_H

#include <cuda.h>
#include <pthread.h>
#include <stdatomic.h>

#include "moeforge.h"
#include "spec.h"

typedef struct mf_kernel {
    CUmodule module;
    CUfunction function;
    atomic_int dynamic_smem_limit; /* bytes the function is currently allowed   */
    atomic_int max_clusters;       /* clusters resident at once; 0: not asked   */
    int static_smem;               /* bytes of __shared__ arrays in the kernel  */
    char entry[MF_ENTRY_MAX];
    char spec[MF_SPEC_TEXT_MAX];
} mf_kernel;

typedef struct mf_kernel_table {
    pthread_rwlock_t lock;
    size_t capacity; /* power of two */
    size_t count;
    mf_kernel **slots;
} mf_kernel_table;

mf_status mf_kernel_table_init(mf_kernel_table *t);
void mf_kernel_table_destroy(mf_kernel_table *t);
mf_kernel *mf_kernel_table_find(mf_kernel_table *t, const char *spec);
/* Takes ownership of k (heap-allocated). Its spec must be absent: callers hold the
 * context's load lock and have just missed it. */
mf_status mf_kernel_table_insert(mf_kernel_table *t, mf_kernel *k);
/* Frees every kernel, calling unload on its module first. */
void mf_kernel_table_clear(mf_kernel_table *t, void (*unload)(void *user, CUmodule module),
                           void *user);

#endif
