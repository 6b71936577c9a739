/*
 * Hostile values from a foreign producer: events that decode (Avro with the
 * published schemas and Confluent framing, written with lib/codec.c as a
 * national system's own producer would, not through opstream-produce) but
 * carry absurd values: event times near the end of int64, in the year 9999,
 * before 1970 or past the accepted range, zero, negative and 2^31-1 counts,
 * minors or referred above the count, bad country, operation, event_id and
 * nationality codes. 10,000 of them (OPSTREAM_LONG=1: 100,000), every class,
 * interleaved with good events in the same batches, through opstream-count
 * and opstream-alert at once: every bad one reaches opstream.dlq from each
 * consumer with a reason naming the field and the value, every good one is
 * counted in every key it belongs to (totals, country, minute and hour
 * buckets with their TTLs, countries and operations sets), no key lacks a
 * TTL where one is due, no alert comes from a bad event, and both
 * consumers' memory stays bounded.
 */
#include "test_count_common.h"

#include <inttypes.h>

#include "opstream/counter.h"

#define GROUP "opstream-count"
#define ALERT_GROUP "opstream-alert"
#define OP "FLASH-WEKA"
#define GOOD_EVERY 4 /* a good event after every 4th bad one */

/* ---- the classes of absurd values ------------------------------------------ */

typedef enum bad_class {
    B_OCC_INT64_MAX = 0, /* occurred_at near the end of int64 */
    B_OCC_YEAR_9999,
    B_OCC_BEFORE_1970,
    B_OCC_BEFORE_2000, /* 1999-12-31: just before the accepted range */
    B_OCC_FUTURE,      /* two days ahead */
    B_REP_YEAR_9999,
    B_REP_NEGATIVE,
    B_COUNT_ZERO,
    B_COUNT_NEGATIVE,
    B_COUNT_INT32_MAX, /* 2^31-1 */
    B_COUNT_ABOVE_MAX, /* 100001 */
    B_MINORS_ABOVE,    /* minors > victims / migrants */
    B_MINORS_NEGATIVE,
    B_REFERRED_ABOVE, /* rescue v2: referred > victims */
    B_COUNTRY,        /* XK: user-assigned, not ISO */
    B_OPERATION,      /* lower case */
    B_EVENT_ID,       /* upper-case UUID */
    B_NATIONALITY,    /* ZZ among the nationalities */
    B_CLASSES
} bad_class_t;

static const char *const class_name[B_CLASSES] = {"occurred_at near INT64_MAX",
                                                  "occurred_at year 9999",
                                                  "occurred_at before 1970",
                                                  "occurred_at before 2000",
                                                  "occurred_at 2 days ahead",
                                                  "reported_at year 9999",
                                                  "reported_at negative",
                                                  "count 0",
                                                  "count negative",
                                                  "count 2^31-1",
                                                  "count 100001",
                                                  "minors above count",
                                                  "minors negative",
                                                  "referred above victims",
                                                  "country XK",
                                                  "operation lower case",
                                                  "event_id upper case",
                                                  "nationality ZZ"};

static const char *count_field(ops_kind_t k) {
    static const char *const n[OPS_KIND_COUNT] = {"persons", "victims", "migrants", "items"};
    return n[k];
}

/* Bad event number i: a good event with one absurd value, a unique valid
 * event_id (except for B_EVENT_ID), and what its DLQ reason must name. */
