/* Kernel lookup for ops and the device error-flag helpers. */
#include "op_common.h"

#include "error.h"

#include <stdio.h>
#include <string.h>

mf_status mf_op_kernel(mf_context *ctx, const mf_spec *spec, mf_kernel **out)
{
    char text[MF_SPEC_TEXT_MAX];
    MF_TRY(mf_spec_format(spec, text, sizeof text));
    return mf_kernel_get(ctx, text, out);
}

mf_status mf_error_flags_read(mf_context *ctx, const int32_t *flags, int32_t *value)
{
    /* Arguments before the context, as every op does. */
    if (!flags || !value)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_error_flags_read: flags or value is NULL");
    if (!ctx)
        return MF_FAIL(MF_ERR_INVALID_ARGUMENT, "mf_error_flags_read: ctx is NULL");
    return mf_memcpy_dtoh(ctx, value, flags, sizeof *value);
}

const char *mf_error_flags_string(int32_t value, char *buf, size_t size)
{
    static const struct { int32_t bit; const char *name; } names[] = {
        {MF_DEVICE_ERR_BAD_EXPERT_ID, "bad expert id"},
        {MF_DEVICE_ERR_DUPLICATE_ID, "duplicate expert id in a token"},
        {MF_DEVICE_ERR_CAPACITY, "capacity overflow"},
        {MF_DEVICE_ERR_BAD_DST, "src2dst out of range"},
    };
    if (!buf || size == 0)
        return "";
    size_t used = (size_t)snprintf(buf, size, "%s", value ? "" : "none");
    for (size_t i = 0; i < sizeof names / sizeof names[0] && used < size; i++)
        if (value & names[i].bit)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? " | " : "",
                                     names[i].name);
    return buf;
}
