/*
 * Unit tests for lib/counter.c: partition positions, in-batch dedupe, and
 * the aggregation of a batch into the argument vector of the atomic Redis
 * step, read back section by section as the script would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/counter.h"
#include "opstream/event.h"

#define T0 1727705100000LL /* 2024-09-30T14:05:00Z */
#define NOW (T0 + 30000)   /* half a minute later */

/* ---- reading the argument vector back --------------------------------- */

/* One operation's call, decoded. */
typedef struct opcall {
    size_t keys, nkeys; /* argv index of KEYS[1], count */
    size_t args;        /* argv index of ARGV[1] */
    size_t parts, parts_n;
    size_t ids, ids_n;
    size_t metrics, metrics_n; /* the metric names (totals and per-country hashes keep all) */
    size_t hashes;             /* argv index of the first hash record's expireat */
    size_t countries, countries_n;
    long nd;
} opcall_t;

typedef struct parsed {
    const ops_counter_args_t *a;
    size_t parts, parts_n; /* the offsets call: index of the first triple, count */
    opcall_t ops[16];
    size_t nops;
    size_t groups_n; /* operations whose ids are checked (dedupe on) */
    size_t hashes_n; /* hash records over all operations */
    size_t sets_n;   /* set members: countries, plus the operations listed */
} parsed_t;

static long num(const ops_counter_args_t *a, size_t i) {
    assert_true(i < a->argc);
    return strtol(a->argv[i], NULL, 10);
}

static parsed_t parse(const ops_counter_args_t *a) {
    parsed_t p = {.a = a};
    size_t end = a->cas_argc; /* the offsets call comes first, the operations' follow it */

    assert_true(a->nops <= 16);
    for (size_t o = 0; o < a->nops; o++) {
        opcall_t *c = &p.ops[p.nops++];
        size_t f = a->ops[o].first, i;
        assert_int_equal(a->ops[o].name, end);
        assert_string_equal(a->argv[f], "EVALSHA");
        assert_true(a->ops[o].name + 1 == f);
        c->nkeys = (size_t)num(a, f + 2);
        c->keys = f + 3;
        c->args = c->keys + c->nkeys;
        c->nd = num(a, c->args + 2);
        i = c->args + 4;
        c->parts_n = (size_t)num(a, i++);
        c->parts = i;
        i += 3 * c->parts_n;
        c->ids_n = (size_t)num(a, i++);
        c->ids = i;
        i += c->ids_n;
        c->metrics_n = (size_t)num(a, i++);
        c->metrics = i;
        i += c->metrics_n;
        c->hashes = i;
        for (size_t h = 2 + (size_t)c->nd; h < c->nkeys; h++) {
            i += 1;
            i += 1 + 2 * (size_t)num(a, i);
            p.hashes_n++;
        }
        c->countries_n = (size_t)num(a, i++);
        c->countries = i;
        i += c->countries_n;
        assert_int_equal(i, f + a->ops[o].argc);
        p.groups_n += c->nd > 0;
        p.sets_n += c->countries_n + 1;
        end = i;
    }
    assert_int_equal(a->cas_first, 0);
    assert_string_equal(a->argv[a->cas_first], "EVALSHA");
    assert_string_equal(a->argv[a->cas_first + 2], "1");
    p.parts = a->cas_first + 4;
    p.parts_n = (a->cas_argc - 4) / 3;
    assert_int_equal(end, a->argc);
    return p;
}

/* Sum of the deltas for (key, field) over all hash records; -1 when the
 * field is never written. *expp gets the record's expireat. */
static long long hdelta(const parsed_t *p, const char *key, const char *field, long long *expp) {
    const ops_counter_args_t *a = p->a;
    long long sum = -1;

    for (size_t o = 0; o < p->nops; o++) {
        const opcall_t *c = &p->ops[o];
        size_t i = c->hashes;
        for (size_t h = 2 + (size_t)c->nd; h < c->nkeys; h++) {
            const char *k = a->argv[c->keys + h];
            long long exp = num(a, i);
            size_t nf = (size_t)num(a, i + 1);
            i += 2;
            for (size_t f = 0; f < nf; f++) {
                if (strcmp(k, key) == 0 && strcmp(a->argv[i + f], field) == 0) {
                    sum = (sum < 0 ? 0 : sum) + num(a, i + nf + f);
                    if (expp != NULL)
                        *expp = exp;
                }
            }
            i += 2 * nf;
        }
    }
    return sum;
}

static int has_member(const parsed_t *p, const char *key, const char *member) {
    const ops_counter_args_t *a = p->a;

    for (size_t o = 0; o < p->nops; o++) {
        const opcall_t *c = &p->ops[o];
        if (strcmp(key, "opstream:operations") == 0 &&
            strcmp(a->argv[a->ops[o].name], member) == 0)
            return 1;
        if (strcmp(a->argv[c->keys + 1], key) != 0)
            continue;
        for (size_t i = 0; i < c->countries_n; i++)
            if (strcmp(a->argv[c->countries + i], member) == 0)
                return 1;
    }
    return 0;
}

