/* The moeforge command: pieces shared by its command files. */
#ifndef MF_CLI_H
#define MF_CLI_H

#include "moeforge.h"

/* Exit codes, documented in `moeforge --help` and the README. */
enum {
    CLI_OK = 0,
    CLI_FAILED = 1,         /* the operation failed; the reason is on stderr */
    CLI_USAGE = 2,          /* bad command line */
    CLI_KERNELS_FAILED = 3  /* warmup or pack: some kernels failed, each listed on stderr */
};

#define CLI_MAX_ARCHS 8

/* Options of every command; each command accepts a subset. */
typedef struct cli_args {
    const char *archs[CLI_MAX_ARCHS];
    int arch_count;
    int ptx, no_ptx, threads, include_builtin, quiet;
    int cache, presets, from_cache;
    const char *model, *preset, *out_dir;
    char **positional;
    int positional_count;
} cli_args;

/* Parses argv (after the command name). `allowed` names the options the
 * command takes, space-separated without dashes ("arch ptx threads"). Without
 * --arch, archs is {"sm_90a"}. Returns CLI_OK, or CLI_USAGE or CLI_FAILED with
 * a message on stderr; the caller frees out->positional in every case. */
int cli_parse(const char *command, int argc, char **argv, const char *allowed, cli_args *out);

/* Prints "moeforge: what: <last error>" on stderr; returns CLI_FAILED. */
int cli_failed(const char *what);

/* "moeforge: message" on stderr and a pointer to --help; returns CLI_USAGE. */
int cli_usage_error(const char *command, const char *message);

/* Commands over kernel lists, the cache and archives (cli_kernels.c). */
int cli_warmup(int argc, char **argv);
int cli_pack(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_clear(int argc, char **argv);

#endif
