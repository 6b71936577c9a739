/*
 * opstream event model: the symbol tables of the kinds, enums and metrics
 * (the exact spellings the Avro schemas and the Redis contract use), each
 * event's contribution to the metrics, empty-value initialisers and topic
 * names. Pure data; no I/O.
 */
#include "opstream/event.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[OPS_KIND_COUNT] = {"arrest", "rescue", "migrant", "seizure"};

static const char *const kind_suffixes[OPS_KIND_COUNT] = {"arrests", "rescues", "migrants",
                                                          "seizures"};

static const char *const offence_names[OPS_OFFENCE_COUNT] = {"HUMAN_TRAFFICKING",
                                                             "MIGRANT_SMUGGLING",
                                                             "DOCUMENT_FRAUD",
                                                             "ORGANISED_CRIME",
                                                             "FIREARMS",
                                                             "DRUGS",
                                                             "OTHER"};

static const char *const exploitation_names[OPS_EXPLOITATION_COUNT] = {"SEXUAL",
                                                                       "FORCED_LABOUR",
                                                                       "FORCED_CRIMINALITY",
                                                                       "BEGGING",
                                                                       "DOMESTIC_SERVITUDE",
                                                                       "ORGAN_REMOVAL",
                                                                       "OTHER",
                                                                       "UNKNOWN"};

static const char *const site_names[OPS_SITE_COUNT] = {"SCAM_CENTRE",  "HOTEL",        "NIGHTCLUB",
                                                       "FARM",         "PRIVATE_HOME", "WORKSITE",
                                                       "BORDER_POINT", "VESSEL",       "OTHER"};

static const char *const category_names[OPS_CATEGORY_COUNT] = {
    "FIREARMS", "VEHICLES", "DOCUMENTS", "CASH", "DRUGS", "ELECTRONICS", "OTHER"};

static const char *const severity_names[OPS_SEVERITY_COUNT] = {"INFO", "WARNING", "CRITICAL"};

static const char *const metric_names[OPS_METRIC_COUNT] = {
    "arrests", "victims", "minor_victims", "migrants", "minor_migrants", "seized_items", "events"};

/* The enum values arrive as ints that may come from untrusted input (a
 * decoded record, a cast), so every lookup is range-checked instead of
 * trusting the enum type. */
static const char *name_at(const char *const *table, int n, int v) {
    if (v < 0 || v >= n)
        return NULL;
    return table[v];
}

/* Exact match; NULL never matches. Linear: the tables have at most 9 entries. */
static int index_of(const char *const *table, int n, const char *name) {
    if (name == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        if (table[i][0] == name[0] && strcmp(table[i], name) == 0)
            return i;
    }
    return -1;
}

const char *ops_kind_name(ops_kind_t kind) {
    return name_at(kind_names, OPS_KIND_COUNT, (int)kind);
}

int ops_kind_from_name(const char *name) {
    return index_of(kind_names, OPS_KIND_COUNT, name);
}

const char *ops_kind_topic_suffix(ops_kind_t kind) {
    return name_at(kind_suffixes, OPS_KIND_COUNT, (int)kind);
}

const char *ops_offence_name(ops_offence_t v) {
    return name_at(offence_names, OPS_OFFENCE_COUNT, (int)v);
}

int ops_offence_from_name(const char *name) {
    return index_of(offence_names, OPS_OFFENCE_COUNT, name);
}

const char *ops_exploitation_name(ops_exploitation_t v) {
    return name_at(exploitation_names, OPS_EXPLOITATION_COUNT, (int)v);
}

int ops_exploitation_from_name(const char *name) {
    return index_of(exploitation_names, OPS_EXPLOITATION_COUNT, name);
}

const char *ops_site_name(ops_site_t v) {
    return name_at(site_names, OPS_SITE_COUNT, (int)v);
}

int ops_site_from_name(const char *name) {
    return index_of(site_names, OPS_SITE_COUNT, name);
}

const char *ops_category_name(ops_category_t v) {
    return name_at(category_names, OPS_CATEGORY_COUNT, (int)v);
}

int ops_category_from_name(const char *name) {
    return index_of(category_names, OPS_CATEGORY_COUNT, name);
}

const char *ops_severity_name(ops_severity_t v) {
    return name_at(severity_names, OPS_SEVERITY_COUNT, (int)v);
}

int ops_severity_from_name(const char *name) {
    return index_of(severity_names, OPS_SEVERITY_COUNT, name);
}

const char *ops_metric_name(ops_metric_t m) {
    return name_at(metric_names, OPS_METRIC_COUNT, (int)m);
}

int ops_metric_from_name(const char *name) {
    return index_of(metric_names, OPS_METRIC_COUNT, name);
}

/*
 * Maps an event onto the Redis metrics. Every event counts once in
 * "events"; its headline number goes to the one metric of its kind, and
 * a rescue's minors go to minor_victims and a migrant detection's to
 * minor_migrants (migrant minors are not victims). An
 * unknown kind contributes only to "events" so a counter never guesses.
 */
void ops_event_metrics(const ops_event_t *ev, int64_t out[OPS_METRIC_COUNT]) {
    ops_event_metrics_of(ev->kind, ev->count, ev->minors, out);
}

void ops_event_metrics_of(ops_kind_t kind, int32_t count, int32_t minors,
                          int64_t out[OPS_METRIC_COUNT]) {
    for (int i = 0; i < OPS_METRIC_COUNT; i++)
        out[i] = 0;
    out[OPS_METRIC_EVENTS] = 1;
    switch (kind) {
    case OPS_KIND_ARREST:
        out[OPS_METRIC_ARRESTS] = count;
        break;
    case OPS_KIND_RESCUE:
        out[OPS_METRIC_VICTIMS] = count;
        out[OPS_METRIC_MINOR_VICTIMS] = minors;
        break;
    case OPS_KIND_MIGRANT:
        out[OPS_METRIC_MIGRANTS] = count;
        out[OPS_METRIC_MINOR_MIGRANTS] = minors;
        break;
    case OPS_KIND_SEIZURE:
        out[OPS_METRIC_SEIZED_ITEMS] = count;
        break;
    default:
        break;
    }
}

/* Enum fields start at the schema default (the last symbol), the value an
 * Avro reader uses for a symbol it does not know. */
void ops_event_init(ops_event_t *ev) {
    memset(ev, 0, sizeof(*ev));
    ev->kind = OPS_KIND_ARREST;
    ev->offence = OPS_OFFENCE_OTHER;
    ev->exploitation = OPS_EXPLOITATION_UNKNOWN;
    ev->site = OPS_SITE_OTHER;
    ev->category = OPS_CATEGORY_OTHER;
}

/* Severity starts at the schema default, CRITICAL: the value a reader gives
 * a severity it does not know, so an unknown level is never played down. */
void ops_alert_init(ops_alert_t *a) {
    memset(a, 0, sizeof(*a));
    a->severity = OPS_SEVERITY_CRITICAL;
}

int ops_topic_name(const char *prefix, ops_kind_t kind, char *buf, size_t bufsize) {
    const char *suffix = ops_kind_topic_suffix(kind);
    if (suffix == NULL || buf == NULL || bufsize == 0)
        return -1;
    if (prefix == NULL)
        prefix = "opstream.";
    int n = snprintf(buf, bufsize, "%s%s", prefix, suffix);
    if (n < 0 || (size_t)n >= bufsize) {
        buf[0] = '\0';
        return -1;
    }
    return 0;
}
