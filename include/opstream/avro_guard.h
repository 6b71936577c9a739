/*
 * opstream Avro guard: checks an untrusted Avro binary body against its
 * writer schema before avro-c reads it. avro-c allocates whatever a length or
 * block count claims; the guard proves every length, count and index fits the
 * schema, the bytes left and the limits, without allocating anything.
 */
#ifndef OPSTREAM_AVRO_GUARD_H
#define OPSTREAM_AVRO_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#include "opstream/codec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults used for the zero fields of ops_avro_guard_limits_t. */
#define OPS_AVRO_GUARD_MAX_STRING 4096 /* bytes in one string or bytes value */
#define OPS_AVRO_GUARD_MAX_ITEMS 1024  /* array and map items in one datum, in total */
#define OPS_AVRO_GUARD_MAX_DEPTH 32    /* schema nesting (recursive schemas) */

typedef struct ops_avro_guard_limits {
    size_t max_string_bytes; /* 0: OPS_AVRO_GUARD_MAX_STRING */
    uint64_t max_items;      /* 0: OPS_AVRO_GUARD_MAX_ITEMS */
    int max_depth;           /* 0: OPS_AVRO_GUARD_MAX_DEPTH */
} ops_avro_guard_limits_t;

/* Walks body[0..len) as exactly one datum of writer_schema. Returns
 * OPS_CODEC_OK when avro-c can safely read it; otherwise TRUNCATED,
 * MALFORMED or TOO_LARGE with errstr saying what, where (body offset) and in
 * which field, e.g. "truncated: string length 40 at body offset 17 exceeds
 * the 12 bytes left (field location)". The schema stays owned by the caller;
 * limits may be NULL for the defaults. Never allocates. */
ops_codec_err_t ops_avro_guard_check(avro_schema_t writer_schema, const void *body, size_t len,
                                     const ops_avro_guard_limits_t *limits, char *errstr,
                                     size_t errstr_size);

/* The fewest bytes one datum of the schema can encode to (0 for null and
 * for records of nulls). */
size_t ops_avro_guard_min_size(avro_schema_t schema);

#ifdef __cplusplus
}
#endif
#endif
