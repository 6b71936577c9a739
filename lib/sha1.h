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

/* A name-based (version 5) UUID in canonical lower-case text: SHA-1 over the
 * 16 namespace bytes and the n_parts strings joined by 0x1f (NULL parts are
 * empty). out receives 37 bytes. Shared by event and alert ids. */
void ops_sha1_uuid5(const uint8_t ns[16], const char *const *parts, size_t n_parts, char out[37]);

#endif