static int has_key(const parsed_t *p, const char *key) {
    for (size_t o = 0; o < p->nops; o++)
        for (size_t k = 0; k < p->ops[o].nkeys; k++)
            if (strcmp(p->a->argv[p->ops[o].keys + k], key) == 0)
                return 1;
    return 0;
}

/* ---- fixtures --------------------------------------------------------- */

static ops_event_t mk(ops_kind_t kind, const char *op, const char *cc, int n, int minors,
                      int64_t at, int id) {
    ops_event_t ev;

    ops_event_init(&ev);
    ev.kind = kind;
    snprintf(ev.operation, sizeof ev.operation, "%s", op);
    snprintf(ev.country, sizeof ev.country, "%s", cc);
    snprintf(ev.event_id, sizeof ev.event_id, "00000000-0000-4000-8000-%012d", id);
    ev.count = n;
    ev.minors = minors;
    ev.occurred_at = at;
    ev.reported_at = at;
    return ev;
}

static ops_counter_t *new_counter(void) {
    char err[256];
    ops_counter_options_t o = {
        .group = "opstream-count", .max_events = 4, .dedupe_window_s = OPS_COUNTER_DEDUPE_DEFAULT};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);

    assert_non_null(c);
    assert_int_equal(ops_counter_assign(c, "opstream.arrests", 0, -1, err, sizeof err), 0);
    assert_int_equal(ops_counter_assign(c, "opstream.rescues", 1, 40, err, sizeof err), 0);
    return c;
}

static parsed_t build(ops_counter_t *c, ops_counter_args_t *a, int64_t now) {
    char err[256];

    assert_int_equal(ops_counter_build(c, now, a, err, sizeof err), 0);
    return parse(a);
}

/* ---- tests ------------------------------------------------------------ */

static void batch_aggregates_every_key_of_the_contract(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};
    ops_event_t e1 = mk(OPS_KIND_ARREST, "FLASH-WEKA", "NG", 3, 0, T0, 1);
    ops_event_t e2 = mk(OPS_KIND_RESCUE, "FLASH-WEKA", "NG", 30, 4, T0 + 61000, 2);
    ops_event_t e3 = mk(OPS_KIND_RESCUE, "FLASH-WEKA", "CM", 10, 0, T0 + 1000, 3);
    long long exp = 0;

    (void)state;
    assert_int_equal(ops_counter_add_event(c, "opstream.arrests", 0, 7, &e1), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 1, 40, &e2), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 1, 41, &e3), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_pending(c), 3);
    assert_false(ops_counter_full(c));
    parsed_t p = build(c, &a, NOW);

    assert_string_equal(a.argv[a.cas_first + 3], "opstream:offsets:opstream-count");
    assert_int_equal(p.nops, 1);
    assert_int_equal(num(&a, p.ops[0].args), NOW / 1000);
    /* The operation's keys, all in its slot: watermark, countries, the two
     * dedupe generations, then the counter hashes. */
    assert_string_equal(a.argv[p.ops[0].keys], "opstream:{FLASH-WEKA}:applied:opstream-count");
    assert_string_equal(a.argv[p.ops[0].keys + 1], "opstream:{FLASH-WEKA}:countries");
    for (size_t k = 0; k < p.ops[0].nkeys; k++)
        assert_non_null(strstr(a.argv[p.ops[0].keys + k], "{FLASH-WEKA}"));
    /* Watermarks: per partition the operation has events from, its lowest
     * offset there and the batch's next offset. */
    assert_int_equal(p.ops[0].parts_n, 2);
    assert_string_equal(a.argv[p.ops[0].parts], "opstream.arrests:0");
    assert_int_equal(num(&a, p.ops[0].parts + 1), 7);
    assert_int_equal(num(&a, p.ops[0].parts + 2), 8);
    assert_string_equal(a.argv[p.ops[0].parts + 3], "opstream.rescues:1");
    assert_int_equal(num(&a, p.ops[0].parts + 4), 40);
    assert_int_equal(num(&a, p.ops[0].parts + 5), 42);
    /* Offsets: field, expected ("" = none stored), next. */
    assert_int_equal(p.parts_n, 2);
    assert_string_equal(a.argv[p.parts], "opstream.arrests:0");
    assert_string_equal(a.argv[p.parts + 1], "");
    assert_string_equal(a.argv[p.parts + 2], "8");
    assert_string_equal(a.argv[p.parts + 3], "opstream.rescues:1");
    assert_string_equal(a.argv[p.parts + 4], "40");
    assert_string_equal(a.argv[p.parts + 5], "42");

    const char *tot = "opstream:{FLASH-WEKA}:total";
    assert_int_equal(hdelta(&p, tot, "arrests", &exp), 3);
    assert_int_equal(exp, 0);
    assert_int_equal(hdelta(&p, tot, "victims", NULL), 40);
    assert_int_equal(hdelta(&p, tot, "minor_victims", NULL), 4);
    /* Zero deltas are not listed: the script creates the metrics a new
     * totals or per-country hash lacks at 0, from the list of all of them. */
    assert_int_equal(hdelta(&p, tot, "migrants", NULL), -1);
    assert_int_equal(hdelta(&p, tot, "seized_items", NULL), -1);
    assert_int_equal(p.ops[0].metrics_n, OPS_METRIC_COUNT);
    for (int k = 0; k < OPS_METRIC_COUNT; k++)
        assert_string_equal(a.argv[p.ops[0].metrics + (size_t)k], ops_metric_name((ops_metric_t)k));
    assert_int_equal(hdelta(&p, tot, "events", NULL), 3);
    assert_int_equal(hdelta(&p, "opstream:{FLASH-WEKA}:country:NG", "victims", NULL), 30);
    assert_int_equal(hdelta(&p, "opstream:{FLASH-WEKA}:country:NG", "events", NULL), 2);
    assert_int_equal(hdelta(&p, "opstream:{FLASH-WEKA}:country:CM", "victims", NULL), 10);
    assert_int_equal(hdelta(&p, "opstream:{FLASH-WEKA}:country:CM", "arrests", NULL), -1);

    /* Minute buckets: 14:05 has e1 and e3, 14:06 has e2; zero fields left out. */
    const char *m5 = "opstream:{FLASH-WEKA}:min:202409301405";
    assert_int_equal(hdelta(&p, m5, "events", &exp), 2);
    assert_int_equal(exp, T0 / 1000 + 172800);
    assert_int_equal(hdelta(&p, m5, "arrests", NULL), 3);
    assert_int_equal(hdelta(&p, m5, "NG:arrests", NULL), 3);
    assert_int_equal(hdelta(&p, m5, "CM:victims", NULL), 10);
    assert_int_equal(hdelta(&p, m5, "NG:victims", NULL), -1);
    assert_int_equal(hdelta(&p, m5, "migrants", NULL), -1);
    const char *m6 = "opstream:{FLASH-WEKA}:min:202409301406";
    assert_int_equal(hdelta(&p, m6, "NG:minor_victims", NULL), 4);
    assert_int_equal(hdelta(&p, m6, "events", NULL), 1);
    const char *h14 = "opstream:{FLASH-WEKA}:hour:2024093014";
    assert_int_equal(hdelta(&p, h14, "victims", &exp), 40);
    assert_int_equal(exp, 1727704800LL + 3024000);
    assert_int_equal(hdelta(&p, h14, "NG:events", NULL), 2);

    assert_true(has_member(&p, "opstream:operations", "FLASH-WEKA"));
    assert_true(has_member(&p, "opstream:{FLASH-WEKA}:countries", "NG"));
    assert_true(has_member(&p, "opstream:{FLASH-WEKA}:countries", "CM"));
    assert_int_equal(p.sets_n, 3);

    /* One dedupe group with the three ids. */
    assert_int_equal(p.groups_n, 1);
    assert_string_equal(a.argv[a.ops[0].name], "FLASH-WEKA");
    assert_int_equal(p.ops[0].nd, 2); /* two generation hashes */
    assert_int_equal(p.ops[0].ids_n, 3);

    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

