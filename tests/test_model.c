/* CPU suite: model descriptions (sandboxed Lua tables, every field validated
 * by name), the embedded presets, and the exact kernel enumeration: for each
 * preset, the set warmup compiles equals the set the runtime's heuristics
 * pick over the token range. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "plan.h"
#include "spec_list.h"

#define OK_OR_FAIL(call) cr_assert_eq((call), MF_OK, "%s: %s", #call, mf_last_error())

static const char *const valid_fields[] = {
    "name = \"tiny\"", "hidden = 256", "intermediate = 128", "experts = 4", "topk = 2",
    "dtypes = {\"bf16\", \"e4m3\"}", "layouts = {\"masked\", \"contiguous\"}",
    "tokens = {1, 64}",
};
#define FIELD_COUNT (sizeof valid_fields / sizeof valid_fields[0])

/* The valid model with field `replaced` swapped for `with` (NULL: dropped). */
static char *model_text(int replaced, const char *with)
{
    static char text[2048];
    size_t n = (size_t)snprintf(text, sizeof text, "-- a test model\nreturn {\n");
    for (int i = 0; i < (int)FIELD_COUNT; i++) {
        const char *field = i == replaced ? with : valid_fields[i];
        if (field)
            n += (size_t)snprintf(text + n, sizeof text - n, "  %s,\n", field);
    }
    snprintf(text + n, sizeof text - n, "}\n");
    return text;
}

static mf_status parse(const char *text, mf_model *m)
{
    return mf_model_parse("test.lua", text, strlen(text), m);
}

Test(model, valid_file_gives_every_field)
{
    mf_model m;
    OK_OR_FAIL(parse(model_text(-1, NULL), &m));
    cr_expect_str_eq(m.name, "tiny");
    cr_expect_eq(m.hidden, 256);
    cr_expect_eq(m.intermediate, 128);
    cr_expect_eq(m.experts, 4);
    cr_expect_eq(m.topk, 2);
    cr_expect_eq(m.dtype_count, 2);
    cr_expect(m.dtypes[0] == MF_DTYPE_BF16 && m.dtypes[1] == MF_DTYPE_E4M3);
    cr_expect_eq(m.layout_count, 2);
    cr_expect(m.layouts[0] == MF_LAYOUT_MASKED && m.layouts[1] == MF_LAYOUT_CONTIGUOUS);
    cr_expect(m.tokens_min == 1 && m.tokens_max == 64);
    cr_expect_eq(m.ue8m0, 0);
    cr_expect_eq(m.sm_count, 0, "absent: the planner's default");
    char text[2048];
    snprintf(text, sizeof text, "%s", model_text(-1, NULL));
    snprintf(strrchr(text, '}'), 64, "  sm_count = 78,\n}\n");
    OK_OR_FAIL(parse(text, &m));
    cr_expect_eq(m.sm_count, 78);
}

typedef struct bad_field {
    int field;        /* index in valid_fields, or -1 to add `text` */
    const char *text; /* replacement (NULL: field dropped) */
    const char *expected;
} bad_field;

