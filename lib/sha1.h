/*
 * SHA-1 (FIPS 180-4), private to the core library: it exists only to derive
 * name-based (version 5) UUIDs for event ids, not for any security purpose.
 */
#ifndef OPSTREAM_SHA1_H
#define OPSTREAM_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define OPS_SHA1_DIGEST_LEN 20

/* Running state of one digest; the caller owns it (stack is fine). */
typedef struct ops_sha1 {
    uint32_t h[5];
    uint64_t total_len; /* bytes fed so far */
    uint8_t block[64];
    size_t block_len; /* bytes waiting in block */
} ops_sha1_t;

void ops_sha1_init(ops_sha1_t *s);
void ops_sha1_update(ops_sha1_t *s, const void *data, size_t len);
/* Pads, writes the 20-byte digest to out and leaves s unusable until the next init. */
void ops_sha1_final(ops_sha1_t *s, uint8_t out[OPS_SHA1_DIGEST_LEN]);
/* One-shot digest of a buffer. */
void ops_sha1(const void *data, size_t len, uint8_t out[OPS_SHA1_DIGEST_LEN]);

#endif