static void duplicate_in_a_batch_counts_once_but_passes_its_offset(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};
    ops_event_t e = mk(OPS_KIND_MIGRANT, "WEKA-II", "LY", 12, 2, T0, 9);

    (void)state;
    assert_int_equal(ops_counter_add_event(c, "opstream.arrests", 0, 0, &e), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 1, 40, &e),
                     OPS_COUNTER_DUPLICATE);
    assert_int_equal(ops_counter_pending(c), 2);
    assert_int_equal(ops_counter_pending_events(c), 1);
    assert_int_equal(ops_counter_dupes(c), 1);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(hdelta(&p, "opstream:{WEKA-II}:total", "migrants", NULL), 12);
    assert_int_equal(hdelta(&p, "opstream:{WEKA-II}:total", "events", NULL), 1);
    assert_int_equal(p.parts_n, 2);
    assert_string_equal(a.argv[p.parts + 5], "41");
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

/* opstream.dedupe.window.s=0: a repeated id counts again, in the batch and
 * against Redis (the step gets no dedupe group, so nothing is checked or
 * marked); only the offsets keep the counts exact. */
static void dedupe_window_0_turns_dedupe_off(void **state) {
    char err[256];
    ops_counter_options_t o = {.group = "g", .dedupe_window_s = 0};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);
    ops_counter_args_t a = {0};
    ops_event_t e = mk(OPS_KIND_MIGRANT, "WEKA-II", "LY", 12, 2, T0, 9);

    (void)state;
    assert_non_null(c);
    assert_int_equal(ops_counter_assign(c, "opstream.migrants", 0, -1, err, sizeof err), 0);
    assert_int_equal(ops_counter_add_event(c, "opstream.migrants", 0, 0, &e), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_add_event(c, "opstream.migrants", 0, 1, &e), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_pending_events(c), 2);
    assert_int_equal(ops_counter_dupes(c), 0);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(hdelta(&p, "opstream:{WEKA-II}:total", "migrants", NULL), 24);
    assert_int_equal(hdelta(&p, "opstream:{WEKA-II}:total", "events", NULL), 2);
    assert_int_equal(p.groups_n, 0);
    assert_int_equal(ops_counter_drop_seen(c, "WEKA-II", e.event_id), 0);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);

    /* A negative window is the default: 7 days, dedupe on. */
    o.dedupe_window_s = OPS_COUNTER_DEDUPE_DEFAULT;
    c = ops_counter_new(&o, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(ops_counter_assign(c, "opstream.migrants", 0, -1, err, sizeof err), 0);
    assert_int_equal(ops_counter_add_event(c, "opstream.migrants", 0, 0, &e), OPS_COUNTER_ADDED);
    assert_int_equal(ops_counter_add_event(c, "opstream.migrants", 0, 1, &e),
                     OPS_COUNTER_DUPLICATE);
    p = build(c, &a, NOW);
    assert_int_equal(p.groups_n, 1);
    assert_int_equal(num(&a, p.ops[0].args + 1), 604800); /* the window */
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

static void event_seen_in_redis_is_dropped_but_offset_still_passes(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};
    ops_event_t e1 = mk(OPS_KIND_ARREST, "WEKA-II", "GH", 2, 0, T0, 1);
    ops_event_t e2 = mk(OPS_KIND_ARREST, "WEKA-II", "GH", 5, 0, T0, 2);

    (void)state;
    ops_counter_add_event(c, "opstream.arrests", 0, 0, &e1);
    ops_counter_add_event(c, "opstream.arrests", 0, 1, &e2);
    assert_int_equal(ops_counter_drop_seen(c, "WEKA-II", e1.event_id), 1);
    assert_int_equal(ops_counter_drop_seen(c, "WEKA-II", e1.event_id), 0);
    assert_int_equal(ops_counter_drop_seen(c, "OTHER-OP", e2.event_id), 0);
    /* Counted by kind, once, for the duplicate metric. */
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_ARREST), 1);
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_RESCUE), 0);
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_COUNT), 0);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(hdelta(&p, "opstream:{WEKA-II}:total", "arrests", NULL), 5);
    assert_string_equal(a.argv[p.parts + 2], "2");
    assert_int_equal(p.ops[0].ids_n, 1);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