static bad_class_t bad_event(int i, int64_t now, ops_event_t *ev, char *field, size_t fsize,
                             char *value, size_t vsize) {
    uint64_t rng = 0x5bd1e995ULL * (uint64_t)(i + 1);
    bad_class_t c = (bad_class_t)(i % B_CLASSES);
    int64_t t = 0;
    char ref[32];

    *ev = tc_event(&rng, OP, i, now - 60000 - (int64_t)(i % 3600) * 1000);
    snprintf(ref, sizeof ref, "BAD-%d", i);
    snprintf(ev->source_ref, sizeof ev->source_ref, "%s", ref);
    ops_event_id_derive(OP, ev->country, ev->kind, ref, ev->event_id);
    if (c == B_MINORS_ABOVE || c == B_MINORS_NEGATIVE || c == B_REFERRED_ABOVE) {
        ev->kind = c == B_MINORS_ABOVE && i % 2 ? OPS_KIND_MIGRANT : OPS_KIND_RESCUE;
        ev->minors = 0;
        ev->site = OPS_SITE_HOTEL;
    }
    if (c == B_NATIONALITY) {
        ev->kind = OPS_KIND_ARREST;
        ev->minors = 0;
        ev->n_nationalities = 2;
        strcpy(ev->nationalities[0], "NG");
        strcpy(ev->nationalities[1], "ZZ");
    }
    snprintf(field, fsize, "%s", count_field(ev->kind));
    switch (c) {
    case B_OCC_INT64_MAX:
        t = INT64_MAX - i;
        break;
    case B_OCC_YEAR_9999:
        t = 253402300799000LL - (int64_t)i * 1000; /* 9999-12-31T23:59:59Z and before */
        break;
    case B_OCC_BEFORE_1970:
        t = -86400000LL * (i + 1);
        break;
    case B_OCC_BEFORE_2000:
        t = OPS_VALID_MIN_TIME_MS - 1 - i;
        break;
    case B_OCC_FUTURE:
        t = now + 2 * 86400000LL + i;
        break;
    case B_REP_YEAR_9999:
        ev->reported_at = 253402300799000LL;
        snprintf(field, fsize, "reported_at");
        snprintf(value, vsize, "%" PRId64, ev->reported_at);
        return c;
    case B_REP_NEGATIVE:
        ev->reported_at = -1 - i;
        snprintf(field, fsize, "reported_at");
        snprintf(value, vsize, "%" PRId64, ev->reported_at);
        return c;
    case B_COUNT_ZERO:
        ev->count = 0;
        ev->minors = 0;
        break;
    case B_COUNT_NEGATIVE:
        ev->count = -(1 + i % 1000);
        ev->minors = 0;
        break;
    case B_COUNT_INT32_MAX:
        ev->count = INT32_MAX;
        break;
    case B_COUNT_ABOVE_MAX:
        ev->count = OPS_COUNT_MAX + 1;
        break;
    case B_MINORS_ABOVE:
        ev->count = 5 + i % 20;
        ev->minors = ev->count + 1;
        snprintf(field, fsize, "minors");
        snprintf(value, vsize, "%" PRId32, ev->minors);
        return c;
    case B_MINORS_NEGATIVE:
        ev->minors = -1 - i % 50;
        snprintf(field, fsize, "minors");
        snprintf(value, vsize, "%" PRId32, ev->minors);
        return c;
    case B_REFERRED_ABOVE:
        ev->referred = ev->count + 1;
        snprintf(field, fsize, "referred");
        snprintf(value, vsize, "%" PRId32, ev->referred);
        return c;
    case B_COUNTRY:
        strcpy(ev->country, "XK");
        snprintf(field, fsize, "country");
        snprintf(value, vsize, "XK");
        return c;
    case B_OPERATION:
        strcpy(ev->operation, "flash-weka");
        snprintf(field, fsize, "operation");
        snprintf(value, vsize, "flash-weka");
        return c;
    case B_EVENT_ID:
        for (char *p = ev->event_id; *p; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 'a' + 'A');
        snprintf(field, fsize, "event_id");
        snprintf(value, vsize, "%s", ev->event_id);
        return c;
    case B_NATIONALITY:
        snprintf(field, fsize, "suspect_nationalities");
        snprintf(value, vsize, "ZZ");
        return c;
    default:
        fail();
    }
    if (t != 0) {
        ev->occurred_at = t;
        snprintf(field, fsize, "occurred_at");
        snprintf(value, vsize, "%" PRId64, t);
    } else {
        snprintf(value, vsize, "%" PRId32, ev->count);
    }
    return c;
}

/* Good event number g: ordinary traffic, and now and then a value on the
 * edge of the accepted range (the largest count, the earliest time, almost
 * a day ahead), which must count like any other. */
