/*
 * opstream alert summaries: the one sentence an officer reads for an alert,
 * from the rule's summary template or a default per kind and scope, with
 * {placeholders} filled from the event or the spike. Templates are checked
 * when the rules file is loaded. Pure.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "opstream/keys.h"
#include "err_priv.h"
#include "rules_priv.h"

/* ---- summaries ----------------------------------------------------------------- */

/* What a placeholder may refer to: the event of a single-event alert, or
 * the alert of a spike. */
typedef struct summary_ctx {
    const rule_t *rule;
    const ops_event_t *ev;    /* single-event rules */
    const ops_alert_t *alert; /* always */
} summary_ctx_t;

static const char *const metric_texts[OPS_METRIC_COUNT] = {"arrests",
                                                           "victims rescued",
                                                           "minor victims rescued",
                                                           "irregular migrants detected",
                                                           "minor migrants detected",
                                                           "items seized",
                                                           "events reported"};

static const char *const event_placeholders[] = {
    "operation",   "country",  "kind", "count",        "persons", "victims",  "migrants",
    "items",       "minors",   "site", "exploitation", "offence", "category", "location",
    "at_location", "event_id", "rule", "severity",     NULL};

static const char *const spike_placeholders[] = {
    "operation", "country", "scope",  "metric", "metric_text", "observed", "baseline",
    "threshold", "factor",  "window", "rule",   "severity",    NULL};

static bool placeholder_known(rule_type_t type, const char *name) {
    const char *const *t = type == RULE_SPIKE ? spike_placeholders : event_placeholders;
    for (; *t != NULL; t++) {
        if (strcmp(*t, name) == 0)
            return true;
    }
    return false;
}

/* A number as a person would write it: no decimals when whole. */
static void fmt_number(double v, char *buf, size_t size) {
    if (fabs(v - round(v)) < 0.05)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.1f", v);
}

static void fmt_window(int64_t ms, char *buf, size_t size) {
    if (ms % (24 * OPS_HOUR_MS) == 0)
        snprintf(buf, size, "%" PRId64 " d", (int64_t)(ms / (24 * OPS_HOUR_MS)));
    else if (ms % OPS_HOUR_MS == 0)
        snprintf(buf, size, "%" PRId64 " h", (int64_t)(ms / OPS_HOUR_MS));
    else
        snprintf(buf, size, "%" PRId64 " min", (int64_t)(ms / OPS_MINUTE_MS));
}

/* The text of one placeholder; "" for one that does not apply. */
static void placeholder_value(const summary_ctx_t *x, const char *name, char *buf, size_t size) {
    const ops_alert_t *a = x->alert;
    const ops_event_t *ev = x->ev;
    const char *s = NULL;
    buf[0] = '\0';
    if (strcmp(name, "operation") == 0)
        s = a->operation;
    else if (strcmp(name, "country") == 0)
        s = a->has_country ? a->country : "";
    else if (strcmp(name, "rule") == 0)
        s = a->rule;
    else if (strcmp(name, "severity") == 0)
        s = ops_severity_name(a->severity);
    else if (strcmp(name, "metric") == 0)
        s = a->metric;
    else if (strcmp(name, "scope") == 0)
        s = a->has_country ? a->country : "all countries";
    else if (strcmp(name, "metric_text") == 0)
        s = metric_texts[x->rule->metric >= 0 ? x->rule->metric : 0];
    else if (strcmp(name, "observed") == 0)
        snprintf(buf, size, "%" PRId64, a->observed);
    else if (strcmp(name, "baseline") == 0)
        fmt_number(a->baseline, buf, size);
    else if (strcmp(name, "threshold") == 0)
        fmt_number(a->threshold, buf, size);
    else if (strcmp(name, "factor") == 0)
        fmt_number(x->rule->factor, buf, size);
    else if (strcmp(name, "window") == 0)
        fmt_window(x->rule->window_ms, buf, size);
    else if (ev == NULL)
        s = "";
    else if (strcmp(name, "kind") == 0)
        s = ops_kind_name(ev->kind);
    else if (strcmp(name, "count") == 0 || strcmp(name, "persons") == 0 ||
             strcmp(name, "victims") == 0 || strcmp(name, "migrants") == 0 ||
             strcmp(name, "items") == 0)
        snprintf(buf, size, "%" PRId32, ev->count);
    else if (strcmp(name, "minors") == 0)
        snprintf(buf, size, "%" PRId32, ev->minors);
    else if (strcmp(name, "site") == 0)
        s = ops_site_name(ev->site);
    else if (strcmp(name, "exploitation") == 0)
        s = ops_exploitation_name(ev->exploitation);
    else if (strcmp(name, "offence") == 0)
        s = ops_offence_name(ev->offence);
    else if (strcmp(name, "category") == 0)
        s = ops_category_name(ev->category);
    else if (strcmp(name, "location") == 0)
        s = ev->has_location ? ev->location : "";
    else if (strcmp(name, "at_location") == 0) {
        if (ev->has_location && ev->location[0] != '\0')
            snprintf(buf, size, " at %s", ev->location);
    } else if (strcmp(name, "event_id") == 0)
        s = ev->event_id;
    if (s != NULL)
        snprintf(buf, size, "%s", s);
}

