/* libFuzzer target: the model-file loader (gen/model.h). The input is a model
 * file's text. Any input must end in MF_OK with every field inside its
 * documented range, or in MF_ERR_INVALID_ARGUMENT; the instruction and memory
 * budgets stop runaway files. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* What mf_model_parse promises about a model it accepted. */
static int model_is_valid(const mf_model *m)
{
    size_t n = strnlen(m->name, sizeof m->name);
    return n > 0 && n < sizeof m->name && m->hidden >= 8 && m->intermediate >= 8 &&
           m->experts >= 1 && m->experts <= 1024 && m->topk >= 1 && m->topk <= m->experts &&
           m->dtype_count >= 1 && m->dtype_count <= 2 && m->layout_count >= 1 &&
           m->layout_count <= 2 && m->tokens_min >= 1 && m->tokens_min <= m->tokens_max &&
           m->tokens_max <= MF_MODEL_MAX_TOKENS && m->sm_count >= 0 && m->sm_count <= 1024;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mf_model m;
    mf_status s = mf_model_parse("fuzz.lua", (const char *)data, size, &m);
    if (s == MF_OK ? !model_is_valid(&m) : s != MF_ERR_INVALID_ARGUMENT)
        abort();
    return 0;
}
