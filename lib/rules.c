/*
 * opstream alert rules: parses the rules file (see include/opstream/rules.h
 * for the format) and runs the rule engine: single-event matching, spike
 * detection over event-time minute sums, cooldowns and deterministic alert
 * ids. Pure; the only I/O is reading the rules file.
 */
#include "opstream/rules.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/keys.h"
#include "sha1.h"
#include "err_priv.h"

#define RULES_MAX 256
#define CONDS_MAX 16
#define LINE_MAX_LEN 1024
#define RULES_FILE_MAX (1024 * 1024)
#define SPAN_MAX_MINUTES (7 * 24 * 60) /* (baseline + 1) x window */
#define BASELINE_MAX 1000
#define SAMPLE_IDS OPS_ALERT_EVENT_IDS_MAX
#define DURATION_MAX_MS (30LL * 24 * 3600 * 1000)
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

/* ---- small helpers ---------------------------------------------------------- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static bool valid_rule_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > OPS_ALERT_RULE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '-' || c == '_'));
        if (!ok)
            return false;
    }
    return true;
}

/* Whole non-negative decimal number up to max; no sign, no spaces. */
static int parse_uint(const char *s, int64_t max, int64_t *out) {
    if (*s == '\0')
        return -1;
    int64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

/* "30s", "10m", "2h", "1d", or "0". Up to 30 days. */
static int parse_duration(const char *s, int64_t *ms) {
    size_t n = strlen(s);
    if (n == 0)
        return -1;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    int64_t unit;
    switch (s[n - 1]) {
    case 's':
        unit = 1000;
        break;
    case 'm':
        unit = OPS_MINUTE_MS;
        break;
    case 'h':
        unit = OPS_HOUR_MS;
        break;
    case 'd':
        unit = 24 * OPS_HOUR_MS;
        break;
    default:
        return -1;
    }
    char num[32];
    if (n - 1 >= sizeof(num))
        return -1;
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    int64_t v;
    if (parse_uint(num, DURATION_MAX_MS / unit, &v) != 0)
        return -1;
    *ms = v * unit;
    return 0;
}

/* ---- conditions --------------------------------------------------------------- */

typedef struct field_def {
    const char *name;
    cond_field_t field;
    int kind; /* -1: every kind */
} field_def_t;

static const field_def_t field_defs[] = {
    {"count", F_COUNT, -1},
    {"persons", F_COUNT, OPS_KIND_ARREST},
    {"victims", F_COUNT, OPS_KIND_RESCUE},
    {"migrants", F_COUNT, OPS_KIND_MIGRANT},
    {"items", F_COUNT, OPS_KIND_SEIZURE},
    {"minors", F_MINORS, -2}, /* rescue or migrant */
    {"referred", F_REFERRED, OPS_KIND_RESCUE},
    {"site", F_SITE, OPS_KIND_RESCUE},
    {"exploitation", F_EXPLOITATION, OPS_KIND_RESCUE},
    {"offence", F_OFFENCE, OPS_KIND_ARREST},
    {"category", F_CATEGORY, OPS_KIND_SEIZURE},
    {"country", F_COUNTRY, -1},
    {"nationality", F_NATIONALITY, -1},
    {"location", F_LOCATION, -1},
};

static const char *const op_names[] = {">=", ">", "<=", "<", "==", "!=", "~"};

static int op_from(const char *s) {
    for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++) {
        if (strcmp(s, op_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

static bool field_fits_kind(const field_def_t *f, int kind) {
    if (f->kind == -1)
        return true;
    if (f->kind == -2)
        return kind == OPS_KIND_RESCUE || kind == OPS_KIND_MIGRANT;
    return f->kind == kind;
}

static bool is_field_char(char c) {
    return (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_op_char(char c) {
    return c == '<' || c == '>' || c == '=' || c == '!' || c == '~';
}

/* An enum symbol for the field, or -1. */
static int enum_value(cond_field_t f, const char *v) {
    switch (f) {
    case F_SITE:
        return ops_site_from_name(v);
    case F_EXPLOITATION:
        return ops_exploitation_from_name(v);
    case F_OFFENCE:
        return ops_offence_from_name(v);
    case F_CATEGORY:
        return ops_category_from_name(v);
    default:
        return -1;
    }
}

/*
 * Parses one "when" value into conditions appended to r. The grammar is
 * FIELD OP VALUE { "and" FIELD OP VALUE }, with spaces around OP optional
 * and VALUE either a bare word or a "quoted text". Each field is checked
 * against the rule's kind here, so a rule that can never match is refused
 * when the file is loaded rather than silently never firing.
 */
static int parse_when(rule_t *r, const char *s, char *why, size_t why_size) {
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char fname[32];
        size_t n = 0;
        while (is_field_char(*p) && n + 1 < sizeof(fname))
            fname[n++] = *p++;
        fname[n] = '\0';
        if (n == 0) {
            ops_err_format(why, why_size, "expected a field name at '%s'", p);
            return -1;
        }
        const field_def_t *fd = NULL;
        for (size_t i = 0; i < sizeof(field_defs) / sizeof(field_defs[0]); i++) {
            if (strcmp(field_defs[i].name, fname) == 0)
                fd = &field_defs[i];
        }
        if (fd == NULL) {
            ops_err_format(why, why_size, "unknown field '%s' in condition", fname);
            return -1;
        }
        if (!field_fits_kind(fd, r->kind)) {
            ops_err_format(why, why_size, "field '%s' does not apply to kind %s", fname,
                           ops_kind_name((ops_kind_t)r->kind));
            return -1;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        char opbuf[4];
        n = 0;
        while (is_op_char(*p) && n + 1 < sizeof(opbuf))
            opbuf[n++] = *p++;
        opbuf[n] = '\0';
        int op = op_from(opbuf);
        if (op < 0) {
            ops_err_format(why, why_size, "expected an operator (>= > <= < == != ~) after '%s'",
                           fname);
            return -1;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        char val[LOCATION_MATCH_MAX + 1];
        n = 0;
        if (*p == '"') {
            p++;
            while (*p != '\0' && *p != '"') {
                if (n + 1 >= sizeof(val)) {
                    ops_err_format(why, why_size, "quoted text longer than %d characters",
                                   LOCATION_MATCH_MAX);
                    return -1;
                }
                val[n++] = *p++;
            }
            if (*p != '"') {
                ops_err_format(why, why_size, "unterminated quoted text");
                return -1;
            }
            p++;
        } else {
            while (*p != '\0' && *p != ' ' && *p != '\t') {
                if (n + 1 >= sizeof(val)) {
                    ops_err_format(why, why_size, "value longer than %d characters",
                                   LOCATION_MATCH_MAX);
                    return -1;
                }
                val[n++] = *p++;
            }
        }
        val[n] = '\0';
        if (n == 0) {
            ops_err_format(why, why_size, "missing value after '%s %s'", fname, opbuf);
            return -1;
        }
        if (r->n_conds >= CONDS_MAX) {
            ops_err_format(why, why_size, "more than %d conditions", CONDS_MAX);
            return -1;
        }
        cond_t *c = &r->conds[r->n_conds];
        memset(c, 0, sizeof(*c));
        c->field = fd->field;
        c->op = (cond_op_t)op;
        switch (fd->field) {
        case F_COUNT:
        case F_MINORS:
        case F_REFERRED:
            if (op == OP_CONTAINS) {
                ops_err_format(why, why_size, "'~' applies to location only");
                return -1;
            }
            if (parse_uint(val, OPS_COUNT_MAX, &c->num) != 0) {
                ops_err_format(why, why_size, "'%s' is not a whole number from 0 to %d", val,
                               OPS_COUNT_MAX);
                return -1;
            }
            break;
        case F_SITE:
        case F_EXPLOITATION:
        case F_OFFENCE:
        case F_CATEGORY:
            if (op != OP_EQ && op != OP_NE) {
                ops_err_format(why, why_size, "%s takes == or != only", fname);
                return -1;
            }
            c->num = enum_value(fd->field, val);
            if (c->num < 0) {
                ops_err_format(why, why_size, "'%s' is not a %s symbol", val, fname);
                return -1;
            }
            break;
        case F_COUNTRY:
        case F_NATIONALITY:
            if ((fd->field == F_COUNTRY && op != OP_EQ && op != OP_NE) ||
                (fd->field == F_NATIONALITY && op != OP_EQ)) {
                ops_err_format(why, why_size, "%s takes %s only", fname,
                               fd->field == F_COUNTRY ? "== or !=" : "==");
                return -1;
            }
            if (strlen(val) != 2 || !isupper((unsigned char)val[0]) ||
                !isupper((unsigned char)val[1])) {
                ops_err_format(why, why_size, "'%s' is not a two-letter country code", val);
                return -1;
            }
            memcpy(c->text, val, 3);
            break;
        case F_LOCATION:
            if (op != OP_CONTAINS) {
                ops_err_format(why, why_size, "location takes ~ (contains) only");
                return -1;
            }
            memcpy(c->text, val, n + 1);
            break;
        }
        r->n_conds++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return 0;
        if (strncmp(p, "and", 3) != 0 || (p[3] != ' ' && p[3] != '\t')) {
            ops_err_format(why, why_size, "expected 'and' or the end of the line at '%s'", p);
            return -1;
        }
        p += 3;
    }
}

static bool contains_nocase(const char *hay, const char *needle) {
    size_t nl = strlen(needle);
    for (const char *h = hay; *h != '\0'; h++) {
        size_t i = 0;
        while (i < nl && h[i] != '\0' &&
               tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl)
            return true;
    }
    return nl == 0;
}

static bool num_cmp(int64_t a, cond_op_t op, int64_t b) {
    switch (op) {
    case OP_GE:
        return a >= b;
    case OP_GT:
        return a > b;
    case OP_LE:
        return a <= b;
    case OP_LT:
        return a < b;
    case OP_EQ:
        return a == b;
    case OP_NE:
        return a != b;
    default:
        return false;
    }
}

static bool cond_match(const cond_t *c, const ops_event_t *ev) {
    switch (c->field) {
    case F_COUNT:
        return num_cmp(ev->count, c->op, c->num);
    case F_MINORS:
        return num_cmp(ev->minors, c->op, c->num);
    case F_REFERRED:
        return num_cmp(ev->referred, c->op, c->num);
    case F_SITE:
        return num_cmp((int64_t)ev->site, c->op, c->num);
    case F_EXPLOITATION:
        return num_cmp((int64_t)ev->exploitation, c->op, c->num);
    case F_OFFENCE:
        return num_cmp((int64_t)ev->offence, c->op, c->num);
    case F_CATEGORY:
        return num_cmp((int64_t)ev->category, c->op, c->num);
    case F_COUNTRY:
        return (strcmp(ev->country, c->text) == 0) == (c->op == OP_EQ);
    case F_NATIONALITY:
        for (uint32_t i = 0; i < ev->n_nationalities && i < OPS_NATIONALITIES_MAX; i++) {
            if (strncmp(ev->nationalities[i], c->text, 2) == 0)
                return true;
        }
        return false;
    case F_LOCATION:
        return ev->has_location && contains_nocase(ev->location, c->text);
    }
    return false;
}

static bool rule_matches(const rule_t *r, const ops_event_t *ev) {
    if ((int)ev->kind != r->kind)
        return false;
    for (int i = 0; i < r->n_conds; i++) {
        if (!cond_match(&r->conds[i], ev))
            return false;
    }
    return true;
}

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

/* ---- parser ------------------------------------------------------------------------ */

typedef struct parse_state {
    const char *file;
    ops_rules_t *rules;
    rule_t *cur; /* the rule being filled, NULL before the first [rule] */
    bool seen_type, seen_kind, seen_severity, seen_metric, seen_scope, seen_window;
    bool seen_baseline, seen_factor, seen_min, seen_min_events;
    /* "when" lines are parsed once the rule is complete, so that they may
     * come before "kind" */
    int n_when;
    int when_line[CONDS_MAX];
    char when_text[CONDS_MAX][LINE_MAX_LEN + 1];
} parse_state_t;

static void rule_defaults(rule_t *r) {
    memset(r, 0, sizeof(*r));
    r->type = RULE_EVENT;
    r->kind = -1;
    r->severity = OPS_SEVERITY_WARNING;
    r->metric = -1;
    r->scope = SCOPE_NONE;
    r->baseline = 6;
    r->factor = 3.0;
    r->min = 1;
    r->min_events = 1;
}

/* Checks a finished rule; errors point at its [rule] line. */
static int finish_rule(parse_state_t *ps, char *errstr, size_t errstr_size) {
    rule_t *r = ps->cur;
    if (r == NULL)
        return 0;
    const char *why = NULL;
    char buf[256];
    if (r->type == RULE_EVENT && r->kind >= 0) {
        for (int i = 0; i < ps->n_when; i++) {
            if (parse_when(r, ps->when_text[i], buf, sizeof(buf)) != 0) {
                ops_err_format(errstr, errstr_size, "%s:%d: %s", ps->file, ps->when_line[i], buf);
                return -1;
            }
        }
    }
    if (r->type == RULE_EVENT) {
        if (r->kind < 0)
            why = "needs 'kind'";
        else if (r->n_conds == 0)
            why = "needs 'when' (a single-event rule without conditions would fire on every event)";
        else if (ps->seen_metric || ps->seen_scope || ps->seen_window || ps->seen_baseline ||
                 ps->seen_factor || ps->seen_min || ps->seen_min_events)
            why = "metric, scope, window, baseline, factor, min and min_events need 'type = "
                  "spike'";
    } else {
        if (r->metric < 0)
            why = "spike rule needs 'metric'";
        else if (r->scope == SCOPE_NONE)
            why = "spike rule needs 'scope' (country or operation)";
        else if (r->window_ms == 0)
            why = "spike rule needs 'window'";
        else if (ps->n_when > 0)
            why = "'when' applies to single-event rules only";
        else if ((r->window_ms / OPS_MINUTE_MS) * (r->baseline + 1) > SPAN_MAX_MINUTES) {
            snprintf(buf, sizeof(buf),
                     "window x (baseline + 1) spans more than 7 days (%" PRId64 " minutes)",
                     (int64_t)((r->window_ms / OPS_MINUTE_MS) * (r->baseline + 1)));
            why = buf;
        }
        if (!r->has_cooldown)
            r->cooldown_ms = r->window_ms;
    }
    if (why != NULL) {
        ops_err_format(errstr, errstr_size, "%s:%d: rule '%s': %s", ps->file, r->line, r->name,
                       why);
        return -1;
    }
    if (r->has_summary) {
        char w[160];
        if (expand_summary(r->summary, r->type, NULL, NULL, 0, w, sizeof(w)) != 0) {
            ops_err_format(errstr, errstr_size, "%s:%d: rule '%s': %s", ps->file, r->line, r->name,
                           w);
            return -1;
        }
    }
    ps->cur = NULL;
    return 0;
}

static int start_rule(parse_state_t *ps, const char *header, int line, char *why, size_t why_size) {
    if (strncmp(header, "rule", 4) != 0 || (header[4] != ' ' && header[4] != '\t')) {
        ops_err_format(why, why_size, "unknown section '[%s]'; expected [rule NAME]", header);
        return -1;
    }
    char name[OPS_ALERT_RULE_MAX + 8];
    snprintf(name, sizeof(name), "%s", header + 5);
    char *nm = trim(name);
    if (!valid_rule_name(nm)) {
        ops_err_format(
            why, why_size,
            "rule name '%s' must be 1-%d of a-z 0-9 - _ and start with a letter or digit", nm,
            OPS_ALERT_RULE_MAX);
        return -1;
    }
    for (size_t i = 0; i < ps->rules->n; i++) {
        if (strcmp(ps->rules->v[i].name, nm) == 0) {
            ops_err_format(why, why_size, "rule '%s' already defined at line %d", nm,
                           ps->rules->v[i].line);
            return -1;
        }
    }
    if (ps->rules->n >= RULES_MAX) {
        ops_err_format(why, why_size, "more than %d rules", RULES_MAX);
        return -1;
    }
    rule_t *r = &ps->rules->v[ps->rules->n++];
    rule_defaults(r);
    snprintf(r->name, sizeof(r->name), "%s", nm);
    r->line = line;
    ps->cur = r;
    ps->seen_type = ps->seen_kind = ps->seen_severity = ps->seen_metric = false;
    ps->seen_scope = ps->seen_window = ps->seen_baseline = ps->seen_factor = false;
    ps->seen_min = ps->seen_min_events = false;
    ps->n_when = 0;
    return 0;
}

/* Marks a key as set; a second "kind" or "window" in one rule is a mistake
 * worth reporting ("when" may repeat). */
static int once(bool *seen, const char *key, char *why, size_t why_size) {
    if (*seen) {
        ops_err_format(why, why_size, "'%s' set twice in one rule", key);
        return -1;
    }
    *seen = true;
    return 0;
}

static int set_key(parse_state_t *ps, const char *key, const char *val, int line, char *why,
                   size_t why_size) {
    rule_t *r = ps->cur;
    int64_t v;
    if (*val == '\0') {
        ops_err_format(why, why_size, "'%s' has no value", key);
        return -1;
    }
    if (strcmp(key, "type") == 0) {
        if (once(&ps->seen_type, key, why, why_size) != 0)
            return -1;
        if (strcmp(val, "event") == 0)
            r->type = RULE_EVENT;
        else if (strcmp(val, "spike") == 0)
            r->type = RULE_SPIKE;
        else {
            ops_err_format(why, why_size, "type '%s' is neither event nor spike", val);
            return -1;
        }
    } else if (strcmp(key, "kind") == 0) {
        if (once(&ps->seen_kind, key, why, why_size) != 0)
            return -1;
        r->kind = ops_kind_from_name(val);
        if (r->kind < 0) {
            ops_err_format(why, why_size, "kind '%s' is not arrest, rescue, migrant or seizure",
                           val);
            return -1;
        }
    } else if (strcmp(key, "when") == 0) {
        if (ps->n_when >= CONDS_MAX) {
            ops_err_format(why, why_size, "more than %d 'when' lines", CONDS_MAX);
            return -1;
        }
        ps->when_line[ps->n_when] = line;
        snprintf(ps->when_text[ps->n_when], sizeof(ps->when_text[0]), "%s", val);
        ps->n_when++;
    } else if (strcmp(key, "severity") == 0) {
        if (once(&ps->seen_severity, key, why, why_size) != 0)
            return -1;
        char up[16];
        size_t n = strlen(val);
        if (n >= sizeof(up)) {
            ops_err_format(why, why_size, "severity '%s' is not INFO, WARNING or CRITICAL", val);
            return -1;
        }
        for (size_t i = 0; i <= n; i++)
            up[i] = (char)toupper((unsigned char)val[i]);
        int s = ops_severity_from_name(up);
        if (s < 0) {
            ops_err_format(why, why_size, "severity '%s' is not INFO, WARNING or CRITICAL", val);
            return -1;
        }
        r->severity = (ops_severity_t)s;
    } else if (strcmp(key, "cooldown") == 0) {
        if (once(&r->has_cooldown, key, why, why_size) != 0)
            return -1;
        if (parse_duration(val, &r->cooldown_ms) != 0) {
            ops_err_format(why, why_size, "cooldown '%s' is not a duration like 30s, 10m, 2h, 1d",
                           val);
            return -1;
        }
    } else if (strcmp(key, "summary") == 0) {
        if (once(&r->has_summary, key, why, why_size) != 0)
            return -1;
        if (strlen(val) > OPS_ALERT_SUMMARY_MAX) {
            ops_err_format(why, why_size, "summary longer than %d bytes", OPS_ALERT_SUMMARY_MAX);
            return -1;
        }
        snprintf(r->summary, sizeof(r->summary), "%s", val);
    } else if (strcmp(key, "metric") == 0) {
        if (once(&ps->seen_metric, key, why, why_size) != 0)
            return -1;
        r->metric = ops_metric_from_name(val);
        if (r->metric < 0) {
            ops_err_format(why, why_size,
                           "metric '%s' is not arrests, victims, minor_victims, migrants, "
                           "minor_migrants, seized_items or events",
                           val);
            return -1;
        }
    } else if (strcmp(key, "scope") == 0) {
        if (once(&ps->seen_scope, key, why, why_size) != 0)
            return -1;
        if (strcmp(val, "country") == 0)
            r->scope = SCOPE_COUNTRY;
        else if (strcmp(val, "operation") == 0)
            r->scope = SCOPE_OPERATION;
        else {
            ops_err_format(why, why_size, "scope '%s' is neither country nor operation", val);
            return -1;
        }
    } else if (strcmp(key, "window") == 0) {
        if (once(&ps->seen_window, key, why, why_size) != 0)
            return -1;
        if (parse_duration(val, &r->window_ms) != 0 || r->window_ms == 0 ||
            r->window_ms % OPS_MINUTE_MS != 0) {
            ops_err_format(why, why_size,
                           "window '%s' is not a whole number of minutes (1m, 10m, 2h)", val);
            return -1;
        }
    } else if (strcmp(key, "baseline") == 0) {
        if (once(&ps->seen_baseline, key, why, why_size) != 0)
            return -1;
        if (parse_uint(val, BASELINE_MAX, &v) != 0 || v < 1) {
            ops_err_format(why, why_size, "baseline '%s' is not a number of windows from 1 to %d",
                           val, BASELINE_MAX);
            return -1;
        }
        r->baseline = (int)v;
    } else if (strcmp(key, "factor") == 0) {
        if (once(&ps->seen_factor, key, why, why_size) != 0)
            return -1;
        char *end = NULL;
        errno = 0;
        double f = strtod(val, &end);
        if (errno != 0 || end == val || *end != '\0' || !isfinite(f) || f <= 0 || f > 1000) {
            ops_err_format(why, why_size, "factor '%s' is not a number above 0 and up to 1000",
                           val);
            return -1;
        }
        r->factor = f;
    } else if (strcmp(key, "min") == 0) {
        if (once(&ps->seen_min, key, why, why_size) != 0)
            return -1;
        if (parse_uint(val, INT64_C(1000000000), &v) != 0 || v < 1) {
            ops_err_format(why, why_size, "min '%s' is not a whole number of at least 1", val);
            return -1;
        }
        r->min = v;
    } else if (strcmp(key, "min_events") == 0) {
        if (once(&ps->seen_min_events, key, why, why_size) != 0)
            return -1;
        if (parse_uint(val, INT64_C(1000000000), &v) != 0 || v < 1) {
            ops_err_format(why, why_size, "min_events '%s' is not a whole number of at least 1",
                           val);
            return -1;
        }
        r->min_events = v;
    } else {
        ops_err_format(why, why_size, "unknown key '%s'", key);
        return -1;
    }
    return 0;
}

int ops_rules_parse(const char *text, size_t len, const char *filename, ops_rules_t **out,
                    char *errstr, size_t errstr_size) {
    int rc = -1;
    parse_state_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.file = filename != NULL ? filename : "(rules)";
    ops_rules_t *rules = calloc(1, sizeof(*rules));
    if (rules == NULL || (rules->v = calloc(RULES_MAX, sizeof(rule_t))) == NULL) {
        ops_err_format(errstr, errstr_size, "%s: out of memory", ps.file);
        goto cleanup;
    }
    ps.rules = rules;
    *out = NULL;

    size_t pos = 0;
    int lineno = 0;
    char line[LINE_MAX_LEN + 2];
    char why[256];
    while (pos < len) {
        lineno++;
        size_t start = pos;
        while (pos < len && text[pos] != '\n')
            pos++;
        size_t n = pos - start;
        if (pos < len)
            pos++; /* the newline */
        if (n > LINE_MAX_LEN) {
            ops_err_format(errstr, errstr_size, "%s:%d: line longer than %d bytes", ps.file, lineno,
                           LINE_MAX_LEN);
            goto cleanup;
        }
        memcpy(line, text + start, n);
        line[n] = '\0';
        if (memchr(line, '\0', n) != NULL) {
            ops_err_format(errstr, errstr_size, "%s:%d: NUL byte in line", ps.file, lineno);
            goto cleanup;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            size_t sl = strlen(s);
            if (s[sl - 1] != ']') {
                ops_err_format(errstr, errstr_size, "%s:%d: section header without closing ']'",
                               ps.file, lineno);
                goto cleanup;
            }
            s[sl - 1] = '\0';
            if (finish_rule(&ps, errstr, errstr_size) != 0)
                goto cleanup;
            if (start_rule(&ps, trim(s + 1), lineno, why, sizeof(why)) != 0) {
                ops_err_format(errstr, errstr_size, "%s:%d: %s", ps.file, lineno, why);
                goto cleanup;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            ops_err_format(errstr, errstr_size, "%s:%d: expected 'key = value' or '[rule NAME]'",
                           ps.file, lineno);
            goto cleanup;
        }
        *eq = '\0';
        char *key = trim(s);
        char *val = trim(eq + 1);
        if (ps.cur == NULL) {
            ops_err_format(errstr, errstr_size, "%s:%d: '%s' outside a [rule NAME] section",
                           ps.file, lineno, key);
            goto cleanup;
        }
        if (set_key(&ps, key, val, lineno, why, sizeof(why)) != 0) {
            ops_err_format(errstr, errstr_size, "%s:%d: %s", ps.file, lineno, why);
            goto cleanup;
        }
    }
    if (finish_rule(&ps, errstr, errstr_size) != 0)
        goto cleanup;
    if (rules->n == 0) {
        ops_err_format(errstr, errstr_size, "%s:%d: no [rule NAME] section", ps.file, lineno);
        goto cleanup;
    }
    *out = rules;
    rules = NULL;
    rc = 0;
cleanup:
    ops_rules_destroy(rules);
    return rc;
}

int ops_rules_load_file(const char *path, ops_rules_t **out, char *errstr, size_t errstr_size) {
    int rc = -1;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        ops_err_format(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    buf = malloc(RULES_FILE_MAX + 1);
    if (buf == NULL) {
        ops_err_format(errstr, errstr_size, "%s: out of memory", path);
        goto cleanup;
    }
    size_t n = fread(buf, 1, RULES_FILE_MAX + 1, f);
    if (ferror(f)) {
        ops_err_format(errstr, errstr_size, "%s: %s", path,
                       errno == EISDIR ? "is a directory, not a rules file" : strerror(errno));
        goto cleanup;
    }
    if (n > RULES_FILE_MAX) {
        ops_err_format(errstr, errstr_size, "%s: larger than %d bytes", path, RULES_FILE_MAX);
        goto cleanup;
    }
    rc = ops_rules_parse(buf, n, path, out, errstr, errstr_size);
cleanup:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

void ops_rules_destroy(ops_rules_t *rules) {
    if (rules == NULL)
        return;
    free(rules->v);
    free(rules);
}

size_t ops_rules_count(const ops_rules_t *rules) {
    return rules != NULL ? rules->n : 0;
}

const char *ops_rules_name(const ops_rules_t *rules, size_t i) {
    return rules != NULL && i < rules->n ? rules->v[i].name : NULL;
}

int ops_rules_is_spike(const ops_rules_t *rules, size_t i) {
    return rules != NULL && i < rules->n && rules->v[i].type == RULE_SPIKE;
}

int64_t ops_rules_span_ms(const ops_rules_t *rules) {
    int64_t span = 0;
    for (size_t i = 0; rules != NULL && i < rules->n; i++) {
        const rule_t *r = &rules->v[i];
        if (r->type != RULE_SPIKE)
            continue;
        int64_t s = r->window_ms * (r->baseline + 1) + r->cooldown_ms;
        if (s > span)
            span = s;
    }
    return span;
}

/* ---- alert ids ------------------------------------------------------------------- */

/*
 * The namespace of alert ids, a contract like the event-id namespace: the
 * "published once" guarantee across restarts rests on every build deriving
 * the same id for the same alert. Never change it.
 *     3f7c1e52-8a4b-4d09-9c6e-5b2a71d0e8f4
 */
static const uint8_t alert_id_namespace[16] = {0x3f, 0x7c, 0x1e, 0x52, 0x8a, 0x4b, 0x4d, 0x09,
                                               0x9c, 0x6e, 0x5b, 0x2a, 0x71, 0xd0, 0xe8, 0xf4};

void ops_alert_id_derive(const char *rule, const char *operation, const char *scope,
                         const char *instance, char out[OPS_EVENT_ID_LEN + 1]) {
    const char *const parts[4] = {rule, operation, scope, instance};
    ops_sha1_uuid5(alert_id_namespace, parts, 4, out);
}

/* ---- engine state ------------------------------------------------------------------ */

/* State of one (rule, operation, scope). */
typedef struct scope_state {
    uint32_t rule;
    char op[OPS_OPERATION_MAX + 1];
    char cc[3]; /* "" for operation-wide */
    bool has_last;
    int64_t last_start, last_end; /* last alert's window; cooldown runs from last_end */
    /* spike rules: minute sums in a ring of n_slots minutes */
    bool has_latest;
    int64_t latest_minute;
    int64_t n_slots;
    int64_t *slot_minute;
    int64_t *slot_value;
    int64_t *slot_events;
    /* the newest contributing events, a ring, for the alert's sample */
    uint32_t n_ids, ids_head;
    char ids[SAMPLE_IDS][OPS_EVENT_ID_LEN + 1];
    int64_t ids_minute[SAMPLE_IDS];
} scope_state_t;

struct ops_rule_engine {
    const ops_rules_t *rules;
    scope_state_t **table; /* open addressing, linear probing */
    size_t cap, n;
};

static uint64_t state_hash(uint32_t rule, const char *op, const char *cc) {
    uint64_t h = 1469598103934665603ULL ^ rule;
    h *= 1099511628211ULL;
    for (const char *p = op; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const char *p = cc; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static void state_free(scope_state_t *st) {
    if (st == NULL)
        return;
    free(st->slot_minute);
    free(st->slot_value);
    free(st->slot_events);
    free(st);
}

static int table_grow(ops_rule_engine_t *eng) {
    size_t ncap = eng->cap == 0 ? 64 : eng->cap * 2;
    scope_state_t **nt = calloc(ncap, sizeof(*nt));
    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < eng->cap; i++) {
        scope_state_t *st = eng->table[i];
        if (st == NULL)
            continue;
        size_t j = (size_t)(state_hash(st->rule, st->op, st->cc) & (ncap - 1));
        while (nt[j] != NULL)
            j = (j + 1) & (ncap - 1);
        nt[j] = st;
    }
    free(eng->table);
    eng->table = nt;
    eng->cap = ncap;
    return 0;
}

/* Finds or creates the state of (rule, op, cc); NULL when out of memory. */
static scope_state_t *state_get(ops_rule_engine_t *eng, uint32_t rule, const char *op,
                                const char *cc) {
    if (eng->cap > 0) {
        size_t j = (size_t)(state_hash(rule, op, cc) & (eng->cap - 1));
        while (eng->table[j] != NULL) {
            scope_state_t *st = eng->table[j];
            if (st->rule == rule && strcmp(st->op, op) == 0 && strcmp(st->cc, cc) == 0)
                return st;
            j = (j + 1) & (eng->cap - 1);
        }
    }
    if ((eng->n + 1) * 2 > eng->cap && table_grow(eng) != 0)
        return NULL;
    const rule_t *r = &eng->rules->v[rule];
    scope_state_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->rule = rule;
    snprintf(st->op, sizeof(st->op), "%s", op);
    snprintf(st->cc, sizeof(st->cc), "%s", cc);
    if (r->type == RULE_SPIKE) {
        st->n_slots = (r->window_ms / OPS_MINUTE_MS) * (r->baseline + 1);
        st->slot_minute = malloc((size_t)st->n_slots * sizeof(int64_t));
        st->slot_value = calloc((size_t)st->n_slots, sizeof(int64_t));
        st->slot_events = calloc((size_t)st->n_slots, sizeof(int64_t));
        if (st->slot_minute == NULL || st->slot_value == NULL || st->slot_events == NULL) {
            state_free(st);
            return NULL;
        }
        for (int64_t i = 0; i < st->n_slots; i++)
            st->slot_minute[i] = INT64_MIN;
    }
    size_t j = (size_t)(state_hash(rule, op, cc) & (eng->cap - 1));
    while (eng->table[j] != NULL)
        j = (j + 1) & (eng->cap - 1);
    eng->table[j] = st;
    eng->n++;
    return st;
}

static int64_t slot_of(const scope_state_t *st, int64_t minute) {
    int64_t s = minute % st->n_slots;
    return s < 0 ? s + st->n_slots : s;
}

/* Adds v at minute; false when the minute is too old for the ring. */
static bool spike_add(scope_state_t *st, int64_t minute, int64_t v) {
    if (st->has_latest && minute <= st->latest_minute - st->n_slots)
        return false;
    int64_t s = slot_of(st, minute);
    if (st->slot_minute[s] != minute) {
        if (st->slot_minute[s] > minute)
            return false;
        st->slot_minute[s] = minute;
        st->slot_value[s] = 0;
        st->slot_events[s] = 0;
    }
    st->slot_value[s] += v;
    st->slot_events[s]++;
    if (!st->has_latest || minute > st->latest_minute) {
        st->latest_minute = minute;
        st->has_latest = true;
    }
    return true;
}

/* Sum of minutes [from, to] of values (or of event counts, `events`). */
static int64_t spike_sum(const scope_state_t *st, int64_t from, int64_t to, bool events) {
    int64_t sum = 0;
    for (int64_t m = from; m <= to; m++) {
        int64_t s = slot_of(st, m);
        if (st->slot_minute[s] == m)
            sum += events ? st->slot_events[s] : st->slot_value[s];
    }
    return sum;
}

static void sample_add(scope_state_t *st, const char *event_id, int64_t minute) {
    uint32_t i = (st->ids_head + st->n_ids) % SAMPLE_IDS;
    if (st->n_ids == SAMPLE_IDS) {
        i = st->ids_head;
        st->ids_head = (st->ids_head + 1) % SAMPLE_IDS;
    } else {
        st->n_ids++;
    }
    snprintf(st->ids[i], sizeof(st->ids[i]), "%s", event_id);
    st->ids_minute[i] = minute;
}

ops_rule_engine_t *ops_rule_engine_new(const ops_rules_t *rules, char *errstr, size_t errstr_size) {
    ops_rule_engine_t *eng = calloc(1, sizeof(*eng));
    if (eng == NULL) {
        ops_err_format(errstr, errstr_size, "rule engine: out of memory");
        return NULL;
    }
    eng->rules = rules;
    return eng;
}

void ops_rule_engine_destroy(ops_rule_engine_t *eng) {
    if (eng == NULL)
        return;
    for (size_t i = 0; i < eng->cap; i++)
        state_free(eng->table[i]);
    free(eng->table);
    free(eng);
}

size_t ops_rule_engine_states(const ops_rule_engine_t *eng) {
    return eng != NULL ? eng->n : 0;
}

/* Event times the window and cooldown arithmetic accepts: 1970 to 9999.
 * Times come from Kafka and are untrusted; outside this range an event still
 * meets single-event rules but takes no part in spikes or cooldowns, so no
 * sum of times can overflow. */
#define TIME_MAX_MS 253402300799999LL

static bool sane_time(int64_t ms) {
    return ms >= 0 && ms <= TIME_MAX_MS;
}

static const ops_metric_t kind_metric[OPS_KIND_COUNT] = {
    OPS_METRIC_ARRESTS, OPS_METRIC_VICTIMS, OPS_METRIC_MIGRANTS, OPS_METRIC_SEIZED_ITEMS};

/* Threshold shown for a single-event alert: the count bound that made it fire. */
static double event_threshold(const rule_t *r) {
    for (int i = 0; i < r->n_conds; i++) {
        const cond_t *c = &r->conds[i];
        if (c->field == F_COUNT && c->op == OP_GE)
            return (double)c->num;
        if (c->field == F_COUNT && c->op == OP_GT)
            return (double)(c->num + 1);
    }
    return 0;
}

static void fill_summary(const rule_t *r, const ops_event_t *ev, ops_alert_t *a) {
    summary_ctx_t x = {r, ev, a};
    const char *tmpl = r->has_summary ? r->summary : default_summary(r);
    if (expand_summary(tmpl, r->type, &x, a->summary, sizeof(a->summary), NULL, 0) != 0)
        snprintf(a->summary, sizeof(a->summary), "%s: rule %s fired", a->operation, a->rule);
}

/* The single-event part: the most severe matching rule, first on ties. */
static int eval_event_rules(ops_rule_engine_t *eng, const ops_event_t *ev, int64_t now_ms,
                            ops_alert_t *out, size_t max, size_t *n_out) {
    const ops_rules_t *rules = eng->rules;
    int best = -1;
    for (size_t i = 0; i < rules->n; i++) {
        const rule_t *r = &rules->v[i];
        if (r->type != RULE_EVENT || !rule_matches(r, ev))
            continue;
        if (best < 0 || r->severity > rules->v[best].severity)
            best = (int)i;
    }
    if (best < 0)
        return 0;
    const rule_t *r = &rules->v[best];
    scope_state_t *st = state_get(eng, (uint32_t)best, ev->operation, ev->country);
    if (st == NULL)
        return -1;
    bool timed = sane_time(ev->occurred_at);
    if (timed && st->has_last && r->cooldown_ms > 0 && ev->occurred_at >= st->last_start &&
        ev->occurred_at < st->last_start + r->cooldown_ms)
        return 0;
    if (timed) {
        st->has_last = true;
        st->last_start = st->last_end = ev->occurred_at;
    }
    if (*n_out < max) {
        ops_alert_t *a = &out[*n_out];
        ops_alert_init(a);
        ops_alert_id_derive(r->name, ev->operation, ev->country, ev->event_id, a->alert_id);
        snprintf(a->operation, sizeof(a->operation), "%s", ev->operation);
        a->has_country = true;
        snprintf(a->country, sizeof(a->country), "%s", ev->country);
        snprintf(a->rule, sizeof(a->rule), "%s", r->name);
        snprintf(a->metric, sizeof(a->metric), "%s", ops_metric_name(kind_metric[ev->kind]));
        a->severity = r->severity;
        a->observed = ev->count;
        a->baseline = 0;
        a->threshold = event_threshold(r);
        a->window_start = a->window_end = ev->occurred_at;
        a->n_event_ids = 1;
        snprintf(a->event_ids[0], sizeof(a->event_ids[0]), "%s", ev->event_id);
        a->raised_at = now_ms;
        fill_summary(r, ev, a);
    }
    (*n_out)++;
    return 0;
}

/*
 * One spike rule for one event. The window is the W minutes ending with the
 * event's minute, so the window an event completes depends only on the
 * events before it in the stream, and a replay in the same order derives the
 * same window and the same alert id.
 */
static int eval_spike_rule(ops_rule_engine_t *eng, uint32_t ri, const ops_event_t *ev,
                           int64_t value, int64_t now_ms, ops_alert_t *out, size_t max,
                           size_t *n_out) {
    const rule_t *r = &eng->rules->v[ri];
    const char *cc = r->scope == SCOPE_COUNTRY ? ev->country : "";
    scope_state_t *st = state_get(eng, ri, ev->operation, cc);
    if (st == NULL)
        return -1;
    int64_t minute = ops_minute_floor(ev->occurred_at) / OPS_MINUTE_MS;
    if (!spike_add(st, minute, value))
        return 0; /* too late to matter */
    sample_add(st, ev->event_id, minute);

    int64_t w = r->window_ms / OPS_MINUTE_MS;
    int64_t observed = spike_sum(st, minute - w + 1, minute, false);
    int64_t base_sum = spike_sum(st, minute - w * (r->baseline + 1) + 1, minute - w, false);
    double baseline = (double)base_sum / r->baseline;
    double threshold = r->factor * baseline;
    if (threshold < (double)r->min)
        threshold = (double)r->min;
    if ((double)observed < threshold)
        return 0;
    if (r->min_events > 1 && spike_sum(st, minute - w + 1, minute, true) < r->min_events)
        return 0;

    int64_t ws = (minute - w + 1) * OPS_MINUTE_MS;
    int64_t we = (minute + 1) * OPS_MINUTE_MS;
    if (st->has_last && we > st->last_start && we <= st->last_end + r->cooldown_ms) {
        if (we > st->last_end)
            st->last_end = we; /* the same spike goes on */
        return 0;
    }
    st->has_last = true;
    st->last_start = ws;
    st->last_end = we;
    if (*n_out < max) {
        ops_alert_t *a = &out[*n_out];
        char inst[24];
        ops_alert_init(a);
        snprintf(inst, sizeof(inst), "%" PRId64, ws);
        ops_alert_id_derive(r->name, ev->operation, cc, inst, a->alert_id);
        snprintf(a->operation, sizeof(a->operation), "%s", ev->operation);
        a->has_country = r->scope == SCOPE_COUNTRY;
        snprintf(a->country, sizeof(a->country), "%s", cc);
        snprintf(a->rule, sizeof(a->rule), "%s", r->name);
        snprintf(a->metric, sizeof(a->metric), "%s", ops_metric_name((ops_metric_t)r->metric));
        a->severity = r->severity;
        a->observed = observed;
        a->baseline = baseline;
        a->threshold = threshold;
        a->window_start = ws;
        a->window_end = we;
        /* the sample, oldest first, of events inside the window */
        for (uint32_t k = 0; k < st->n_ids; k++) {
            uint32_t i = (st->ids_head + k) % SAMPLE_IDS;
            if (st->ids_minute[i] >= minute - w + 1 && st->ids_minute[i] <= minute)
                snprintf(a->event_ids[a->n_event_ids++], sizeof(a->event_ids[0]), "%s", st->ids[i]);
        }
        a->raised_at = now_ms;
        fill_summary(r, NULL, a);
    }
    (*n_out)++;
    return 0;
}

int ops_rule_engine_process(ops_rule_engine_t *eng, const ops_event_t *ev, int64_t now_ms,
                            ops_alert_t *out, size_t max, char *errstr, size_t errstr_size) {
    size_t n = 0;
    if (out == NULL)
        max = 0;
    if ((int)ev->kind < 0 || ev->kind >= OPS_KIND_COUNT) {
        ops_err_format(errstr, errstr_size, "event %s: kind %d out of range", ev->event_id,
                       (int)ev->kind);
        return -1;
    }
    if (eval_event_rules(eng, ev, now_ms, out, max, &n) != 0)
        goto oom;
    int64_t metrics[OPS_METRIC_COUNT];
    ops_event_metrics(ev, metrics);
    for (size_t i = 0; i < eng->rules->n && sane_time(ev->occurred_at); i++) {
        const rule_t *r = &eng->rules->v[i];
        if (r->type != RULE_SPIKE || metrics[r->metric] <= 0)
            continue;
        if (r->kind >= 0 && r->kind != (int)ev->kind)
            continue;
        if (eval_spike_rule(eng, (uint32_t)i, ev, metrics[r->metric], now_ms, out, max, &n) != 0)
            goto oom;
    }
    return (int)n;
oom:
    ops_err_format(errstr, errstr_size, "rule engine: out of memory");
    return -1;
}

int ops_rule_engine_restore(ops_rule_engine_t *eng, const ops_alert_t *alert) {
    const ops_rules_t *rules = eng->rules;
    if (!sane_time(alert->window_start) || !sane_time(alert->window_end))
        return 0;
    for (size_t i = 0; i < rules->n; i++) {
        const rule_t *r = &rules->v[i];
        if (strcmp(r->name, alert->rule) != 0)
            continue;
        const char *cc = alert->has_country ? alert->country : "";
        if (r->type == RULE_SPIKE && r->scope == SCOPE_OPERATION)
            cc = "";
        scope_state_t *st = state_get(eng, (uint32_t)i, alert->operation, cc);
        if (st == NULL)
            return -1;
        if (!st->has_last || alert->window_end > st->last_end) {
            st->has_last = true;
            st->last_start = alert->window_start;
            st->last_end = alert->window_end;
        }
        return 0;
    }
    return 0;
}
