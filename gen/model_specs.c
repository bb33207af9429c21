/* The kernels a model's forward passes launch, asked of the runtime's own
 * planner (runtime/plan.h) for every token count, dtype and layout. */
#include "model.h"

#include "error.h"
#include "plan.h"

typedef struct collector {
    mf_spec_list *list;
    mf_status status;
} collector;

static void collect(void *user, const char *spec)
{
    collector *c = user;
    if (c->status == MF_OK)
        c->status = mf_spec_list_add(c->list, spec);
}

static mf_status specs_of_shape(const mf_layer_shape *shape, const mf_model *m, collector *c)
{
    for (int t = m->tokens_min; t <= m->tokens_max; t++) {
        MF_TRY(mf_layer_kernel_specs(shape, t, collect, c));
        MF_TRY(c->status);
    }
    return MF_OK;
}

mf_status mf_model_kernel_specs(const mf_model *m, int cc, mf_spec_list *out)
{
    if (!m || !out)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_model_kernel_specs: null argument");
    collector c = {out, MF_OK};
    for (int d = 0; d < m->dtype_count; d++)
        for (int l = 0; l < m->layout_count; l++) {
            mf_layer_shape shape = {
                .hidden = m->hidden, .intermediate = m->intermediate, .experts = m->experts,
                .topk = m->topk, .dtype = m->dtypes[d], .layout = m->layouts[l],
                .ue8m0 = m->dtypes[d] == MF_DTYPE_E4M3 && m->ue8m0, .sm_count = m->sm_count, .cc = cc};
            MF_TRY(specs_of_shape(&shape, m, &c));
        }
    mf_spec_list_sort(out);
    return MF_OK;
}
