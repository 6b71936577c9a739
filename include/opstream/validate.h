/*
 * opstream validation: the rules every event must meet before it is produced
 * (operation code, ISO 3166-1 alpha-2 country, counts, minors, timestamps,
 * enum symbols), and the deterministic event_id. Pure; no I/O.
 */
#ifndef OPSTREAM_VALIDATE_H
#define OPSTREAM_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2000-01-01T00:00:00Z in ms: the earliest accepted event time. */
#define OPS_VALID_MIN_TIME_MS 946684800000LL
/* Event times may be at most this far ahead of "now". */
#define OPS_VALID_MAX_FUTURE_MS (24LL * 3600 * 1000)

bool ops_valid_operation(const char *op); /* [A-Z0-9][A-Z0-9-]{0,31} */

/* The operation code format in words, for messages. */
#define OPS_OPERATION_FORMAT "A-Z, 0-9 and '-', 1-32 characters, not starting with '-'"

/* 0 when op is an operation code; else -1 with errstr explaining the format
 * ("'liberterra-ii' is not an operation code (A-Z, ...): did you mean
 * LIBERTERRA-II?"), the one wording every program uses. */
int ops_operation_check(const char *op, char *errstr, size_t errstr_size);
bool ops_valid_country(const char *cc); /* an assigned ISO 3166-1 alpha-2 code */
bool ops_valid_uuid(const char *s);     /* canonical lower-case 8-4-4-4-12 */

/* Checks every field of ev against the event model. now_ms is the reference
 * "now" for the future bound (pass the wall clock; tests pass a fixed value).
 * Returns 0, or -1 with errstr as "field: reason" (e.g.
 * "minors: 12 is more than victims (10)"). On error, *fieldp (when not NULL)
 * points at the offending field's name. */
int ops_validate_event(const ops_event_t *ev, int64_t now_ms, const char **fieldp, char *errstr,
                       size_t errstr_size);

/* The deterministic event_id: a name-based (version 5, SHA-1) UUID in a
 * fixed opstream namespace over "operation\x1fcountry\x1fkind\x1fsource_ref",
 * so the same record always gets the same id. out receives 37 bytes. */
void ops_event_id_derive(const char *operation, const char *country, ops_kind_t kind,
                         const char *source_ref, char out[OPS_EVENT_ID_LEN + 1]);

/* Parses a timestamp: ISO 8601 with a zone ("2024-09-30T14:05:00Z",
 * "2024-09-30T16:05:00.250+02:00") or epoch milliseconds ("1727705100000").
 * Returns 0 and sets *msp, or -1 with errstr. */
int ops_validate_parse_timestamp(const char *s, int64_t *msp, char *errstr, size_t errstr_size);

/* Formats ms as "2024-09-30T14:05:00.000Z" into buf (at least 25 bytes). */
void ops_validate_format_timestamp(int64_t ms, char *buf, size_t bufsize);

#ifdef __cplusplus
}
#endif
#endif