/* An APPLIED reply (watermark W of one partition for one operation) drops
 * that operation's events of that partition below W, and nothing else; an
 * operation whose step was applied is left out of the next build. */
static void events_below_a_watermark_are_dropped_and_applied_operations_left_out(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};
    ops_event_t e[5] = {mk(OPS_KIND_ARREST, "A", "GH", 1, 0, T0, 1),
                        mk(OPS_KIND_ARREST, "A", "GH", 2, 0, T0, 2),
                        mk(OPS_KIND_ARREST, "A", "GH", 4, 0, T0, 3),
                        mk(OPS_KIND_ARREST, "B", "GH", 8, 0, T0, 4),
                        mk(OPS_KIND_ARREST, "A", "GH", 16, 0, T0, 5)};

    (void)state;
    ops_counter_add_event(c, "opstream.arrests", 0, 0, &e[0]);
    ops_counter_add_event(c, "opstream.arrests", 0, 1, &e[1]);
    ops_counter_add_event(c, "opstream.arrests", 0, 2, &e[2]);
    ops_counter_add_event(c, "opstream.arrests", 0, 3, &e[3]);
    ops_counter_add_event(c, "opstream.rescues", 1, 40, &e[4]);
    assert_int_equal(ops_counter_operations(c), 2);
    assert_string_equal(ops_counter_operation(c, 0), "A");
    assert_int_equal(ops_counter_drop_applied(c, "A", "opstream.arrests:0", 2), 2);
    assert_int_equal(ops_counter_drop_applied(c, "A", "opstream.arrests:0", 2), 0);
    assert_int_equal(ops_counter_drop_applied(c, "C", "opstream.arrests:0", 9), 0);
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_ARREST), 2);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(p.nops, 2);
    assert_int_equal(hdelta(&p, "opstream:{A}:total", "arrests", NULL), 4 + 16);
    /* A's lowest offset of arrests:0 is now 2 */
    assert_int_equal(num(&a, p.ops[0].parts + 1), 2);
    ops_counter_op_applied(c, &a, 1); /* B's step went through */
    p = build(c, &a, NOW);
    assert_int_equal(p.nops, 1);
    assert_string_equal(a.argv[a.ops[0].name], "A");
    assert_int_equal(hdelta(&p, "opstream:{B}:total", "arrests", NULL), -1);
    assert_int_equal(p.parts_n, 2); /* the offsets still cover every partition */
    assert_int_equal(ops_counter_pending_events(c), 3);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

/* A step that failed after some operations' scripts went through is sent
 * whole again; the applied operations answer APPLIED, and their events are
 * dropped without counting as duplicates (they were counted by this batch). */
static void events_applied_by_this_batch_are_no_duplicates_when_sent_again(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};
    ops_event_t e[3] = {mk(OPS_KIND_ARREST, "A", "GH", 1, 0, T0, 1),
                        mk(OPS_KIND_ARREST, "B", "GH", 2, 0, T0, 2),
                        mk(OPS_KIND_ARREST, "B", "GH", 4, 0, T0, 3)};

    (void)state;
    ops_counter_add_event(c, "opstream.arrests", 0, 0, &e[0]);
    ops_counter_add_event(c, "opstream.arrests", 0, 1, &e[1]);
    ops_counter_add_event(c, "opstream.arrests", 0, 2, &e[2]);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(p.nops, 2);
    ops_counter_op_applied(c, &a, 1); /* B applied, then the step failed */
    ops_counter_ops_retry(c);
    p = build(c, &a, NOW);
    assert_int_equal(p.nops, 2); /* B goes again */
    assert_int_equal(ops_counter_drop_applied(c, "B", "opstream.arrests:0", 3), 2); /* dropped */
    assert_int_equal(ops_counter_dupes(c), 0);                                      /* not seen */
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_ARREST), 0);
    /* one counted before this batch is still a duplicate */
    assert_int_equal(ops_counter_drop_applied(c, "A", "opstream.arrests:0", 1), 1);
    assert_int_equal(ops_counter_dupes(c), 1);
    ops_counter_ops_retry(c); /* taken back once, the others were never counted */
    assert_int_equal(ops_counter_dupes(c), 0);
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_ARREST), 0);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

