/*
 * opstream rules-file parser: reads the INI-like rules file (see
 * include/opstream/rules.h for the format) into the rule model, refusing
 * with FILE:LINE and the reason anything that could not run as written.
 * Pure; the only I/O is reading the rules file.
 *
 * The line reader is this file's own, not libinih's: inih passes no line
 * number to its handler and has no call for a section header, so a rule
 * missing a setting could not be reported at its [rule] line, nor a
 * deferred "when" at its own line; it also treats indented lines as
 * continuations, " ;" as a comment and "key: value" as a setting.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/keys.h"
#include "err_priv.h"
#include "rules_priv.h"

#define RULES_MAX 256
#define LINE_MAX_LEN 1024
#define RULES_FILE_MAX (1024 * 1024)
#define SPAN_MAX_MINUTES (7 * 24 * 60) /* (baseline + 1) x window */
#define BASELINE_MAX 1000
#define DURATION_MAX_MS (30LL * 24 * 3600 * 1000)

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

/* ---- parser ------------------------------------------------------------------------ */

#define RULE_KEYS_MAX 16

typedef struct parse_state {
    const char *file;
    ops_rules_t *rules;
    rule_t *cur;              /* the rule being filled, NULL before the first [rule] */
    bool seen[RULE_KEYS_MAX]; /* by row of rule_keys: keys set in the current rule */
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

/*
 * One setter per key. Each gets the trimmed, non-empty value and reports a
 * bad one in why; the table below says which keys may repeat and which
 * belong to spike rules only.
 */
typedef int (*key_setter_t)(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                            size_t why_size);

static int set_type(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                    size_t why_size) {
    if (strcmp(val, "event") == 0)
        r->type = RULE_EVENT;
    else if (strcmp(val, "spike") == 0)
        r->type = RULE_SPIKE;
    else {
        ops_err_format(why, why_size, "type '%s' is neither event nor spike", val);
        return -1;
    }
    return 0;
}

static int set_kind(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                    size_t why_size) {
    r->kind = ops_kind_from_name(val);
    if (r->kind < 0) {
        ops_err_format(why, why_size, "kind '%s' is not arrest, rescue, migrant or seizure", val);
        return -1;
    }
    return 0;
}

/* Kept as text with its line: conditions are parsed once the rule is
 * complete, so that "when" may come before "kind". */
static int set_when(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                    size_t why_size) {
    if (ps->n_when >= CONDS_MAX) {
        ops_err_format(why, why_size, "more than %d 'when' lines", CONDS_MAX);
        return -1;
    }
    ps->when_line[ps->n_when] = line;
    snprintf(ps->when_text[ps->n_when], sizeof(ps->when_text[0]), "%s", val);
    ps->n_when++;
    return 0;
}

static int set_severity(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                        size_t why_size) {
    char up[16];
    size_t n = strlen(val);
    int s = -1;
    if (n < sizeof(up)) {
        for (size_t i = 0; i <= n; i++)
            up[i] = (char)toupper((unsigned char)val[i]);
        s = ops_severity_from_name(up);
    }
    if (s < 0) {
        ops_err_format(why, why_size, "severity '%s' is not INFO, WARNING or CRITICAL", val);
        return -1;
    }
    r->severity = (ops_severity_t)s;
    return 0;
}

static int set_cooldown(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                        size_t why_size) {
    if (parse_duration(val, &r->cooldown_ms) != 0) {
        ops_err_format(why, why_size, "cooldown '%s' is not a duration like 30s, 10m, 2h, 1d", val);
        return -1;
    }
    r->has_cooldown = true;
    return 0;
}

static int set_summary(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                       size_t why_size) {
    if (strlen(val) > OPS_ALERT_SUMMARY_MAX) {
        ops_err_format(why, why_size, "summary longer than %d bytes", OPS_ALERT_SUMMARY_MAX);
        return -1;
    }
    snprintf(r->summary, sizeof(r->summary), "%s", val);
    r->has_summary = true;
    return 0;
}

static int set_metric(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                      size_t why_size) {
    r->metric = ops_metric_from_name(val);
    if (r->metric < 0) {
        ops_err_format(why, why_size,
                       "metric '%s' is not arrests, victims, minor_victims, migrants, "
                       "minor_migrants, seized_items or events",
                       val);
        return -1;
    }
    return 0;
}

static int set_scope(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                     size_t why_size) {
    if (strcmp(val, "country") == 0)
        r->scope = SCOPE_COUNTRY;
    else if (strcmp(val, "operation") == 0)
        r->scope = SCOPE_OPERATION;
    else {
        ops_err_format(why, why_size, "scope '%s' is neither country nor operation", val);
        return -1;
    }
    return 0;
}

static int set_window(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                      size_t why_size) {
    if (parse_duration(val, &r->window_ms) != 0 || r->window_ms == 0 ||
        r->window_ms % OPS_MINUTE_MS != 0) {
        ops_err_format(why, why_size, "window '%s' is not a whole number of minutes (1m, 10m, 2h)",
                       val);
        return -1;
    }
    return 0;
}

static int set_baseline(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                        size_t why_size) {
    int64_t v;
    if (parse_uint(val, BASELINE_MAX, &v) != 0 || v < 1) {
        ops_err_format(why, why_size, "baseline '%s' is not a number of windows from 1 to %d", val,
                       BASELINE_MAX);
        return -1;
    }
    r->baseline = (int)v;
    return 0;
}

static int set_factor(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                      size_t why_size) {
    char *end = NULL;
    errno = 0;
    double f = strtod(val, &end);
    if (errno != 0 || end == val || *end != '\0' || !isfinite(f) || f <= 0 || f > 1000) {
        ops_err_format(why, why_size, "factor '%s' is not a number above 0 and up to 1000", val);
        return -1;
    }
    r->factor = f;
    return 0;
}

/* min and min_events: a whole number of at least 1. */
static int set_at_least_one(const char *key, const char *val, int64_t *out, char *why,
                            size_t why_size) {
    if (parse_uint(val, INT64_C(1000000000), out) != 0 || *out < 1) {
        ops_err_format(why, why_size, "%s '%s' is not a whole number of at least 1", key, val);
        return -1;
    }
    return 0;
}

static int set_min(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                   size_t why_size) {
    return set_at_least_one("min", val, &r->min, why, why_size);
}

static int set_min_events(parse_state_t *ps, rule_t *r, const char *val, int line, char *why,
                          size_t why_size) {
    return set_at_least_one("min_events", val, &r->min_events, why, why_size);
}

/* The keys of a [rule] section. Add a row to add a key. A key that is not
 * "repeats" may be set once per rule: a second "kind" or "window" is a
 * mistake worth reporting. */
static const struct rule_key {
    const char *name;
    bool repeats;    /* may be given on several lines ("when") */
    bool spike_only; /* needs type = spike */
    key_setter_t set;
} rule_keys[] = {
    {"type", false, false, set_type},
    {"kind", false, false, set_kind},
    {"when", true, false, set_when},
    {"severity", false, false, set_severity},
    {"cooldown", false, false, set_cooldown},
    {"summary", false, false, set_summary},
    {"metric", false, true, set_metric},
    {"scope", false, true, set_scope},
    {"window", false, true, set_window},
    {"baseline", false, true, set_baseline},
    {"factor", false, true, set_factor},
    {"min", false, true, set_min},
    {"min_events", false, true, set_min_events},
};

#define N_RULE_KEYS (sizeof(rule_keys) / sizeof(rule_keys[0]))
_Static_assert(N_RULE_KEYS <= RULE_KEYS_MAX, "parse_state_t.seen is too small");

static bool spike_key_seen(const parse_state_t *ps) {
    for (size_t i = 0; i < N_RULE_KEYS; i++)
        if (rule_keys[i].spike_only && ps->seen[i])
            return true;
    return false;
}

static int set_key(parse_state_t *ps, const char *key, const char *val, int line, char *why,
                   size_t why_size) {
    if (*val == '\0') {
        ops_err_format(why, why_size, "'%s' has no value", key);
        return -1;
    }
    for (size_t i = 0; i < N_RULE_KEYS; i++) {
        if (strcmp(key, rule_keys[i].name) != 0)
            continue;
        if (!rule_keys[i].repeats && ps->seen[i]) {
            ops_err_format(why, why_size, "'%s' set twice in one rule", key);
            return -1;
        }
        ps->seen[i] = true;
        return rule_keys[i].set(ps, ps->cur, val, line, why, why_size);
    }
    ops_err_format(why, why_size, "unknown key '%s'", key);
    return -1;
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
        else if (spike_key_seen(ps))
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
        if (ops_alert_summary_check(r->summary, r->type, w, sizeof(w)) != 0) {
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
    memset(ps->seen, 0, sizeof(ps->seen));
    ps->n_when = 0;
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
