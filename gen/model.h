/* Model descriptions for exact warmup. A model file is Lua that returns one
 * table of plain values, run sandboxed (no library at all, an instruction and
 * a memory budget):
 *
 *   return {
 *     name = "deepseek-v3",
 *     hidden = 7168,            -- H
 *     intermediate = 2048,      -- N, per expert after the gate|up split
 *     experts = 256,            -- E on this rank (divide by the EP size)
 *     topk = 8,                 -- K
 *     dtypes = {"bf16", "e4m3"},
 *     layouts = {"masked", "contiguous"},
 *     tokens = {1, 16384},      -- token counts a forward pass may see
 *     ue8m0 = false,            -- optional: power-of-two FP8 scales
 *     sm_count = 132,           -- optional: the GPU's SMs (tile choice depends
 *   }                           --   on them; default an H200's 132)
 *
 * Every field but ue8m0 and sm_count is required and unknown fields are
 * refused, each error naming the field. Presets for the models of DESIGN.md live in
 * templates/models/<name>.lua and are embedded in the binaries. */
#ifndef MF_MODEL_H
#define MF_MODEL_H

#include <stddef.h>

#include "moeforge.h"
#include "spec_list.h"

#define MF_MODEL_MAX_TOKENS (1 << 20)
#define MF_MODEL_MAX_PRESETS 32
#define MF_MODEL_NAME_MAX 64 /* bytes, NUL included */

typedef struct mf_model {
    char name[MF_MODEL_NAME_MAX];
    int hidden, intermediate, experts, topk;
    mf_dtype dtypes[2];
    int dtype_count;
    mf_layout layouts[2];
    int layout_count;
    int tokens_min, tokens_max;
    int ue8m0;
    int sm_count; /* 0: the planner's default (an H200) */
} mf_model;

/* Runs and validates a model file's text; origin names it in messages. */
mf_status mf_model_parse(const char *origin, const char *text, size_t len, mf_model *out);

mf_status mf_model_load_file(const char *path, mf_model *out);

/* A preset by name ("deepseek-v3"); MF_ERR_INVALID_ARGUMENT listing the
 * presets when there is no such one. */
mf_status mf_model_load_preset(const char *name, mf_model *out);

/* Names of the embedded presets, sorted; returns how many (at most max). */
size_t mf_model_preset_names(char names[][MF_MODEL_NAME_MAX], size_t max);

/* The distinct kernel specs a forward pass of the model launches for any
 * token count in its range, dtype and layout (mf_layer_kernel_specs, the
 * runtime's own choice) on a device of compute capability cc (90 for
 * sm_90a: mf_arch_cc), sorted. */
mf_status mf_model_kernel_specs(const mf_model *m, int cc, mf_spec_list *out);

#endif