/* A step whose reply was lost with its connection may have been applied.
 * Sent again, its events below the watermark Redis answers (APPLIED) were
 * applied by that step: no duplicates. A SEEN reply names events counted
 * before this batch: duplicates, in doubt or not; and so are events below
 * a watermark of a step that was not in doubt. */
static void events_of_a_step_whose_reply_was_lost_are_no_duplicates_below_its_watermark(
    void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};
    ops_event_t e[4] = {mk(OPS_KIND_ARREST, "A", "GH", 1, 0, T0, 1),
                        mk(OPS_KIND_ARREST, "B", "GH", 2, 0, T0, 2),
                        mk(OPS_KIND_ARREST, "B", "GH", 4, 0, T0, 3),
                        mk(OPS_KIND_ARREST, "B", "GH", 8, 0, T0, 4)};

    (void)state;
    for (int i = 0; i < 4; i++)
        ops_counter_add_event(c, "opstream.arrests", 0, i, &e[i]);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(p.nops, 2);
    ops_counter_op_in_doubt(c, &a, 1); /* B's reply was lost */
    ops_counter_ops_retry(c);
    p = build(c, &a, NOW);
    assert_int_equal(p.nops, 2);
    assert_int_equal(ops_counter_drop_seen(c, "B", e[1].event_id), 1);
    assert_int_equal(ops_counter_dupes(c), 1); /* SEEN: counted before */
    assert_int_equal(ops_counter_drop_applied(c, "B", "opstream.arrests:0", 4), 2);
    assert_int_equal(ops_counter_dupes(c), 1); /* below B's own watermark: applied */
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_ARREST), 1);
    assert_int_equal(ops_counter_drop_applied(c, "A", "opstream.arrests:0", 1), 1);
    assert_int_equal(ops_counter_dupes(c), 2); /* A was not in doubt */
    ops_counter_ops_retry(c); /* the duplicates taken back, B's applied events kept */
    assert_int_equal(ops_counter_dupes(c), 0);
    assert_int_equal(ops_counter_seen_of_kind(c, OPS_KIND_ARREST), 0);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

/* A lost reply to the offsets write is remembered until the batch is
 * applied or dropped. */
static void offsets_in_doubt_last_until_the_batch_is_applied_or_dropped(void **state) {
    ops_counter_t *c = new_counter();
    ops_event_t e = mk(OPS_KIND_ARREST, "A", "GH", 1, 0, T0, 1);

    (void)state;
    ops_counter_add_event(c, "opstream.arrests", 0, 7, &e);
    assert_false(ops_counter_offsets_doubted(c));
    ops_counter_offsets_in_doubt(c);
    assert_true(ops_counter_offsets_doubted(c));
    ops_counter_applied(c);
    assert_false(ops_counter_offsets_doubted(c));
    ops_counter_add_event(c, "opstream.arrests", 0, 8, &e);
    ops_counter_offsets_in_doubt(c);
    ops_counter_discard(c);
    assert_false(ops_counter_offsets_doubted(c));
    ops_counter_destroy(c);
}

static void dlq_message_passes_its_offset_and_counts_nothing(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};

    (void)state;
    assert_int_equal(ops_counter_add_skip(c, "opstream.rescues", 1, 40), OPS_COUNTER_SKIPPED);
    assert_int_equal(ops_counter_pending_skips(c), 1);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(p.parts_n, 1);
    assert_string_equal(a.argv[p.parts + 2], "41");
    assert_int_equal(p.groups_n, 0);
    assert_int_equal(p.hashes_n, 0);
    assert_int_equal(p.sets_n, 0);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

static void event_older_than_bucket_ttl_counts_in_totals_only(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0};
    /* Three days old: past the 48 h minute TTL, within the 35-day hour TTL. */
    ops_event_t e = mk(OPS_KIND_SEIZURE, "LIBERTERRA-II", "BR", 7, 0, T0 - 3 * 86400000LL, 1);

    (void)state;
    ops_counter_add_event(c, "opstream.arrests", 0, 0, &e);
    parsed_t p = build(c, &a, NOW);
    assert_int_equal(hdelta(&p, "opstream:{LIBERTERRA-II}:total", "seized_items", NULL), 7);
    assert_false(has_key(&p, "opstream:{LIBERTERRA-II}:min:202409271405"));
    assert_int_equal(hdelta(&p, "opstream:{LIBERTERRA-II}:hour:2024092714", "seized_items", NULL),
                     7);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