static ops_event_t good_event(int g, int64_t now, uint64_t *rng) {
    ops_event_t ev = tc_event(rng, OP, g, now - (int64_t)(tc_rand(rng) % 7200000ULL));

    switch (g % 100) {
    case 10:
        ev.count = OPS_COUNT_MAX;
        ev.minors = ev.kind == OPS_KIND_RESCUE || ev.kind == OPS_KIND_MIGRANT ? OPS_COUNT_MAX : 0;
        break;
    case 20:
        ev.occurred_at = ev.reported_at = OPS_VALID_MIN_TIME_MS; /* totals only: buckets expired */
        break;
    case 30:
        ev.occurred_at = now + 23LL * 3600 * 1000;
        break;
    default:
        break;
    }
    return ev;
}

typedef struct suite {
    int n_bad, n_good;
    int64_t now;
    uint64_t rng;
    tc_model_t m;
    char (*good_ids)[OPS_EVENT_ID_LEN + 1];
} suite_t;

/* Produces bad events [from, to), each keyed "b<i>" on its kind's topic,
 * with a good one (modelled) after every GOOD_EVERY-th. */
static void produce_range(suite_t *s, int from, int to) {
    unsigned char buf[OPS_CODEC_MAX_FRAME];
    char err[256], topic[64], key[32], field[64], value[64];
    size_t len;

    for (int i = from; i < to; i++) {
        ops_event_t ev;
        bad_event(i, s->now, &ev, field, sizeof field, value, sizeof value);
        assert_int_equal(
            ops_codec_encode_event(g_codec, &ev, buf, sizeof buf, &len, err, sizeof err), 0);
        assert_int_equal(ops_topic_name(NULL, ev.kind, topic, sizeof topic), 0);
        snprintf(key, sizeof key, "b%d", i);
        tc_produce_raw(topic, key, buf, len);
        if (i % GOOD_EVERY == GOOD_EVERY - 1) {
            ops_event_t g = good_event(s->n_good, s->now, &s->rng);
            tc_model_event(&s->m, &g, s->now);
            memcpy(s->good_ids[s->n_good++], g.event_id, OPS_EVENT_ID_LEN + 1);
            tc_produce_event(&g);
        }
    }
}

/* The last "<N> <word>" figure a process printed, e.g. its DLQ count. */
static long long last_figure(harness_proc_t *p, const char *word) {
    char *err = harness_proc_stderr(p), *at = NULL, *s;
    long long v = -1;

    assert_non_null(err);
    for (s = strstr(err, word); s != NULL; s = strstr(s + 1, word))
        at = s;
    if (at != NULL) {
        char *b = at - 1;
        while (b > err && b[-1] >= '0' && b[-1] <= '9')
            b--;
        v = strtoll(b, NULL, 10);
    }
    free(err);
    return v;
}

/* Every key of Redis: the operations set, the groups' offsets, or a key of
 * the one good operation; buckets and dedupe marks carry a TTL, the
 * others none is due for. */
static void assert_keys_and_ttls(void) {
    redisReply *r = harness_redis_command(g_redis, "KEYS *");
    size_t buckets = 0, marks = 0;

    assert_non_null(r);
    for (size_t i = 0; i < r->elements; i++) {
        const char *k = r->element[i]->str;
        bool due = strstr(k, ":min:") != NULL || strstr(k, ":hour:") != NULL ||
                   strstr(k, ":seen:") != NULL;
        if (strncmp(k, "opstream:members:", 17) == 0)
            continue; /* the consumers' heartbeats, with their own expiry */
        if (strcmp(k, "opstream:operations") != 0 && strncmp(k, "opstream:offsets:", 17) != 0 &&
            strncmp(k, "opstream:{" OP "}:", strlen("opstream:{" OP "}:")) != 0)
            fail_msg("unexpected key %s", k);
        redisReply *t = harness_redis_command(g_redis, "PTTL %s", k);
        assert_non_null(t);
        if (due && t->integer <= 0)
            fail_msg("key %s has no TTL (PTTL %lld)", k, t->integer);
        if (!due && strstr(k, ":alerts") == NULL && t->integer != -1)
            fail_msg("key %s has a TTL it should not have", k);
        freeReplyObject(t);
        buckets += strstr(k, ":min:") != NULL || strstr(k, ":hour:") != NULL;
        marks += strstr(k, ":seen:") != NULL;
    }
    freeReplyObject(r);
    assert_true(buckets > 0);
    assert_true(marks > 0);
}

