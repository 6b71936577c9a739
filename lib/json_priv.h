/*
 * opstream library-internal JSON building through jansson: strings from
 * untrusted bytes (invalid UTF-8 repaired) and compact output into a
 * caller's buffer. Not installed; modules under lib/ include it.
 */
#ifndef OPSTREAM_JSON_PRIV_H
#define OPSTREAM_JSON_PRIV_H

#include <stddef.h>

#include <jansson.h>

/* A new JSON string of the n bytes at s, each byte that starts no valid
 * UTF-8 sequence replaced by U+FFFD. NULL when out of memory. */
json_t *ops_json_string_repaired(const char *s, size_t n);

/* v as compact JSON (no spaces, keys in insertion order, reals with 15
 * significant digits) into buf,
 * NUL-terminated. Returns the length, or -1 when it does not fit (buf then
 * holds "" when size > 0). */
int ops_json_write(const json_t *v, char *buf, size_t size);

#endif
