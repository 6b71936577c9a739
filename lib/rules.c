/*
 * opstream rule engine: single-event matching, spike detection over
 * event-time minute sums, cooldowns and deterministic alert ids, over the
 * rules that rules_parse.c read. Pure: no I/O, no clock.
 */
#include "opstream/rules.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/keys.h"
#include "err_priv.h"
#include "rules_priv.h"
#include "uuid5_priv.h"

#define SAMPLE_IDS OPS_ALERT_EVENT_IDS_MAX

/* ---- matching --------------------------------------------------------------------- */

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
    ops_uuid5_derive(alert_id_namespace, parts, 4, out);
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
        ops_alert_summary_fill(r, ev, a);
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
        ops_alert_summary_fill(r, NULL, a);
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