/* Each bad message twice on the DLQ (once from each consumer), unchanged,
 * with a reason that names its field and value; nothing else there. */
static void assert_dlq(const suite_t *s) {
    harness_msgs_t dlq = {0};
    unsigned char buf[OPS_CODEC_MAX_FRAME];
    char err[256], key[32], field[64], value[64], hv[512];
    int *seen = calloc((size_t)s->n_bad, sizeof *seen);
    int per_class[B_CLASSES] = {0};
    size_t len;

    assert_non_null(seen);
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.dlq", 1000, 120000, &dlq),
                     0);
    assert_int_equal(dlq.n, (size_t)s->n_bad * 2);
    for (size_t j = 0; j < dlq.n; j++) {
        const harness_msg_t *d = &dlq.v[j];
        int i;
        ops_event_t ev;
        assert_non_null(d->key);
        assert_true(d->key_len < sizeof key);
        memcpy(key, d->key, d->key_len);
        key[d->key_len] = '\0';
        assert_int_equal(sscanf(key, "b%d", &i), 1);
        assert_true(i >= 0 && i < s->n_bad);
        bad_class_t c = bad_event(i, s->now, &ev, field, sizeof field, value, sizeof value);
        assert_int_equal(
            ops_codec_encode_event(g_codec, &ev, buf, sizeof buf, &len, err, sizeof err), 0);
        assert_int_equal(d->value_len, len);
        assert_memory_equal(d->value, buf, len);
        assert_int_equal(harness_msg_header(d, "opstream.error", hv, sizeof hv), 0);
        if (strstr(hv, field) == NULL || strstr(hv, value) == NULL ||
            !(strncmp(hv, "invalid: ", 9) == 0 || strncmp(hv, "malformed: ", 11) == 0))
            fail_msg("b%d (%s): reason '%s' does not name %s %s", i, class_name[c], hv, field,
                     value);
        seen[i]++;
        per_class[c]++;
    }
    for (int i = 0; i < s->n_bad; i++)
        if (seen[i] != 2)
            fail_msg("b%d is on the DLQ %d times, expected 2", i, seen[i]);
    for (int c = 0; c < B_CLASSES; c++)
        assert_true(per_class[c] >= 2 * (s->n_bad / B_CLASSES));
    harness_msgs_free(&dlq);
    free(seen);
}

static int cmp_id(const void *a, const void *b) {
    return strcmp(a, b);
}

/* Alerts come from good events only: every event id an alert names is a
 * good event's, and the good raids did raise alerts. */
static void assert_alerts(suite_t *s) {
    harness_msgs_t msgs = {0};
    char err[256];
    size_t single = 0;

    qsort(s->good_ids, (size_t)s->n_good, sizeof s->good_ids[0], cmp_id);
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.alerts", 500, 60000, &msgs),
                     0);
    for (size_t j = 0; j < msgs.n; j++) {
        ops_alert_t a;
        assert_int_equal(ops_codec_decode_alert(g_codec, msgs.v[j].value, msgs.v[j].value_len, &a,
                                                err, sizeof err),
                         OPS_CODEC_OK);
        assert_string_equal(a.operation, OP);
        for (uint32_t k = 0; k < a.n_event_ids; k++)
            if (bsearch(a.event_ids[k], s->good_ids, (size_t)s->n_good, sizeof s->good_ids[0],
                        cmp_id) == NULL)
                fail_msg("alert %s (%s) names event %s, not a good event", a.alert_id, a.rule,
                         a.event_ids[k]);
        single += strcmp(a.rule, "mass-rescue") == 0 || strcmp(a.rule, "migrant-boat") == 0;
    }
    assert_true(single > 0);
    harness_msgs_free(&msgs);
}