static void unassigned_and_stale_messages_are_ignored(void **state) {
    ops_counter_t *c = new_counter();
    ops_event_t e = mk(OPS_KIND_ARREST, "WEKA-II", "GH", 1, 0, T0, 1);

    (void)state;
    assert_int_equal(ops_counter_add_event(c, "opstream.arrests", 5, 0, &e),
                     OPS_COUNTER_NOT_ASSIGNED);
    assert_int_equal(ops_counter_add_skip(c, "opstream.seizures", 0, 0), OPS_COUNTER_NOT_ASSIGNED);
    /* Stored 40: an older message (left over from before a seek) is stale. */
    assert_int_equal(ops_counter_add_skip(c, "opstream.rescues", 1, 39), OPS_COUNTER_STALE);
    assert_int_equal(ops_counter_add_skip(c, "opstream.rescues", 1, 40), OPS_COUNTER_SKIPPED);
    assert_int_equal(ops_counter_add_skip(c, "opstream.rescues", 1, 40), OPS_COUNTER_STALE);
    assert_int_equal(ops_counter_pending(c), 1);
    assert_int_equal(ops_counter_gaps(c), 0);
    ops_counter_applied(c);
    /* Stored 41 now; a batch starting at 50 skipped 41..49. */
    assert_int_equal(ops_counter_add_skip(c, "opstream.rescues", 1, 50), OPS_COUNTER_SKIPPED);
    assert_int_equal(ops_counter_gaps(c), 1);
    ops_counter_destroy(c);
}

static void applied_batch_moves_stored_offsets_and_discard_does_not(void **state) {
    ops_counter_t *c = new_counter();
    int64_t stored;

    (void)state;
    ops_counter_add_skip(c, "opstream.arrests", 0, 3);
    ops_counter_add_skip(c, "opstream.arrests", 0, 4);
    ops_counter_discard(c);
    assert_int_equal(ops_counter_pending(c), 0);
    ops_counter_partition(c, 0, NULL, NULL, &stored);
    assert_int_equal(stored, -1);
    ops_counter_add_skip(c, "opstream.arrests", 0, 3);
    ops_counter_add_skip(c, "opstream.rescues", 1, 40);
    ops_counter_add_skip(c, "opstream.rescues", 1, 41);
    ops_counter_add_skip(c, "opstream.rescues", 1, 45); /* a gap is fine */
    assert_true(ops_counter_full(c));
    ops_counter_applied(c);
    assert_int_equal(ops_counter_pending(c), 0);
    ops_counter_partition(c, 0, NULL, NULL, &stored);
    assert_int_equal(stored, 4);
    ops_counter_partition(c, 1, NULL, NULL, &stored);
    assert_int_equal(stored, 46);
    ops_counter_unassign_all(c);
    assert_int_equal(ops_counter_partitions(c), 0);
    ops_counter_destroy(c);
}

/* The batch that fills while another's step runs follows it: each
 * partition at the offset the other's step will store (its next offset
 * where it has messages, else its stored one), its own batch empty, and the
 * other batch untouched. Its step expects exactly what the other's wrote. */
static void following_batch_stands_where_the_held_batch_will_leave_the_offsets(void **state) {
    ops_counter_t *held = new_counter(), *next = new_counter();
    char err[128];
    int64_t stored;

    (void)state;
    ops_counter_add_skip(next, "opstream.arrests", 0, 0); /* dropped by the follow */
    ops_counter_add_skip(held, "opstream.arrests", 0, 7);
    ops_counter_add_skip(held, "opstream.arrests", 0, 8);
    assert_int_equal(ops_counter_follow(next, held, err, sizeof err), 0);
    assert_int_equal(ops_counter_pending(next), 0);
    assert_int_equal(ops_counter_pending(held), 2);
    assert_int_equal(ops_counter_partitions(next), 2);
    ops_counter_partition(next, 0, NULL, NULL, &stored);
    assert_int_equal(stored, 9); /* after the held batch's last message */
    ops_counter_partition(next, 1, NULL, NULL, &stored);
    assert_int_equal(stored, 40); /* none in the held batch: as stored */
    ops_counter_partition(held, 0, NULL, NULL, &stored);
    assert_int_equal(stored, -1);
    /* The next batch takes the following offsets, not the held ones, and
     * sees no gap where it starts. */
    assert_int_equal(ops_counter_add_skip(next, "opstream.arrests", 0, 8), OPS_COUNTER_STALE);
    assert_int_equal(ops_counter_add_skip(next, "opstream.arrests", 0, 9), OPS_COUNTER_SKIPPED);
    assert_int_equal(ops_counter_pending_gaps(next, NULL, 0), 0);
    /* Once the held batch is applied, both agree on the stored offsets. */
    ops_counter_applied(held);
    ops_counter_partition(held, 0, NULL, NULL, &stored);
    assert_int_equal(stored, 9);
    ops_counter_destroy(held);
    ops_counter_destroy(next);
}

static void reassigning_a_partition_drops_the_pending_batch(void **state) {
    ops_counter_t *c = new_counter();
    char err[128];
    int64_t stored;

    (void)state;
    ops_counter_add_skip(c, "opstream.rescues", 1, 40);
    assert_int_equal(ops_counter_assign(c, "opstream.rescues", 1, 90, err, sizeof err), 0);
    assert_int_equal(ops_counter_pending(c), 0);
    ops_counter_partition(c, 1, NULL, NULL, &stored);
    assert_int_equal(stored, 90);
    assert_int_equal(ops_counter_partitions(c), 2);
    ops_counter_destroy(c);
}

