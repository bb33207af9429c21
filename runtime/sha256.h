/* SHA-256 (FIPS 180-4), streaming. Used for cache keys, archive index and payload checksums. */
#ifndef MF_SHA256_H
#define MF_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct mf_sha256 {
    uint32_t state[8];
    uint64_t bytes;    /* message length so far */
    uint8_t block[64]; /* pending partial block */
    size_t fill;       /* bytes used in block */
} mf_sha256;

void mf_sha256_init(mf_sha256 *s);
void mf_sha256_update(mf_sha256 *s, const void *data, size_t len);
/* Writes the digest; s must be initialized again before reuse. */
void mf_sha256_final(mf_sha256 *s, uint8_t digest[32]);

/* One-shot digest of a buffer. C gives typedefs and functions one name space,
 * so the state type mf_sha256 and a function mf_sha256 cannot both exist; the
 * function-like macro keeps the call spelling mf_sha256(data, len, digest)
 * while a bare mf_sha256 (not followed by '(') still names the type. */
void mf_sha256_digest(const void *data, size_t len, uint8_t digest[32]);
#define mf_sha256(data, len, digest) mf_sha256_digest((data), (len), (digest))
/* Lower-case hex, NUL-terminated. */
void mf_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