/*
 * Expands a summary template. With x == NULL it only checks the template
 * (placeholder names, braces) for the rule type, which is how the parser
 * refuses a typo at load time instead of publishing "{victms}" to officers.
 * Output that does not fit is cut at OPS_ALERT_SUMMARY_MAX bytes.
 */
static int expand_summary(const char *tmpl, rule_type_t type, const summary_ctx_t *x, char *out,
                          size_t out_size, char *why, size_t why_size) {
    size_t o = 0;
    for (const char *p = tmpl; *p != '\0';) {
        if (*p == '}') {
            ops_err_format(why, why_size, "'}' without '{' in summary");
            return -1;
        }
        if (*p != '{') {
            if (out != NULL && o + 1 < out_size)
                out[o++] = *p;
            p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (end == NULL || end - p - 1 >= 32 || end - p - 1 == 0) {
            ops_err_format(why, why_size, "unterminated or empty placeholder in summary at '%.20s'",
                           p);
            return -1;
        }
        char name[32];
        memcpy(name, p + 1, (size_t)(end - p - 1));
        name[end - p - 1] = '\0';
        if (!placeholder_known(type, name)) {
            ops_err_format(why, why_size, "unknown placeholder {%s} in summary", name);
            return -1;
        }
        if (x != NULL && out != NULL) {
            char val[OPS_LOCATION_MAX + 16];
            placeholder_value(x, name, val, sizeof(val));
            for (const char *v = val; *v != '\0' && o + 1 < out_size; v++)
                out[o++] = *v;
        }
        p = end + 1;
    }
    if (out != NULL && out_size > 0)
        out[o] = '\0';
    return 0;
}

static const char *default_summary(const rule_t *r) {
    if (r->type == RULE_SPIKE) {
        if (r->scope == SCOPE_COUNTRY)
            return "{country}: {observed} {metric_text} in {window}, over the threshold "
                   "{threshold} (baseline {baseline} per {window}), {operation}";
        return "{operation}: {observed} {metric_text} in {window} across all countries, over "
               "the threshold {threshold} (baseline {baseline} per {window})";
    }
    switch (r->kind) {
    case OPS_KIND_ARREST:
        return "{country}: {persons} persons arrested for {offence} in one action{at_location}, "
               "{operation}";
    case OPS_KIND_RESCUE:
        return "{country}: {victims} victims rescued in one {site} raid{at_location}, {operation}";
    case OPS_KIND_MIGRANT:
        return "{country}: {migrants} irregular migrants ({minors} minors) detected in one "
               "group{at_location}, {operation}";
    default:
        return "{country}: {items} {category} items seized in one action{at_location}, "
               "{operation}";
    }
}

int ops_alert_summary_check(const char *tmpl, rule_type_t type, char *why, size_t why_size) {
    return expand_summary(tmpl, type, NULL, NULL, 0, why, why_size);
}

void ops_alert_summary_fill(const rule_t *r, const ops_event_t *ev, ops_alert_t *a) {
    summary_ctx_t x = {r, ev, a};
    const char *tmpl = r->has_summary ? r->summary : default_summary(r);
    if (expand_summary(tmpl, r->type, &x, a->summary, sizeof(a->summary), NULL, 0) != 0)
        snprintf(a->summary, sizeof(a->summary), "%s: rule %s fired", a->operation, a->rule);
}
