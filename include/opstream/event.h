/*
 * opstream event model: the in-memory form of the arrest, rescue, migrant and
 * seizure events and of alerts, the enum symbol tables, the metric names of
 * the Redis contract and the topic names. Pure data; no I/O.
 */
#ifndef OPSTREAM_EVENT_H
#define OPSTREAM_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds of the event model. The codec refuses values past them (too large),
 * validation refuses them in producer input. Every field has a fixed place in
 * ops_event_t, so decoding an event never allocates per event. */
#define OPS_EVENT_ID_LEN      36  /* canonical UUID text, 8-4-4-4-12 */
#define OPS_OPERATION_MAX     32  /* [A-Z0-9][A-Z0-9-]{0,31} */
#define OPS_SOURCE_REF_MAX    128
#define OPS_LOCATION_MAX      256
#define OPS_NATIONALITIES_MAX 64
#define OPS_COUNT_MAX         100000 /* persons, victims, migrants, items per event */

typedef enum ops_kind {
    OPS_KIND_ARREST = 0,
    OPS_KIND_RESCUE,
    OPS_KIND_MIGRANT,
    OPS_KIND_SEIZURE,
    OPS_KIND_COUNT
} ops_kind_t;

/* Enum symbols in schema order; the last one of each is the schema default. */
typedef enum ops_offence {
    OPS_OFFENCE_HUMAN_TRAFFICKING = 0,
    OPS_OFFENCE_MIGRANT_SMUGGLING,
    OPS_OFFENCE_DOCUMENT_FRAUD,
    OPS_OFFENCE_ORGANISED_CRIME,
    OPS_OFFENCE_FIREARMS,
    OPS_OFFENCE_DRUGS,
    OPS_OFFENCE_OTHER,
    OPS_OFFENCE_COUNT
} ops_offence_t;

typedef enum ops_exploitation {
    OPS_EXPLOITATION_SEXUAL = 0,
    OPS_EXPLOITATION_FORCED_LABOUR,
    OPS_EXPLOITATION_FORCED_CRIMINALITY,
    OPS_EXPLOITATION_BEGGING,
    OPS_EXPLOITATION_DOMESTIC_SERVITUDE,
    OPS_EXPLOITATION_ORGAN_REMOVAL,
    OPS_EXPLOITATION_OTHER,
    OPS_EXPLOITATION_UNKNOWN,
    OPS_EXPLOITATION_COUNT
} ops_exploitation_t;

typedef enum ops_site {
    OPS_SITE_SCAM_CENTRE = 0,
    OPS_SITE_HOTEL,
    OPS_SITE_NIGHTCLUB,
    OPS_SITE_FARM,
    OPS_SITE_PRIVATE_HOME,
    OPS_SITE_WORKSITE,
    OPS_SITE_BORDER_POINT,
    OPS_SITE_VESSEL,
    OPS_SITE_OTHER,
    OPS_SITE_COUNT
} ops_site_t;

typedef enum ops_category {
    OPS_CATEGORY_FIREARMS = 0,
    OPS_CATEGORY_VEHICLES,
    OPS_CATEGORY_DOCUMENTS,
    OPS_CATEGORY_CASH,
    OPS_CATEGORY_DRUGS,
    OPS_CATEGORY_ELECTRONICS,
    OPS_CATEGORY_OTHER,
    OPS_CATEGORY_COUNT
} ops_category_t;

/* One event of any kind. Strings are NUL-terminated; `count` is the kind's
 * headline number (arrest: persons, rescue: victims, migrant: migrants,
 * seizure: items). `nationalities` holds suspect_nationalities (arrest),
 * victim_nationalities (rescue) or nationalities (migrant). */
typedef struct ops_event {
    ops_kind_t kind;
    char event_id[OPS_EVENT_ID_LEN + 1];
    char operation[OPS_OPERATION_MAX + 1];
    char country[3];
    int64_t occurred_at; /* ms since epoch, UTC */
    int64_t reported_at; /* ms since epoch, UTC */
    char source_ref[OPS_SOURCE_REF_MAX + 1];
    bool has_location;
    char location[OPS_LOCATION_MAX + 1];

    int32_t count;
    int32_t minors;   /* rescue, migrant; 0 for the other kinds */
    int32_t referred; /* rescue schema v2: victims referred to protection
                       * services; 0 when written with v1 (the default) */
    ops_offence_t offence;           /* arrest */
    ops_exploitation_t exploitation; /* rescue */
    ops_site_t site;                 /* rescue */
    ops_category_t category;         /* seizure */
    uint32_t n_nationalities;
    char nationalities[OPS_NATIONALITIES_MAX][3];
} ops_event_t;