Test(model, each_error_names_its_field)
{
    static const bad_field cases[] = {
        {1, NULL, "field 'hidden' is missing"},
        {1, "hidden = \"7168\"", "field 'hidden' must be an integer"},
        {1, "hidden = 7168.5", "field 'hidden' must be an integer"},
        {1, "hidden = 200", "'hidden' and 'intermediate' must be multiples of 128"},
        {2, "intermediate = -8", "field 'intermediate'"},
        {3, "experts = 0", "field 'experts'"},
        {3, "experts = 2000", "field 'experts'"},
        {4, "topk = 8", "field 'topk' (8) exceeds 'experts' (4)"},
        {4, "topk = 33", "field 'topk'"},
        {0, "name = \"\"", "field 'name'"},
        {0, "name = \"a/b\"", "field 'name'"},
        {0, NULL, "field 'name'"},
        {5, "dtypes = {\"fp32\"}", "field 'dtypes', item 1"},
        {5, "dtypes = {\"bf16\", \"bf16\"}", "field 'dtypes', item 2"},
        {5, "dtypes = \"bf16\"", "field 'dtypes' must be a list"},
        {6, "layouts = {}", "field 'layouts' must be a list"},
        {6, "layouts = {\"masked\", \"ragged\"}", "field 'layouts', item 2"},
        {7, "tokens = {64, 1}", "field 'tokens'"},
        {7, "tokens = {0, 8}", "field 'tokens'"},
        {7, "tokens = {1, 2, 3}", "field 'tokens'"},
        {7, "tokens = {1, 2097152}", "field 'tokens'"},
        {7, "tokens = 16", "field 'tokens'"},
        {-1, "hiden = 7168", "unknown field 'hiden'"},
        {-1, "ue8m0 = 1", "field 'ue8m0' must be true or false"},
        {-1, "sm_count = 0", "field 'sm_count' must be an integer in [1, 1024]"},
        {-1, "[1] = 3", "fields are named"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_field *c = &cases[i];
        char text[2048];
        snprintf(text, sizeof text, "%s", model_text(c->field, c->text));
        if (c->field < 0) /* an extra field after the valid ones */
            snprintf(strrchr(text, '}'), 256, "  %s,\n}\n", c->text);
        mf_model m;
        cr_expect_eq(parse(text, &m), MF_ERR_INVALID_ARGUMENT, "case %zu accepted", i);
        cr_expect(strstr(mf_last_error(), c->expected), "case %zu: got '%s', wanted '%s'", i,
                  mf_last_error(), c->expected);
    }
}

Test(model, ue8m0_needs_e4m3)
{
    mf_model m;
    char text[2048];
    snprintf(text, sizeof text, "%s", model_text(5, "dtypes = {\"bf16\"}"));
    snprintf(strrchr(text, '}'), 64, "  ue8m0 = true,\n}\n");
    cr_expect_eq(parse(text, &m), MF_ERR_INVALID_ARGUMENT);
    cr_expect(strstr(mf_last_error(), "'ue8m0' needs \"e4m3\""), "%s", mf_last_error());
    snprintf(text, sizeof text, "%s", model_text(-1, NULL));
    snprintf(strrchr(text, '}'), 64, "  ue8m0 = true,\n}\n");
    OK_OR_FAIL(parse(text, &m));
    cr_expect_eq(m.ue8m0, 1);
}

Test(model, sandbox_stops_what_a_table_does_not_need)
{
    static const struct { const char *text, *expected; } cases[] = {
        {"return os.exit(1)", "global 'os'"},
        {"return io.open('/etc/passwd')", "global 'io'"},
        {"return require('x')", "global 'require'"},
        {"return load('return 1')()", "global 'load'"},
        {"while true do end", "stopped after"},
        {"local s = 'x' while true do s = s .. s end", "memory budget"},
        {"return {\n  hidden = ,\n}", "test.lua:2:"},
        {"return 42", "must return a table, returned a number"},
        {"\x1bLua", "binary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mf_model m;
        cr_expect_eq(parse(cases[i].text, &m), MF_ERR_INVALID_ARGUMENT, "case %zu", i);
        cr_expect(strstr(mf_last_error(), cases[i].expected), "case %zu: %s", i,
                  mf_last_error());
    }
}

Test(model, load_file)
{
    char path[] = "/tmp/mf_model_XXXXXX";
    int fd = mkstemp(path);
    const char *text = model_text(-1, NULL);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    mf_model m;
    OK_OR_FAIL(mf_model_load_file(path, &m));
    cr_expect_str_eq(m.name, "tiny");
    unlink(path);
    cr_expect_eq(mf_model_load_file(path, &m), MF_ERR_IO);
}

/* DESIGN.md, "Model shapes used by benchmarks and presets". */
Test(model, presets_match_the_design_table)
{
    static const struct { const char *name; int h, n, e, k; } table[] = {
        {"deepseek-v3", 7168, 2048, 256, 8},
        {"mixtral-8x7b", 4096, 14336, 8, 2},
        {"qwen3-235b-a22b", 4096, 1536, 128, 8},
        {"qwen3-30b-a3b", 2048, 768, 128, 8},
    };
    char names[MF_MODEL_MAX_PRESETS][MF_MODEL_NAME_MAX];
    cr_assert_eq(mf_model_preset_names(names, MF_MODEL_MAX_PRESETS), 4);
    for (int i = 0; i < 4; i++) {
        mf_model m;
        cr_expect_str_eq(names[i], table[i].name, "presets are listed sorted");
        OK_OR_FAIL(mf_model_load_preset(table[i].name, &m));
        cr_expect_str_eq(m.name, table[i].name);
        cr_expect(m.hidden == table[i].h && m.intermediate == table[i].n &&
                  m.experts == table[i].e && m.topk == table[i].k, "%s", m.name);
        cr_expect(m.tokens_min == 1 && m.tokens_max == 16384, "%s", m.name);
        cr_expect(m.dtype_count == 2 && m.layout_count == 2, "%s", m.name);
    }
}

Test(model, unknown_preset_lists_the_presets)
{
    mf_model m;
    cr_assert_eq(mf_model_load_preset("gpt-5", &m), MF_ERR_INVALID_ARGUMENT);
    cr_expect(strstr(mf_last_error(), "no model preset 'gpt-5'") &&
              strstr(mf_last_error(), "deepseek-v3, mixtral-8x7b"), "%s", mf_last_error());
    cr_expect_eq(mf_model_load_preset("../common.cuh", &m), MF_ERR_INVALID_ARGUMENT);
}

/* ---- enumeration ------------------------------------------------------------------------- */

typedef struct reference {
    mf_spec_list *list;
    size_t calls;
} reference;

static void add_reference(void *user, const char *spec)
{
    reference *r = user;
    r->calls++;
    cr_assert_eq(mf_spec_list_add(r->list, spec), MF_OK);
}

/* What the heuristics pick, asked directly for every token count, dtype and layout. */
static void heuristics_choice(const mf_model *m, mf_spec_list *out)
{
    reference r = {out, 0};
    for (int d = 0; d < m->dtype_count; d++)
        for (int l = 0; l < m->layout_count; l++) {
            mf_layer_shape shape = {
                .hidden = m->hidden, .intermediate = m->intermediate, .experts = m->experts,
                .topk = m->topk, .dtype = m->dtypes[d], .layout = m->layouts[l],
                .ue8m0 = m->dtypes[d] == MF_DTYPE_E4M3 && m->ue8m0, .sm_count = m->sm_count};
            for (int t = m->tokens_min; t <= m->tokens_max; t++)
                cr_assert_eq(mf_layer_kernel_specs(&shape, t, add_reference, &r), MF_OK,
                             "%s, T=%d: %s", m->name, t, mf_last_error());
        }
    cr_assert_gt(r.calls, out->count, "the heuristics repeat kernels across token counts");
    mf_spec_list_sort(out);
}

Test(model, enumeration_equals_the_heuristics_choice_for_each_preset, .timeout = 300)
{
    char names[MF_MODEL_MAX_PRESETS][MF_MODEL_NAME_MAX];
    size_t n = mf_model_preset_names(names, MF_MODEL_MAX_PRESETS);
    for (size_t i = 0; i < n; i++) {
        mf_model m;
        mf_spec_list enumerated = {0}, chosen = {0};
        OK_OR_FAIL(mf_model_load_preset(names[i], &m));
        OK_OR_FAIL(mf_model_kernel_specs(&m, 90, &enumerated));
        heuristics_choice(&m, &chosen);
        cr_expect_eq(enumerated.count, chosen.count, "%s: %zu enumerated, %zu chosen", m.name,
                     enumerated.count, chosen.count);
        for (size_t k = 0; k < enumerated.count && k < chosen.count; k++)
            cr_expect_str_eq(enumerated.items[k], chosen.items[k], "%s", m.name);
        for (size_t k = 1; k < enumerated.count; k++)
            cr_expect_lt(strcmp(enumerated.items[k - 1], enumerated.items[k]), 0,
                         "%s: not sorted or not distinct", m.name);
        mf_spec_list_free(&enumerated);
        mf_spec_list_free(&chosen);
    }
}

Test(model, spec_list_keeps_one_of_each)
{
    mf_spec_list l = {0};
    char spec[64];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1000; i++) {
            snprintf(spec, sizeof spec, "f:k=%d", (i * 7919) % 1000);
            OK_OR_FAIL(mf_spec_list_add(&l, spec));
        }
    cr_assert_eq(l.count, 1000);
    cr_expect(mf_spec_list_contains(&l, "f:k=999"));
    cr_expect_not(mf_spec_list_contains(&l, "f:k=1000"));
    mf_spec_list_sort(&l);
    cr_expect_str_eq(l.items[0], "f:k=0");
    cr_expect(mf_spec_list_contains(&l, "f:k=500"), "still found after sorting");
    mf_spec_list_free(&l);
    cr_expect_eq(l.count, 0);
}

/* Contiguous segments are padded to 128 rows: 64 real rows per expert (2048
 * tokens, top-1 of 32 experts) give 192 rows of capacity per expert, but the
 * GEMM tiles follow expected_m = 64 (64-row tiles; the padding tiles skip).
 * Scored at 192 rows, e4m3 would take 128-row tiles. */
Test(model, contiguous_gemm_tiles_follow_expected_rows)
{
    mf_layer_shape shape = {.hidden = 7168, .intermediate = 2048, .experts = 32, .topk = 1,
                            .dtype = MF_DTYPE_E4M3, .layout = MF_LAYOUT_CONTIGUOUS};
    mf_spec_list specs = {0};
    reference r = {&specs, 0};
    OK_OR_FAIL(mf_layer_kernel_specs(&shape, 2048, add_reference, &r));
    size_t gemms = 0;
    for (size_t i = 0; i < specs.count; i++) {
        if (strncmp(specs.items[i], "gemm_sm90:", 10))
            continue;
        gemms++;
        cr_expect(strstr(specs.items[i], "bm=64,"), "%s: not a 64-row tile", specs.items[i]);
    }
    cr_expect_gt(gemms, 0, "no sm90 GEMM kernel");
    mf_spec_list_free(&specs);
}

/* The spec of the layer's preprocess stage `stage` at T tokens ("" if none). */
static void stage_spec_at(const mf_layer_shape *shape, int tokens, const char *stage, char *out,
                          size_t size)
{
    mf_spec_list specs = {0};
    reference r = {&specs, 0};
    char needle[32];
    snprintf(needle, sizeof needle, "stage=%s", stage);
    OK_OR_FAIL(mf_layer_kernel_specs(shape, tokens, add_reference, &r));
    out[0] = 0;
    for (size_t i = 0; i < specs.count; i++)
        if (strstr(specs.items[i], needle))
            snprintf(out, size, "%s", specs.items[i]);
    mf_spec_list_free(&specs);
}

/* Qwen3-30B-A3B's layer shape, e4m3 in the masked layout. */
static const mf_layer_shape QWEN3_E4M3_MASKED = {.hidden = 2048, .intermediate = 768,
                                                 .experts = 128, .topk = 8,
                                                 .dtype = MF_DTYPE_E4M3,
                                                 .layout = MF_LAYOUT_MASKED};

/* The scan splits an expert's chunks over parts of a 1024-thread block only
 * where one thread per expert would walk more than two batches of 32 and each
 * of the 1024 / E parts gets one batch of 16: Qwen3 (128 experts) at 16384
 * tokens (128 chunks), not at 4104 (33 chunks); DeepSeek-V3 (256 experts,
 * 4 parts) at 16384 tokens would need 32 chunks per part. */
Test(model, scan_splits_chunks_only_where_it_pays)
{
    mf_layer_shape qwen = QWEN3_E4M3_MASKED;
    mf_layer_shape deepseek = {.hidden = 7168, .intermediate = 2048, .experts = 256, .topk = 8,
                               .dtype = MF_DTYPE_BF16, .layout = MF_LAYOUT_CONTIGUOUS};
    char spec[256];
    stage_spec_at(&qwen, 16384, "scan", spec, sizeof spec);
    cr_expect_str_eq(spec, "preprocess:block=1024,layout=masked,stage=scan");
    stage_spec_at(&qwen, 4104, "scan", spec, sizeof spec);
    cr_expect_str_eq(spec, "preprocess:block=256,layout=masked,stage=scan");
    stage_spec_at(&deepseek, 16384, "scan", spec, sizeof spec);
    cr_expect_str_eq(spec, "preprocess:block=256,layout=contiguous,stage=scan");
}

/* Masked with at most 32 chunks of 1024 slots runs no scan: its scatter sums
 * the chunk prefixes itself. Contiguous always scans (segment starts). */
Test(model, masked_few_chunks_sum_in_the_scatter)
{
    mf_layer_shape qwen = QWEN3_E4M3_MASKED;
    char spec[256];
    stage_spec_at(&qwen, 4096, "scan", spec, sizeof spec);
    cr_expect_str_eq(spec, "");
    stage_spec_at(&qwen, 4096, "scatter", spec, sizeof spec);
    cr_expect_str_eq(spec, "preprocess:block=256,dtype=e4m3,layout=masked,prefix=sum,stage=scatter,"
                           "ue8m0=0");
    stage_spec_at(&qwen, 4104, "scatter", spec, sizeof spec);
    cr_expect_str_eq(spec, "preprocess:block=256,dtype=e4m3,layout=masked,stage=scatter,ue8m0=0");
    qwen.layout = MF_LAYOUT_CONTIGUOUS;
    stage_spec_at(&qwen, 4096, "scan", spec, sizeof spec);
    cr_expect_str_eq(spec, "preprocess:block=256,layout=contiguous,stage=scan");
}
