/*
 * opstream rules, library-internal: the rule model that the rules-file
 * parser (rules_parse.c) fills, the engine (rules.c) runs and the alert
 * summaries (alert_summary.c) describe. Not installed.
 */
#ifndef OPSTREAM_RULES_PRIV_H
#define OPSTREAM_RULES_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opstream/rules.h"

#define CONDS_MAX 16
#define LOCATION_MATCH_MAX 128

/* ---- rule model ------------------------------------------------------------ */

typedef enum { RULE_EVENT = 0, RULE_SPIKE } rule_type_t;
typedef enum { SCOPE_NONE = 0, SCOPE_COUNTRY, SCOPE_OPERATION } rule_scope_t;

typedef enum {
    F_COUNT = 0,
    F_MINORS,
    F_REFERRED,
    F_SITE,
    F_EXPLOITATION,
    F_OFFENCE,
    F_CATEGORY,
    F_COUNTRY,
    F_NATIONALITY,
    F_LOCATION
} cond_field_t;

typedef enum { OP_GE = 0, OP_GT, OP_LE, OP_LT, OP_EQ, OP_NE, OP_CONTAINS } cond_op_t;

typedef struct cond {
    cond_field_t field;
    cond_op_t op;
    int64_t num;                       /* numeric fields; enum index */
    char text[LOCATION_MATCH_MAX + 1]; /* country code, location text */
} cond_t;

typedef struct rule {
    char name[OPS_ALERT_RULE_MAX + 1];
    int line; /* of the [rule] header */
    rule_type_t type;
    int kind; /* -1: any (spike rules only) */
    ops_severity_t severity;
    int64_t cooldown_ms;
    bool has_cooldown;
    cond_t conds[CONDS_MAX];
    int n_conds;
    /* spike */
    int metric; /* -1 unset */
    rule_scope_t scope;
    int64_t window_ms;
    int baseline;
    double factor;
    int64_t min;
    int64_t min_events; /* events in the window, so one large event alone is not a spike */
    bool has_summary;
    char summary[OPS_ALERT_SUMMARY_MAX + 1];
} rule_t;

struct ops_rules {
    rule_t *v;
    size_t n;
};

/* ---- alert summaries (alert_summary.c) ---- */

/* Checks a summary template (placeholder names, braces) for the rule type,
 * so a typo is refused when the file is loaded. Returns 0, or -1 with why. */
int ops_alert_summary_check(const char *tmpl, rule_type_t type, char *why, size_t why_size);

/* Writes a->summary for an alert of rule r: the rule's template or the
 * default sentence of its kind and scope, expanded. ev is the event of a
 * single-event alert, NULL for spikes. */
void ops_alert_summary_fill(const rule_t *r, const ops_event_t *ev, ops_alert_t *a);

#endif