/* Dedupe generations are window-wide: the current and the previous one are
 * checked (a mark counts when its time is within the window), marks go to
 * the current one, which expires two windows after its start. */
static void dedupe_generations_cover_the_window(void **state) {
    char err[128];
    ops_counter_options_t o = {.group = "g", .dedupe_window_s = 70};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);
    ops_counter_args_t a = {0};
    ops_event_t e = mk(OPS_KIND_ARREST, "OP", "GH", 1, 0, T0, 1);

    (void)state;
    assert_int_equal(ops_counter_seen_generation(1000005, 70), 999950);
    assert_int_equal(ops_counter_seen_generation(999950, 70), 999950);
    assert_int_equal(ops_counter_seen_generation(604800 * 3 + 5, 604800), 604800 * 3);
    assert_int_equal(ops_counter_assign(c, "t", 0, -1, err, sizeof err), 0);
    ops_counter_add_event(c, "t", 0, 0, &e);
    parsed_t p = build(c, &a, 1000005000LL); /* now 1000005 s */
    assert_int_equal(p.ops[0].nd, 2);
    assert_string_equal(a.argv[p.ops[0].keys + 2], "opstream:{OP}:seen:999950");
    assert_string_equal(a.argv[p.ops[0].keys + 3], "opstream:{OP}:seen:999880");
    assert_int_equal(num(&a, p.ops[0].args), 1000005);
    assert_int_equal(num(&a, p.ops[0].args + 1), 70);
    assert_int_equal(num(&a, p.ops[0].args + 3), 999950 + 140);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

static void counter_refuses_missing_group(void **state) {
    char err[128] = "";
    ops_counter_options_t o = {0};

    (void)state;
    assert_null(ops_counter_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "group"));
    assert_null(ops_counter_new(NULL, err, sizeof err));
    ops_counter_destroy(NULL);
    ops_counter_args_free(NULL);
}

static void large_batch_keeps_every_event(void **state) {
    char err[128];
    ops_counter_options_t o = {.group = "g", .dedupe_window_s = OPS_COUNTER_DEDUPE_DEFAULT};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);
    ops_counter_args_t a = {0};
    long long want = 0;

    (void)state;
    assert_int_equal(ops_counter_assign(c, "t", 0, -1, err, sizeof err), 0);
    for (int i = 0; i < 6000; i++) {
        ops_event_t e = mk(OPS_KIND_ARREST, i % 2 ? "A" : "B", i % 3 ? "FR" : "DE", 1 + i % 5, 0,
                           T0 + (int64_t)i * 1000, i);
        want += 1 + i % 5;
        assert_int_equal(ops_counter_add_event(c, "t", 0, i, &e), OPS_COUNTER_ADDED);
    }
    assert_true(ops_counter_full(c));
    parsed_t p = build(c, &a, T0 + 6000000);
    long long got = hdelta(&p, "opstream:{A}:total", "arrests", NULL) +
                    hdelta(&p, "opstream:{B}:total", "arrests", NULL);
    assert_int_equal(got, want);
    assert_int_equal(hdelta(&p, "opstream:{A}:total", "events", NULL), 3000);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

/* The in-batch dedupe holds across its table's growth: every repeat of
 * thousands of ids is found, an id repeated under another operation is
 * another event, and each one seen in Redis is dropped by its own id. */
static void in_batch_dedupe_holds_for_thousands_of_ids_per_operation(void **state) {
    char err[128];
    ops_counter_options_t o = {.group = "g", .dedupe_window_s = OPS_COUNTER_DEDUPE_DEFAULT};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);
    ops_counter_args_t a = {0};
    int64_t off = 0;

    (void)state;
    assert_int_equal(ops_counter_assign(c, "t", 0, -1, err, sizeof err), 0);
    for (int i = 0; i < 5000; i++) {
        ops_event_t e = mk(OPS_KIND_ARREST, "A", "FR", 1, 0, T0, i);
        assert_int_equal(ops_counter_add_event(c, "t", 0, off++, &e), OPS_COUNTER_ADDED);
    }
    for (int i = 0; i < 5000; i++) {
        ops_event_t e = mk(OPS_KIND_ARREST, "A", "FR", 1, 0, T0, i);
        ops_event_t f = mk(OPS_KIND_ARREST, "B", "FR", 1, 0, T0, i);
        assert_int_equal(ops_counter_add_event(c, "t", 0, off++, &e), OPS_COUNTER_DUPLICATE);
        assert_int_equal(ops_counter_add_event(c, "t", 0, off++, &f), OPS_COUNTER_ADDED);
    }
    assert_int_equal(ops_counter_dupes(c), 5000);
    assert_int_equal(ops_counter_pending_events(c), 10000);
    for (int i = 0; i < 5000; i += 2) {
        ops_event_t e = mk(OPS_KIND_ARREST, "A", "FR", 1, 0, T0, i);
        assert_int_equal(ops_counter_drop_seen(c, "A", e.event_id), 1);
    }
    assert_int_equal(ops_counter_drop_seen(c, "A", "not-a-uuid"), 0);
    assert_int_equal(ops_counter_drop_seen(c, "C", "00000000-0000-4000-8000-000000000001"), 0);
    parsed_t p = build(c, &a, T0 + 60000);
    assert_int_equal(hdelta(&p, "opstream:{A}:total", "events", NULL), 2500);
    assert_int_equal(hdelta(&p, "opstream:{B}:total", "events", NULL), 5000);
    ops_counter_args_free(&a);
    ops_counter_destroy(c);
}

