/* The limited allocator of sandboxed Lua states. */
#include "lua_budget.h"

#include <stdlib.h>

void *mf_lua_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    mf_lua_memory *m = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        m->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > m->limit - m->used) {
        m->refused = true;
        return NULL;
    }
    void *grown = realloc(ptr, nsize);
    if (grown)
        m->used = m->used - old + nsize;
    return grown;
}
