/* Writes the seed corpus of fuzz_archive into DIR: small valid archives made
 * by the real writer (gen/archive_writer.h), so the seeds follow the format
 * whenever it changes. Payloads are stand-ins (the reader never interprets a
 * cubin); each archive is written once sealed (mode byte 1: the harness
 * recomputes checksums after mutating) and once raw (mode byte 0).
 * usage: make_archive_seeds DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive_writer.h"
#include "error.h"

typedef struct seed_entry {
    const char *spec, *target, *entry;
    int is_ptx;
    const char *payload;
} seed_entry;

/* A deployment archive: one spec as cubin and PTX, another as cubin only. */
static const seed_entry deployment[] = {
    {"silu_mul:block=256,dtype=bf16,layout=masked,unroll=4", "sm_90a", "mf_silu_mul_0123456789abcdef",
     0, "\x7f" "ELF stand-in cubin"},
    {"silu_mul:block=256,dtype=bf16,layout=masked,unroll=4", "compute_90a",
     "mf_silu_mul_0123456789abcdef", 1, ".version 8.0\n.target sm_90a\n"},
    {"combine:block=256,dtype=bf16,kchunk=1,unroll=4", "sm_90a", "mf_combine_fedcba9876543210", 0,
     "\x7f" "ELF another"},
};

/* A disk-cache entry: a one-entry archive. */
static const seed_entry cache_entry[] = {
    {"gemm:bm=64,bn=64,dtype=bf16,layout=masked,stages=4,wm=2,wn=2", "compute_90a",
     "mf_gemm_00112233445566778", 1, ".version 8.0\n"},
};

static int write_seed(const char *dir, const char *name, int mode, const void *data, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%s", dir, name, mode ? "sealed" : "raw");
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    unsigned char m = (unsigned char)mode;
    int ok = fwrite(&m, 1, 1, f) == 1 && fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_archive(const char *dir, const char *name, const seed_entry *e, size_t n)
{
    mf_archive_writer *w = NULL;
    void *data = NULL;
    size_t size = 0;
    mf_status s = mf_archive_writer_create("moeforge fuzz seed", &w);
    for (size_t i = 0; s == MF_OK && i < n; i++)
        s = mf_archive_writer_add(w, e[i].spec, e[i].target, e[i].entry, e[i].is_ptx,
                                  e[i].payload, strlen(e[i].payload));
    if (s == MF_OK)
        s = mf_archive_writer_serialize(w, &data, &size);
    mf_archive_writer_destroy(w);
    int rc = s == MF_OK && write_seed(dir, name, 0, data, size) == 0 &&
                     write_seed(dir, name, 1, data, size) == 0
                 ? 0
                 : -1;
    if (rc)
        fprintf(stderr, "make_archive_seeds: %s: %s\n", name,
                s == MF_OK ? "cannot write the seed" : mf_last_error());
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    int rc = write_archive(argv[1], "deployment", deployment,
                           sizeof deployment / sizeof deployment[0]);
    rc |= write_archive(argv[1], "cache-entry", cache_entry,
                        sizeof cache_entry / sizeof cache_entry[0]);
    return rc ? 1 : 0;
}