/* What an emit callback saw: the calls in order, and each call's arguments
 * copied while they were valid. */
typedef struct seen_calls {
    size_t calls[8], n, stop_after;
    char args[8][64][96];
    size_t argc[8];
} seen_calls_t;

static int record_call(void *opaque, ops_counter_args_t *a, size_t call) {
    seen_calls_t *s = opaque;
    size_t first = call == OPS_COUNTER_CALL_OFFSETS ? a->cas_first : a->ops[call].name;
    size_t n = call == OPS_COUNTER_CALL_OFFSETS ? a->cas_argc
                                                : a->ops[call].first + a->ops[call].argc - first;

    assert_true(s->n < 8);
    s->calls[s->n] = call;
    s->argc[s->n] = n < 64 ? n : 64;
    for (size_t i = 0; i < s->argc[s->n]; i++)
        snprintf(s->args[s->n][i], sizeof s->args[0][0], "%.*s", (int)a->argvlen[first + i],
                 a->argv[first + i]);
    s->n++;
    return s->stop_after > 0 && s->n >= s->stop_after;
}

/* The streamed build hands over the offsets call first and then each
 * operation's call as it is built, each with the arguments the whole build
 * ends with; a stop ends the build there. */
static void build_each_hands_over_each_call_as_built(void **state) {
    ops_counter_t *c = new_counter();
    ops_counter_args_t a = {0}, b = {0};
    static seen_calls_t s, t;
    char err[128];
    const char *ops[3] = {"A", "B", "C"};

    (void)state;
    for (int i = 0; i < 3; i++) {
        ops_event_t e = mk(OPS_KIND_RESCUE, ops[i], "GH", 2 + i, 1, T0, 10 + i);
        assert_int_equal(ops_counter_add_event(c, "opstream.arrests", 0, i, &e), OPS_COUNTER_ADDED);
    }
    memset(&s, 0, sizeof s);
    assert_int_equal(ops_counter_build_each(c, NOW, &a, record_call, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 4);
    assert_true(s.calls[0] == OPS_COUNTER_CALL_OFFSETS);
    for (size_t k = 1; k < 4; k++)
        assert_int_equal(s.calls[k], k - 1);
    for (size_t k = 0; k < 4; k++) {
        size_t first = k == 0 ? a.cas_first : a.ops[k - 1].name;
        for (size_t i = 0; i < s.argc[k]; i++) {
            char want[96];
            snprintf(want, sizeof want, "%.*s", (int)a.argvlen[first + i], a.argv[first + i]);
            assert_string_equal(s.args[k][i], want);
        }
    }
    parse(&a); /* the whole layout still holds */
    memset(&t, 0, sizeof t);
    t.stop_after = 2;
    assert_int_equal(ops_counter_build_each(c, NOW, &b, record_call, &t, err, sizeof err), 1);
    assert_int_equal(t.n, 2);
    ops_counter_args_free(&a);
    ops_counter_args_free(&b);
    ops_counter_destroy(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_aggregates_every_key_of_the_contract),
        cmocka_unit_test(duplicate_in_a_batch_counts_once_but_passes_its_offset),
        cmocka_unit_test(dedupe_window_0_turns_dedupe_off),
        cmocka_unit_test(event_seen_in_redis_is_dropped_but_offset_still_passes),
        cmocka_unit_test(events_below_a_watermark_are_dropped_and_applied_operations_left_out),
        cmocka_unit_test(events_applied_by_this_batch_are_no_duplicates_when_sent_again),
        cmocka_unit_test(events_of_a_step_whose_reply_was_lost_are_no_duplicates_below_its_watermark),
        cmocka_unit_test(offsets_in_doubt_last_until_the_batch_is_applied_or_dropped),
        cmocka_unit_test(dlq_message_passes_its_offset_and_counts_nothing),
        cmocka_unit_test(event_older_than_bucket_ttl_counts_in_totals_only),
        cmocka_unit_test(unassigned_and_stale_messages_are_ignored),
        cmocka_unit_test(applied_batch_moves_stored_offsets_and_discard_does_not),
        cmocka_unit_test(reassigning_a_partition_drops_the_pending_batch),
        cmocka_unit_test(following_batch_stands_where_the_held_batch_will_leave_the_offsets),
        cmocka_unit_test(dedupe_generations_cover_the_window),
        cmocka_unit_test(counter_refuses_missing_group),
        cmocka_unit_test(large_batch_keeps_every_event),
        cmocka_unit_test(in_batch_dedupe_holds_for_thousands_of_ids_per_operation),
        cmocka_unit_test(build_each_hands_over_each_call_as_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
