/*
 * The produce path (ops_produce) against the embedded broker when the
 * idempotent producer fails fatally: a recreated producer re-sends the
 * frames it kept, the same bytes (same event_id) as the first send, each
 * record reported delivered exactly once; with recreation off, every record
 * is reported exactly once, each failed one with its own event (event_id,
 * source_ref) and the file and line it came from, and an event the model
 * cannot hold with its kind and country. Small, large (heap-kept) and
 * medium frames are mixed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/produce.h"
#include "test_produce_common.h"

#define N_RECORDS 600
#define INPUT_FILE "input.jsonl"
#define FRAME_CAP 1024 /* the largest frame here is about 500 bytes */

/* What the callbacks saw, by record number (the line is the number). */
typedef struct seen {
    int delivered[N_RECORDS];
    int failed[N_RECORDS];
    int wrong; /* a callback's event or position did not match its record */
    char first_wrong[512];
    size_t n_notices;
    char notices[2048];
    const ops_event_t *sent; /* the records, to compare with */
} seen_t;

static void note_wrong(seen_t *s, const char *fmt, ...) {
    va_list ap;
    if (s->wrong++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(s->first_wrong, sizeof(s->first_wrong), fmt, ap);
    va_end(ap);
}

/* The record number of an event_id made by make_event, or -1. */
static int record_of(const ops_event_t *ev) {
    int no = -1;
    if (sscanf(ev->event_id, "00000000-0000-4000-8000-%12d", &no) != 1 || no < 0 || no >= N_RECORDS)
        return -1;
    return no;
}

static void on_delivered(void *opaque, const ops_event_t *ev) {
    seen_t *s = opaque;
    int no = record_of(ev);
    if (no < 0) {
        note_wrong(s, "delivered: unknown event_id '%s'", ev->event_id);
        return;
    }
    s->delivered[no]++;
    if (strcmp(ev->source_ref, s->sent[no].source_ref) != 0 ||
        strcmp(ev->country, s->sent[no].country) != 0 || ev->kind != s->sent[no].kind ||
        ev->count != s->sent[no].count)
        note_wrong(s, "delivered: record %d reported as %s/%s", no, ev->event_id, ev->source_ref);
}

static void on_failed(void *opaque, const ops_event_t *ev, const char *file, long line,
                      const char *reason) {
    seen_t *s = opaque;
    if (line < 0 || line >= N_RECORDS) {
        note_wrong(s, "failed: line %ld out of range (%s)", line, reason);
        return;
    }
    s->failed[line]++;
    if (file == NULL || strcmp(file, INPUT_FILE) != 0)
        note_wrong(s, "failed: line %ld reported from file %s", line, file ? file : "(null)");
    if (strcmp(ev->event_id, s->sent[line].event_id) != 0 ||
        strcmp(ev->source_ref, s->sent[line].source_ref) != 0)
        note_wrong(s, "failed: line %ld reported with event_id '%s' source_ref '%s' (%s)", line,
                   ev->event_id, ev->source_ref, reason);
    if (reason == NULL || reason[0] == '\0')
        note_wrong(s, "failed: line %ld without a reason", line);
}

static void on_notice(void *opaque, const char *msg) {
    seen_t *s = opaque;
    size_t len = strlen(s->notices);
    snprintf(s->notices + len, sizeof(s->notices) - len, "%s\n", msg);
    s->n_notices++;
}

/* Record no of operation op: every kind in turn; every fifth one with a
 * long location and many nationalities (a frame kept on the heap), every
 * fifth from the second on with a medium location (over the inline size). */
static void make_event(const char *op, int no, ops_event_t *ev) {
    static const char *const cc[] = {"NG", "GH", "CM", "TG", "SN", "ML"};
    ops_event_init(ev);
    ev->kind = (ops_kind_t)(no % OPS_KIND_COUNT);
    snprintf(ev->event_id, sizeof(ev->event_id), "00000000-0000-4000-8000-%012d", no);
    snprintf(ev->operation, sizeof(ev->operation), "%s", op);
    snprintf(ev->country, sizeof(ev->country), "%s", cc[no % 6]);
    ev->occurred_at = 1727690400000LL + no;
    ev->reported_at = 1727690460000LL + no;
    snprintf(ev->source_ref, sizeof(ev->source_ref), "%s-ref-%06d", op, no);
    ev->count = 1 + no % 50;
    if (no % 5 == 0 || no % 5 == 1) {
        size_t n = no % 5 == 0 ? OPS_LOCATION_MAX : 100;
        ev->has_location = true;
        memset(ev->location, 'a' + no % 26, n);
        ev->location[n] = '\0';
    }
    if (no % 5 == 0 && ev->kind != OPS_KIND_SEIZURE) {
        ev->n_nationalities = 40;
        for (uint32_t i = 0; i < ev->n_nationalities; i++)
            snprintf(ev->nationalities[i], sizeof(ev->nationalities[i]), "%s", cc[i % 6]);
    }
    if (ev->kind == OPS_KIND_RESCUE || ev->kind == OPS_KIND_MIGRANT)
        ev->minors = ev->count / 2;
}

/* A producer on the embedded broker with the callbacks above. */
static ops_produce_t *start_producer(seen_t *s, int max_recreate) {
    char err[512];
    ops_config_t *cfg = ops_config_new();
    ops_produce_options_t po = {0};
    assert_non_null(cfg);
    assert_int_equal(ops_config_set(cfg, "bootstrap.servers", g_broker->bootstrap, err, sizeof err),
                     0);
    po.max_recreate = max_recreate;
    po.on_delivered = on_delivered;
    po.on_failed = on_failed;
    po.on_notice = on_notice;
    po.opaque = s;
    ops_produce_t *p = ops_produce_new(cfg, &po, err, sizeof err);
    ops_config_destroy(cfg);
    if (p == NULL)
        fail_msg("ops_produce_new: %s", err);
    return p;
}

/* The number of records the recreated producer re-sent, from its notice
 * ("... re-sending N unconfirmed records"), or -1. */
static long resent_count(const seen_t *s) {
    const char *at = strstr(s->notices, "re-sending ");
    return at != NULL ? strtol(at + strlen("re-sending "), NULL, 10) : -1;
}

static void a_recreated_producer_resends_the_same_bytes_and_reports_each_record_once(void **state) {
    static const char op[] = "RESEND-BYTES";
    char err[512], topic[64];
    ops_event_t *evs = calloc(N_RECORDS, sizeof(*evs));
    unsigned char(*frames)[FRAME_CAP] = calloc(N_RECORDS, sizeof(*frames));
    size_t *lens = calloc(N_RECORDS, sizeof(*lens));
    int *copies = calloc(N_RECORDS, sizeof(*copies));
    seen_t *s = calloc(1, sizeof(*s));
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof err);
    ops_produce_stats_t st;
    size_t n_large = 0, n_medium = 0;
    (void)state;
    assert_non_null(evs);
    assert_non_null(frames);
    assert_non_null(lens);
    assert_non_null(copies);
    assert_non_null(s);
    assert_non_null(codec);

    /* the bytes each record must arrive as */
    for (int no = 0; no < N_RECORDS; no++) {
        make_event(op, no, &evs[no]);
        assert_int_equal(ops_codec_encode_event(codec, &evs[no], frames[no], sizeof(frames[no]),
                                                &lens[no], err, sizeof err),
                         0);
        n_large += lens[no] > 256;
        n_medium += lens[no] > 192 && lens[no] <= 256;
    }
    assert_true(n_large > 0 && n_medium > 0); /* both ways of keeping a large frame */
    s->sent = evs;

    /* a sequence error breaks the idempotent producer for good */
    assert_int_equal(harness_broker_command(
                         g_broker, "push-errors Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER", NULL, 0),
                     0);
    ops_produce_t *p = start_producer(s, 0);
    for (int no = 0; no < N_RECORDS; no++)
        if (ops_produce_send(p, &evs[no], INPUT_FILE, no, err, sizeof err) != 0)
            fail_msg("record %d not sent: %s", no, err);
    assert_int_equal(ops_produce_flush(p, 60000), 0);
    ops_produce_stats(p, &st);
    ops_produce_destroy(p);

    if (s->wrong)
        fail_msg("%d callback(s) wrong, first: %s", s->wrong, s->first_wrong);
    assert_true(st.recreated >= 1);
    assert_non_null(strstr(s->notices, "recreated it"));
    assert_true(resent_count(s) > 0);
    assert_int_equal(st.delivered, N_RECORDS);
    assert_int_equal(st.failed, 0);
    for (int no = 0; no < N_RECORDS; no++) {
        if (s->delivered[no] != 1)
            fail_msg("record %d reported delivered %d times", no, s->delivered[no]);
        assert_int_equal(s->failed[no], 0);
    }

    /* on the topics: every record, each copy (a re-sent record that had
     * reached the topic before the failure is there twice) byte for byte
     * the frame encoded from its event, keyed by its country */
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        harness_msgs_t msgs = {0};
        ops_topic_name("opstream.", (ops_kind_t)k, topic, sizeof(topic));
        assert_int_equal(harness_consume_all(g_broker->bootstrap, topic, 500, 60000, &msgs), 0);
        for (size_t i = 0; i < msgs.n; i++) {
            ops_event_t ev;
            if (ops_codec_decode_event(codec, msgs.v[i].value, msgs.v[i].value_len, &ev, err,
                                       sizeof err) != OPS_CODEC_OK)
                fail_msg("%s: undecodable message at offset %lld: %s", topic,
                         (long long)msgs.v[i].offset, err);
            if (strcmp(ev.operation, op) != 0)
                continue;
            int no = record_of(&ev);
            assert_true(no >= 0);
            if (msgs.v[i].value_len != lens[no] ||
                memcmp(msgs.v[i].value, frames[no], lens[no]) != 0)
                fail_msg("record %d (%s) arrived as other bytes (%zu, sent %zu)", no, ev.event_id,
                         msgs.v[i].value_len, lens[no]);
            assert_int_equal(msgs.v[i].key_len, 2);
            assert_memory_equal(msgs.v[i].key, evs[no].country, 2);
            copies[no]++;
        }
        harness_msgs_free(&msgs);
    }
    for (int no = 0; no < N_RECORDS; no++)
        if (copies[no] == 0)
            fail_msg("record %d is not on its topic", no);

    ops_codec_destroy(codec);
    free(s);
    free(copies);
    free(lens);
    free(frames);
    free(evs);
}

