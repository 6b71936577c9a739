/*
 * opstream records: the mapping from named input fields (CSV columns, JSON
 * keys: the Avro field names plus "kind") to an ops_event_t, with defaults
 * (--operation, --country, --kind, reported_at = now, derived event_id),
 * contradiction checks and validation, each error naming its field. Also the
 * reverse, an event as one JSON line. Pure; no I/O.
 */
#ifndef OPSTREAM_RECORD_H
#define OPSTREAM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "opstream/event.h"
#include "opstream/json.h"
#include "opstream/validate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Input fields: "kind" plus every field of the event schemas. */
typedef enum ops_field {
    OPS_FIELD_KIND = 0,
    OPS_FIELD_EVENT_ID,
    OPS_FIELD_OPERATION,
    OPS_FIELD_COUNTRY,
    OPS_FIELD_OCCURRED_AT,
    OPS_FIELD_REPORTED_AT,
    OPS_FIELD_SOURCE_REF,
    OPS_FIELD_LOCATION,
    OPS_FIELD_PERSONS,               /* arrest */
    OPS_FIELD_OFFENCE,               /* arrest */
    OPS_FIELD_SUSPECT_NATIONALITIES, /* arrest */
    OPS_FIELD_VICTIMS,               /* rescue */
    OPS_FIELD_MINORS,                /* rescue, migrant */
    OPS_FIELD_REFERRED,              /* rescue (schema v2) */
    OPS_FIELD_EXPLOITATION,          /* rescue */
    OPS_FIELD_SITE,                  /* rescue */
    OPS_FIELD_VICTIM_NATIONALITIES,  /* rescue */
    OPS_FIELD_MIGRANTS,              /* migrant */
    OPS_FIELD_NATIONALITIES,         /* migrant */
    OPS_FIELD_ITEMS,                 /* seizure */
    OPS_FIELD_CATEGORY,              /* seizure */
    OPS_FIELD_COUNT
} ops_field_t;

const char *ops_field_name(ops_field_t f); /* NULL when out of range */
int ops_field_from_name(const char *name); /* -1 for an unknown name */

/* One value as read. Absent: a missing column or key, an empty CSV cell, a
 * JSON null. CSV cells are text (arrays ';'-separated); JSON values keep
 * their type so that "persons": "3" can be told apart from "persons": 3. */
typedef enum ops_value_type {
    OPS_VALUE_ABSENT = 0,
    OPS_VALUE_TEXT,   /* CSV cell */
    OPS_VALUE_STRING, /* JSON string */
    OPS_VALUE_NUMBER, /* JSON number */
    OPS_VALUE_ARRAY   /* JSON array of strings */
} ops_value_type_t;

typedef struct ops_value {
    ops_value_type_t type;
    const char *text;         /* TEXT, STRING, NUMBER */
    const char *const *items; /* ARRAY */
    size_t n_items;           /* ARRAY */
} ops_value_t;

/* One input record: values by field. The strings are borrowed from the
 * reader (CSV or JSON parser) and must stay valid until ops_record_build. */
typedef struct ops_record {
    ops_value_t v[OPS_FIELD_COUNT];
} ops_record_t;

/* What the command line fixes for every record. */
typedef struct ops_record_defaults {
    const char *operation;            /* NULL: each record names its own */
    const char *country;              /* NULL: each record names its own */
    int kind;                         /* an ops_kind_t, or -1: each record names its own */
    int64_t now_ms;                   /* reported_at default and the validation clock */
    const ops_event_limits_t *limits; /* accepted event times; NULL: the defaults */
} ops_record_defaults_t;

void ops_record_clear(ops_record_t *rec);

/* Maps a CSV header row to fields: map[i] receives the field of column i.
 * An unknown or repeated column name is an error naming it and its column
 * number: "column 5: unknown column 'victim_count'". Returns 0 or -1. */
int ops_record_map_header(const char *const *names, size_t n, int *map, char *errstr,
                          size_t errstr_size);

/* Fills rec from one parsed JSON object. An unknown key is an error naming
 * it. Returns 0, or -1 with errstr as "key: reason" and *fieldp (may be
 * NULL) set to the key, which lives in obj (valid until its next parse). */
int ops_record_from_json(ops_record_t *rec, const ops_json_t *obj, const char **fieldp,
                         char *errstr, size_t errstr_size);

/* Builds and validates the event. Missing operation/country/kind come from
 * d; a value that contradicts d is an error; reported_at defaults to
 * d->now_ms, event_id to ops_event_id_derive(); a field that does not belong
 * to the record's kind must be absent. Returns 0, or -1 with errstr as
 * "field: reason" and *fieldp (may be NULL) set to the field name. */
int ops_record_build(const ops_record_t *rec, const ops_record_defaults_t *d, ops_event_t *ev,
                     const char **fieldp, char *errstr, size_t errstr_size);

/* Writes ev as one JSON object (no line end) in the input format
 * ops_record_from_json reads back, timestamps as ISO 8601 UTC. Returns the
 * length, or -1 when buf is too small. OPS_RECORD_JSON_MAX always suffices. */
#define OPS_RECORD_JSON_MAX 8192
int ops_record_format_json(const ops_event_t *ev, char *buf, size_t bufsize);

#ifdef __cplusplus
}
#endif
#endif