/* Metrics of the Redis contract (hash field names), in this order. */
typedef enum ops_metric {
    OPS_METRIC_ARRESTS = 0, /* sum of persons */
    OPS_METRIC_VICTIMS,
    OPS_METRIC_MINOR_VICTIMS,
    OPS_METRIC_MIGRANTS,
    OPS_METRIC_MINOR_MIGRANTS, /* minors among the migrants detected */
    OPS_METRIC_SEIZED_ITEMS,
    OPS_METRIC_EVENTS, /* number of events */
    OPS_METRIC_COUNT
} ops_metric_t;

typedef enum ops_severity {
    OPS_SEVERITY_INFO = 0,
    OPS_SEVERITY_WARNING,
    OPS_SEVERITY_CRITICAL,
    OPS_SEVERITY_COUNT
} ops_severity_t;

#define OPS_ALERT_RULE_MAX      64
#define OPS_ALERT_METRIC_MAX    32
#define OPS_ALERT_EVENT_IDS_MAX 10
#define OPS_ALERT_SUMMARY_MAX   512

/* An alert as published on opstream.alerts. */
typedef struct ops_alert {
    char alert_id[OPS_EVENT_ID_LEN + 1];
    char operation[OPS_OPERATION_MAX + 1];
    bool has_country; /* false: operation-wide */
    char country[3];
    char rule[OPS_ALERT_RULE_MAX + 1];
    char metric[OPS_ALERT_METRIC_MAX + 1];
    ops_severity_t severity;
    int64_t observed;
    double baseline;
    double threshold;
    int64_t window_start; /* ms */
    int64_t window_end;   /* ms */
    uint32_t n_event_ids;
    char event_ids[OPS_ALERT_EVENT_IDS_MAX][OPS_EVENT_ID_LEN + 1];
    char summary[OPS_ALERT_SUMMARY_MAX + 1];
    int64_t raised_at; /* ms */
} ops_alert_t;

/* Names. Each *_name returns the schema symbol (or NULL when out of range);
 * each *_from_name returns the index, or -1 for an unknown name. Matching is
 * exact (symbols are upper case; kinds are lower case). */
const char *ops_kind_name(ops_kind_t kind); /* "arrest", "rescue", ... */
int ops_kind_from_name(const char *name);
const char *ops_kind_topic_suffix(ops_kind_t kind); /* "arrests", "rescues", "migrants", "seizures" */
const char *ops_offence_name(ops_offence_t v);
int ops_offence_from_name(const char *name);
const char *ops_exploitation_name(ops_exploitation_t v);
int ops_exploitation_from_name(const char *name);
const char *ops_site_name(ops_site_t v);
int ops_site_from_name(const char *name);
const char *ops_category_name(ops_category_t v);
int ops_category_from_name(const char *name);
const char *ops_severity_name(ops_severity_t v);
int ops_severity_from_name(const char *name);
const char *ops_metric_name(ops_metric_t m); /* "arrests", "victims", ... */
int ops_metric_from_name(const char *name);

/* The event's contribution to each metric (events = 1). */
void ops_event_metrics(const ops_event_t *ev, int64_t out[OPS_METRIC_COUNT]);
/* The same from the only fields the metrics depend on: the kind, count and
 * minors (for holders of an event's compact form). */
void ops_event_metrics_of(ops_kind_t kind, int32_t count, int32_t minors,
                          int64_t out[OPS_METRIC_COUNT]);

/* Sets every field to its empty value: kind arrest, enum fields to their
 * default symbol, strings empty, numbers 0. */
void ops_event_init(ops_event_t *ev);
void ops_alert_init(ops_alert_t *a);

/* Topic name for a kind with the given prefix (default "opstream."):
 * "opstream.arrests". Returns 0, or -1 when buf is too small. */
int ops_topic_name(const char *prefix, ops_kind_t kind, char *buf, size_t bufsize);

#ifdef __cplusplus
}
#endif
#endif
