/*
 * opstream simulator core: a deterministic generator of realistic operation
 * traffic (participating countries with a skewed share of events, the four
 * kinds in realistic sizes, raids, boats, late reports) from scenario presets
 * modelled on published operations, and the totals of what was generated.
 * Pure: the same seed gives the same events; no clock, no I/O.
 */
#ifndef OPSTREAM_SIMULATE_H
#define OPSTREAM_SIMULATE_H

#include <stddef.h>
#include <stdint.h>

#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A scenario preset. */
typedef struct ops_sim_scenario {
    const char *name;        /* "flash-weka" */
    const char *operation;   /* default operation code, "FLASH-WEKA" */
    const char *description; /* one line for --help */
    size_t n_countries;      /* participating countries in the preset */
    int days;                /* length of the published operation */
} ops_sim_scenario_t;

size_t ops_sim_scenario_count(void);
const ops_sim_scenario_t *ops_sim_scenario_at(size_t i);           /* NULL past the end */
const ops_sim_scenario_t *ops_sim_scenario_find(const char *name); /* NULL: unknown */

typedef struct ops_sim_options {
    const char *scenario;  /* NULL: "flash-weka" */
    const char *operation; /* NULL: the scenario's code */
    size_t countries;      /* 0: the scenario's count; else its N most active */
    uint64_t seed;
    int span_days; /* 0: "live" times (minutes before the reference time, a
                    * few late reports hours back); D: spread over the D days
                    * before the reference time */
} ops_sim_options_t;

typedef struct ops_sim ops_sim_t;

/* NULL with errstr for an unknown scenario, a bad operation code or a
 * country count outside 1..the scenario's. Free with ops_sim_destroy(). */
ops_sim_t *ops_sim_new(const ops_sim_options_t *opts, char *errstr, size_t errstr_size);
void ops_sim_destroy(ops_sim_t *sim); /* accepts NULL */

/* Event number `index` (0-based) of the sequence, with event times relative
 * to ref_ms (reported_at = ref_ms). The result depends only on the options,
 * index and ref_ms, so a fixed ref_ms gives byte-identical events. */
void ops_sim_event(const ops_sim_t *sim, uint64_t index, int64_t ref_ms, ops_event_t *ev);

/* The participating countries, most active first. */
size_t ops_sim_countries(const ops_sim_t *sim);
const char *ops_sim_country(const ops_sim_t *sim, size_t i);

/* Totals of a set of events: per metric overall and per country, and the
 * number of events per kind. */
typedef struct ops_sim_totals {
    char operation[OPS_OPERATION_MAX + 1];
    int64_t by_kind[OPS_KIND_COUNT];
    int64_t metric[OPS_METRIC_COUNT];
    int64_t country[26 * 26][OPS_METRIC_COUNT]; /* indexed by the two letters */
} ops_sim_totals_t;

void ops_sim_totals_init(ops_sim_totals_t *t, const char *operation);
void ops_sim_totals_add(ops_sim_totals_t *t, const ops_event_t *ev);
/* The totals as JSON (countries in code order, so equal totals give equal
 * text): {"operation":..,"events":..,"kinds":{..},"totals":{..},
 * "countries":{"CM":{..},..}}. malloc'd; the caller frees it. NULL when out
 * of memory. */
char *ops_sim_totals_json(const ops_sim_totals_t *t);

#ifdef __cplusplus
}
#endif
#endif
