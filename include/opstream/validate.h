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

#include "opstream/config.h"
#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2000-01-01T00:00:00Z in ms: the earliest accepted event time. */
#define OPS_VALID_MIN_TIME_MS 946684800000LL
/* Event times may be at most this far ahead of "now". */
#define OPS_VALID_MAX_FUTURE_MS (24LL * 3600 * 1000)

/* The accepted range of event times (occurred_at and reported_at): from
 * time_min_ms to the validating clock's now + time_max_future_ms. The same
 * limits serve the producer and every consumer, so both judge an event
 * alike. */
typedef struct ops_event_limits {
    int64_t time_min_ms;        /* default 2000-01-01T00:00:00Z = 946684800000 */
    int64_t time_max_future_ms; /* default 86400000 (now + 1 day) */
} ops_event_limits_t;

/* The defaults above. */
void ops_event_limits_default(ops_event_limits_t *lim);

/* Defaults, then opstream.event.time.min (ISO 8601 with a zone, or epoch
 * ms) and opstream.event.time.max.future.s from cfg (may be NULL: the
 * defaults). Returns 0, or -1 with errstr naming the key and the value. */
int ops_event_limits_from_config(const ops_config_t *cfg, ops_event_limits_t *lim, char *errstr,
                                 size_t errstr_size);

/* Every rule the producer applies, for an event from anywhere (a producer's
 * input, or a decoded Kafka message of a foreign producer): event_id a
 * canonical UUID, operation code, ISO 3166-1 alpha-2 country, source_ref
 * and location, occurred_at and reported_at within lim at now_ms (the wall
 * clock), the headline count in 1..OPS_COUNT_MAX (100000 per event, so
 * negative, zero and 2^31-1 are refused), minors and referred in
 * 0..count, the kind's enum symbols, and the nationalities array (at most
 * OPS_NATIONALITIES_MAX assigned codes). lim NULL: the defaults.
 * Returns 0 when valid; -1 with errstr "invalid: FIELD: VALUE reason",
 * e.g. "invalid: victims: -3 is not in 1..100000". */
int ops_event_validate(const ops_event_t *ev, const ops_event_limits_t *lim, int64_t now_ms,
                       char *errstr, size_t errstr_size);

bool ops_valid_operation(const char *op); /* [A-Z0-9][A-Z0-9-]{0,31} */

/* The operation code format in words, for messages. */
#define OPS_OPERATION_FORMAT "A-Z, 0-9 and '-', 1-32 characters, not starting with '-'"

/* 0 when op is an operation code; else -1 with errstr explaining the format
 * ("'liberterra-ii' is not an operation code (A-Z, ...): did you mean
 * LIBERTERRA-II?"), the one wording every program uses. */
int ops_operation_check(const char *op, char *errstr, size_t errstr_size);
bool ops_valid_country(const char *cc); /* an assigned ISO 3166-1 alpha-2 code */
bool ops_valid_uuid(const char *s);     /* canonical lower-case 8-4-4-4-12 */
/* The 16 bytes of a canonical UUID text (what ops_valid_uuid accepts): 0,
 * or -1 when s is not one (raw then holds garbage). */
int ops_uuid_raw(const char *s, uint8_t raw[16]);
/* The canonical text of 16 UUID bytes, NUL-terminated. */
void ops_uuid_text(const uint8_t raw[16], char text[OPS_EVENT_ID_LEN + 1]);

/* The same rules as ops_event_validate (one implementation), in the form
 * the producer reports rejects: errstr as "field: reason" (e.g.
 * "minors: 12 is more than victims (10)") and *fieldp (when not NULL) the
 * offending field's name. now_ms is the reference "now" for the future
 * bound (pass the wall clock; tests pass a fixed value); lim NULL: the
 * defaults. Returns 0 or -1. */
int ops_validate_event_limits(const ops_event_t *ev, const ops_event_limits_t *lim, int64_t now_ms,
                              const char **fieldp, char *errstr, size_t errstr_size);
/* ops_validate_event_limits with the default limits. */
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
