/*
 * SHA-1 as specified in FIPS 180-4 section 6.1, written for the version 5
 * UUIDs that give events their deterministic ids. Not for security: SHA-1
 * is broken for collision resistance, which an id derivation does not need.
 */
#include "sha1.h"

#include <string.h>

static uint32_t rotl(uint32_t x, unsigned n) {
    return (x << n) | (x >> (32 - n));
}

/*
 * Processes one 512-bit block (FIPS 180-4 6.1.2): expand the 16 message
 * words to an 80-word schedule, then 80 rounds whose function and constant
 * change every 20 rounds, and add the result into the hash state.
 */
static void compress(uint32_t h[5], const uint8_t block[64]) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++) {
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 |
               (uint32_t)block[4 * t + 2] << 8 | (uint32_t)block[4 * t + 3];
    }
    for (int t = 16; t < 80; t++)
        w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d); /* Ch */
            k = 0x5a827999;
        } else if (t < 40) {
            f = b ^ c ^ d; /* Parity */
            k = 0x6ed9eba1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d); /* Maj */
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d; /* Parity */
            k = 0xca62c1d6;
        }
        uint32_t tmp = rotl(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rotl(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* Initial hash value H(0), FIPS 180-4 5.3.1. */
void ops_sha1_init(ops_sha1_t *s) {
    s->h[0] = 0x67452301;
    s->h[1] = 0xefcdab89;
    s->h[2] = 0x98badcfe;
    s->h[3] = 0x10325476;
    s->h[4] = 0xc3d2e1f0;
    s->total_len = 0;
    s->block_len = 0;
}

/* Buffers partial blocks so callers may feed any split of the message. */
void ops_sha1_update(ops_sha1_t *s, const void *data, size_t len) {
    const uint8_t *p = data;
    s->total_len += len;
    while (len > 0) {
        size_t take = sizeof(s->block) - s->block_len;
        if (take > len)
            take = len;
        memcpy(s->block + s->block_len, p, take);
        s->block_len += take;
        p += take;
        len -= take;
        if (s->block_len == sizeof(s->block)) {
            compress(s->h, s->block);
            s->block_len = 0;
        }
    }
}

/*
 * Padding (FIPS 180-4 5.1.1): a 1 bit, zeros up to 56 bytes mod 64, then
 * the message length in bits as a 64-bit big-endian number.
 */
void ops_sha1_final(ops_sha1_t *s, uint8_t out[OPS_SHA1_DIGEST_LEN]) {
    uint64_t bits = s->total_len * 8;
    s->block[s->block_len++] = 0x80;
    if (s->block_len > 56) {
        memset(s->block + s->block_len, 0, sizeof(s->block) - s->block_len);
        compress(s->h, s->block);
        s->block_len = 0;
    }
    memset(s->block + s->block_len, 0, 56 - s->block_len);
    for (int i = 0; i < 8; i++)
        s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(s->h, s->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
    memset(s, 0, sizeof(*s));
}

void ops_sha1(const void *data, size_t len, uint8_t out[OPS_SHA1_DIGEST_LEN]) {
    ops_sha1_t s;
    ops_sha1_init(&s);
    ops_sha1_update(&s, data, len);
    ops_sha1_final(&s, out);
}

/*
 * UUID version 5 (RFC 9562 section 5.5): the first 16 bytes of the digest
 * with the version nibble set to 5 and the variant bits to 10. The unit
 * separator (0x1f) keeps "A"+"BC" and "AB"+"C" apart.
 */
void ops_sha1_uuid5(const uint8_t ns[16], const char *const *parts, size_t n_parts, char out[37]) {
    static const char hex[] = "0123456789abcdef";
    ops_sha1_t s;
    uint8_t d[OPS_SHA1_DIGEST_LEN];

    ops_sha1_init(&s);
    ops_sha1_update(&s, ns, 16);
    for (size_t i = 0; i < n_parts; i++) {
        if (i > 0)
            ops_sha1_update(&s, "\x1f", 1);
        if (parts[i] != NULL)
            ops_sha1_update(&s, parts[i], strlen(parts[i]));
    }
    ops_sha1_final(&s, d);
    d[6] = (uint8_t)((d[6] & 0x0f) | 0x50);
    d[8] = (uint8_t)((d[8] & 0x3f) | 0x80);

    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[d[i] >> 4];
        out[o++] = hex[d[i] & 0x0f];
    }
    out[o] = '\0';
}
