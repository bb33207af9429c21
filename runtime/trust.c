/* Ownership and permission checks before loading kernel files. */
#include "trust.h"

#include "error.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static mf_status check_owner_and_mode(const char *what, const char *path, const struct stat *st)
{
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return MF_FAIL(MF_ERR_UNTRUSTED, "%s %s is owned by uid %u, neither this user (%u) nor "
                       "root: refused", what, path, (unsigned)st->st_uid, (unsigned)geteuid());
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return MF_FAIL(MF_ERR_UNTRUSTED, "%s %s is writable by group or others (mode %03o): "
                       "refused", what, path, (unsigned)(st->st_mode & 0777));
    return MF_OK;
}

mf_status mf_trust_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return MF_FAIL(MF_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return MF_FAIL(MF_ERR_UNTRUSTED, "%s is not a regular file: refused", path);
    MF_TRY(check_owner_and_mode("file", path, &st));
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    const char *dir = dirname(copy);
    if (stat(dir, &st) != 0)
        return MF_FAIL(MF_ERR_IO, "%s: %s", dir, strerror(errno));
    return check_owner_and_mode("directory", dir, &st);
}