static void
without_recreation_each_failed_record_is_reported_with_its_event_and_line(void **state) {
    static const char op[] = "RESEND-FAILED";
    char err[512];
    ops_event_t *evs = calloc(N_RECORDS, sizeof(*evs));
    seen_t *s = calloc(1, sizeof(*s));
    ops_produce_stats_t st;
    long n_failed = 0;
    (void)state;
    assert_non_null(evs);
    assert_non_null(s);
    for (int no = 0; no < N_RECORDS; no++)
        make_event(op, no, &evs[no]);
    s->sent = evs;

    assert_int_equal(harness_broker_command(
                         g_broker, "push-errors Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER", NULL, 0),
                     0);
    ops_produce_t *p = start_producer(s, -1);
    for (int no = 0; no < N_RECORDS; no++)
        (void)ops_produce_send(p, &evs[no], INPUT_FILE, no, err, sizeof err);
    assert_int_equal(ops_produce_flush(p, 60000), 0);
    ops_produce_stats(p, &st);
    ops_produce_destroy(p);

    if (s->wrong)
        fail_msg("%d callback(s) wrong, first: %s", s->wrong, s->first_wrong);
    assert_non_null(strstr(s->notices, "not recreating it"));
    assert_int_equal(st.recreated, 0);
    for (int no = 0; no < N_RECORDS; no++) {
        if (s->delivered[no] + s->failed[no] != 1)
            fail_msg("record %d reported %d times delivered, %d times failed", no, s->delivered[no],
                     s->failed[no]);
        n_failed += s->failed[no];
    }
    /* the records of the broken producer failed, each told with its event */
    assert_true(n_failed > 0);
    assert_int_equal(st.failed, n_failed);
    assert_int_equal(st.delivered + st.failed, N_RECORDS);
    free(s);
    free(evs);
}

