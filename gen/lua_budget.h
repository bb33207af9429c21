/* Memory budget of a sandboxed Lua state (templates, model files). */
#ifndef MF_LUA_BUDGET_H
#define MF_LUA_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mf_lua_memory {
    size_t limit;  /* bytes the state may hold */
    size_t used;
    bool refused;  /* the limit refused an allocation */
} mf_lua_memory;

/* lua_Alloc over an mf_lua_memory: refuses to grow past the limit, which Lua
 * turns into a "not enough memory" error instead of a crash. */
void *mf_lua_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
