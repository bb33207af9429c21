/* Files the CPU tests write: templates for MOEFORGE_TEMPLATE_DIR and the like. */
#ifndef MF_TEST_FILE_SUPPORT_H
#define MF_TEST_FILE_SUPPORT_H

#include <criterion/criterion.h>
#include <stdio.h>

/* Writes text to dir/name; the test fails if the file cannot be written. */
static inline void write_test_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0, "cannot write %s", path);
}

#endif
