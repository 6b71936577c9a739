/*
 * opstream id set: a growable hash set of canonical UUID strings (alert ids,
 * event ids), for "have I seen this id" checks such as the alerts already on
 * the alert topic. Pure; memory grows with the number of ids added.
 */
#ifndef OPSTREAM_IDSET_H
#define OPSTREAM_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zero-initialise (ops_idset_t s = {0}) before use; the set owns its tables
 * and ops_idset_clear() frees them. A canonical UUID (lowercase) is held in
 * 16 bytes, at most 4 slots (64 bytes) per id at half load; other ids as
 * text. */
typedef struct ops_idset {
    uint8_t (*v)[16]; /* canonical UUIDs */
    size_t cap, n_bin;
    char (*text)[OPS_EVENT_ID_LEN + 1]; /* any other id */
    size_t text_cap;
    size_t n; /* ids held */
} ops_idset_t;

/* True when id was added before. */
bool ops_idset_has(const ops_idset_t *s, const char *id);
/* Adds id (at most OPS_EVENT_ID_LEN bytes are kept; "" is not stored).
 * 1 when new, 0 when already there, -1 when out of memory. */
int ops_idset_add(ops_idset_t *s, const char *id);
/* Frees the table; the set is empty and usable again. Accepts NULL. */
void ops_idset_clear(ops_idset_t *s);

#ifdef __cplusplus
}
#endif
#endif