static void absurd_values_from_a_foreign_producer_go_to_the_dlq_and_good_ones_count(void **state) {
    const char *long_env = getenv("OPSTREAM_LONG");
    const char *src = getenv("OPSTREAM_SRC_DIR");
    const char *const dedupe_on[] = {"--batch", "1000", "-X", "opstream.dedupe.window.s=604800",
                                     NULL};
    char rules[HARNESS_PATH_MAX];
    suite_t s = {0};

    (void)state;
    s.n_bad = long_env != NULL && strcmp(long_env, "1") == 0 ? 100000 : 10000;
    s.now = tc_wall_ms();
    s.rng = 2026;
    s.good_ids = calloc((size_t)s.n_bad / GOOD_EVERY + 1, sizeof s.good_ids[0]);
    assert_non_null(s.good_ids);
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", src != NULL ? src : ".");

    harness_proc_t *count = tc_spawn_count(GROUP, dedupe_on);
    harness_proc_t *alert = tc_spawn_alert(rules);
    assert_non_null(count);
    assert_non_null(alert);
    /* Warm-up: buffers, the DLQ producers and the codecs reach their size. */
    int warm = s.n_bad / 10;
    produce_range(&s, 0, warm);
    tc_flush();
    assert_int_equal(tc_wait_consumed(GROUP, 120000), 0);
    assert_int_equal(tc_wait_consumed(ALERT_GROUP, 120000), 0);
    long count_base = tc_proc_status_kb(count->pid, "VmRSS:");
    long alert_base = tc_proc_status_kb(alert->pid, "VmRSS:");
    bool sanitized = tc_proc_is_sanitized(count->pid);
    assert_true(count_base > 0 && alert_base > 0);
    /* Waves the consumers take while the next is produced: what is
     * measured is what the messages leave behind, not a backlog's prefetch. */
    for (int from = warm; from < s.n_bad; from += 3000) {
        int to = from + 3000 < s.n_bad ? from + 3000 : s.n_bad;
        produce_range(&s, from, to);
        tc_flush();
        assert_int_equal(tc_wait_consumed(GROUP, 120000), 0);
    }
    assert_int_equal(tc_wait_consumed(GROUP, 120000), 0);
    assert_int_equal(tc_wait_consumed(ALERT_GROUP, 120000), 0);
    long count_peak = tc_proc_status_kb(count->pid, "VmHWM:");
    long alert_peak = tc_proc_status_kb(alert->pid, "VmHWM:");
    fprintf(stderr,
            "hostile values: %d bad and %d good events; opstream-count RSS %ld kB after "
            "warm-up, peak %ld kB; opstream-alert %ld kB, peak %ld kB%s\n",
            s.n_bad, s.n_good, count_base, count_peak, alert_base, alert_peak,
            sanitized ? " (sanitized build: no RSS bound)" : "");
    if (!sanitized) {
        assert_true(count_peak - count_base < 32 * 1024);
        assert_true(alert_peak - alert_base < 32 * 1024);
    }
    /* exit 0: under ASan also LeakSanitizer's verdict */
    assert_int_equal(harness_proc_stop(count, 20000), 0);
    assert_int_equal(harness_proc_stop(alert, 20000), 0);
    assert_int_equal(last_figure(count, " dlq"), s.n_bad);
    assert_int_equal(last_figure(alert, " to the DLQ"), s.n_bad);
    harness_proc_free(count);
    harness_proc_free(alert);

    /* Every good event in every key it belongs to, nothing from a bad one. */
    assert_int_equal(tc_model_compare(&s.m, true), 0);
    redisReply *r = harness_redis_command(g_redis, "SMEMBERS opstream:operations");
    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, OP);
    freeReplyObject(r);
    r = harness_redis_command(g_redis, "SISMEMBER opstream:{" OP "}:countries XK");
    assert_non_null(r);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_keys_and_ttls();
    assert_dlq(&s);
    assert_alerts(&s);
    tc_model_free(&s.m);
    free(s.good_ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            absurd_values_from_a_foreign_producer_go_to_the_dlq_and_good_ones_count, tc_setup,
            tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