/* What the callback of the next test saw. */
typedef struct one_failure {
    int calls;
    ops_event_t ev;
    char file[64];
    long line;
} one_failure_t;

static void on_failed_one(void *opaque, const ops_event_t *ev, const char *file, long line,
                          const char *reason) {
    one_failure_t *f = opaque;
    (void)reason;
    f->calls++;
    f->ev = *ev;
    snprintf(f->file, sizeof(f->file), "%s", file ? file : "");
    f->line = line;
}

/* A count over OPS_COUNT_MAX (validation refuses it; ops_produce_send does
 * not validate, and a reader would refuse the record) is refused at the
 * send: reported once, at once, with where it came from, why, and the
 * caller's whole event (event_id and source_ref included); nothing is
 * produced. */
static void an_event_outside_the_model_is_refused_with_its_event_and_line(void **state) {
    char err[512];
    ops_event_t ev;
    one_failure_t f = {0};
    ops_config_t *cfg = ops_config_new();
    ops_produce_options_t po = {.max_recreate = -1, .on_failed = on_failed_one, .opaque = &f};
    ops_produce_stats_t st;
    (void)state;
    make_event("RESEND-OUTSIDE", 7, &ev);
    ev.count = OPS_COUNT_MAX + 1;
    assert_non_null(cfg);
    assert_int_equal(ops_config_set(cfg, "bootstrap.servers", g_broker->bootstrap, err, sizeof err),
                     0);
    ops_produce_t *p = ops_produce_new(cfg, &po, err, sizeof err);
    ops_config_destroy(cfg);
    assert_non_null(p);
    assert_int_equal(ops_produce_send(p, &ev, INPUT_FILE, 42, err, sizeof err), -1);
    assert_non_null(strstr(err, "count 100001 is outside 0..100000"));
    assert_int_equal(ops_produce_flush(p, 60000), 0);
    ops_produce_stats(p, &st);
    ops_produce_destroy(p);

    assert_int_equal(st.failed, 1);
    assert_int_equal(st.sent, 0);
    assert_int_equal(f.calls, 1);
    assert_string_equal(f.file, INPUT_FILE);
    assert_int_equal(f.line, 42);
    assert_int_equal(f.ev.kind, ev.kind);
    assert_string_equal(f.ev.country, ev.country);
    assert_string_equal(f.ev.event_id, ev.event_id);
    assert_string_equal(f.ev.source_ref, ev.source_ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_recreated_producer_resends_the_same_bytes_and_reports_each_record_once),
        cmocka_unit_test(without_recreation_each_failed_record_is_reported_with_its_event_and_line),
        cmocka_unit_test(an_event_outside_the_model_is_refused_with_its_event_and_line),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
