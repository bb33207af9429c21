/* Whether a file may be loaded as kernel code: code read from a file runs on
 * the GPU inside the caller's process, so a file someone else could have
 * replaced is refused. */
#ifndef MF_TRUST_H
#define MF_TRUST_H

#include "moeforge.h"

/* MF_OK when path is a regular file and both it and its directory are owned by
 * this user (or by root, for system-wide installs) and writable by neither
 * group nor others. Otherwise MF_ERR_UNTRUSTED naming what was wrong. */
__attribute__((visibility("default"))) mf_status mf_trust_file(const char *path);

#endif
