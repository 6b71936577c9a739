/*
 * The produce path (ops_produce) against the embedded broker when the
 * idempotent producer fails fatally: a recreated producer re-sends the
 * frames it kept, the same bytes (same event_id) as the first send, each
 * record reported delivered exactly once; with recreation off, every record
 * is reported exactly once, each failed one with its own event (event_id,
 * source_ref) and the file and line it came from, and an event the model
 * cannot hold with its kind and country. Frames kept inside their slot
 * (up to OPS_PRODUCE_INLINE_FRAME_MAX bytes) and on the heap (larger) are
 * mixed, and both are shown re-sent. A producer destroyed with heap-kept
 * frames in flight reports each record failed once and frees them
 * (checked under ASan and LSan by the sanitizer build).
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
#define CLOSED_REASON "not confirmed when the producer was closed"

/* What the callbacks saw, by record number (the line is the number). */
typedef struct seen {
    int delivered[N_RECORDS];
    int failed[N_RECORDS];
    int wrong; /* a callback's event or position did not match its record */
    char first_wrong[512];
    size_t n_notices;
    char notices[2048];
    const ops_event_t *sent;          /* the records, to compare with */
    bool recreated;                   /* the notice of a recreated producer came */
    bool sent_before[N_RECORDS];      /* handed over before that notice */
    bool delivered_after[N_RECORDS];  /* reported delivered after it */
    char last_reason[N_RECORDS][128]; /* of its last failure */
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
    s->delivered_after[no] = s->recreated;
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
    snprintf(s->last_reason[line], sizeof(s->last_reason[line]), "%s", reason ? reason : "");
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
    if (strstr(msg, "recreated it") != NULL)
        s->recreated = true;
}

/* Record no of operation op: every kind in turn; every fifth one with a
 * long location and many nationalities (a frame far over the inline size),
 * every fifth from the second on with a medium location (just over it);
 * both kept on the heap. */
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

/* A producer on the embedded broker with options po. */
static ops_produce_t *start_producer(const ops_produce_options_t *po) {
    char err[512];
    ops_config_t *cfg = ops_config_new();
    assert_non_null(cfg);
    assert_int_equal(ops_config_set(cfg, "bootstrap.servers", g_broker->bootstrap, err, sizeof err),
                     0);
    ops_produce_t *p = ops_produce_new(cfg, po, err, sizeof err);
    ops_config_destroy(cfg);
    if (p == NULL)
        fail_msg("ops_produce_new: %s", err);
    return p;
}

/* start_producer with the callbacks above, reporting into s. */
static ops_produce_t *start_seen_producer(seen_t *s, int max_recreate) {
    ops_produce_options_t po = {.max_recreate = max_recreate,
                                .on_delivered = on_delivered,
                                .on_failed = on_failed,
                                .on_notice = on_notice,
                                .opaque = s};
    return start_producer(&po);
}

/* Whether a frame of len bytes is kept on the heap rather than in its slot. */
static bool heap_kept(size_t len) {
    return len > OPS_PRODUCE_INLINE_FRAME_MAX;
}

/* The number of records the recreated producer re-sent, from its notice
 * ("... re-sending N unconfirmed records"), or -1. */
static long resent_count(const seen_t *s) {
    const char *at = strstr(s->notices, "re-sending ");
    return at != NULL ? strtol(at + strlen("re-sending "), NULL, 10) : -1;
}

static void a_recreated_producer_resends_the_same_bytes_and_reports_each_record_once(void **state) {
    static const char op[] = "RESEND-BYTES";
    char err[512], line[OPS_RECORD_JSON_MAX];
    ops_event_t *evs = calloc(N_RECORDS, sizeof(*evs));
    unsigned char(*frames)[FRAME_CAP] = calloc(N_RECORDS, sizeof(*frames));
    size_t *lens = calloc(N_RECORDS, sizeof(*lens));
    int *copies = calloc(N_RECORDS, sizeof(*copies));
    seen_t *s = calloc(1, sizeof(*s));
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof err);
    ops_produce_stats_t st;
    size_t n_heap = 0, n_inline = 0, resent_heap = 0, resent_inline = 0;
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
        n_heap += heap_kept(lens[no]);
        n_inline += !heap_kept(lens[no]);
    }
    assert_true(n_heap > 0 && n_inline > 0); /* both ways of keeping a frame */
    s->sent = evs;

    /* a sequence error breaks the idempotent producer for good */
    assert_int_equal(harness_broker_command(
                         g_broker, "push-errors Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER", NULL, 0),
                     0);
    ops_produce_t *p = start_seen_producer(s, 0);
    for (int no = 0; no < N_RECORDS; no++) {
        s->sent_before[no] = !s->recreated;
        if (ops_produce_send(p, &evs[no], INPUT_FILE, no, err, sizeof err) != 0)
            fail_msg("record %d not sent: %s", no, err);
    }
    assert_int_equal(ops_produce_flush(p, 60000), 0);
    ops_produce_stats(p, &st);
    ops_produce_destroy(p);

    if (s->wrong)
        fail_msg("%d callback(s) wrong, first: %s", s->wrong, s->first_wrong);
    assert_true(st.recreated >= 1);
    assert_non_null(strstr(s->notices, "recreated it"));
    assert_int_equal(st.delivered, N_RECORDS);
    assert_int_equal(st.failed, 0);
    for (int no = 0; no < N_RECORDS; no++) {
        if (s->delivered[no] != 1)
            fail_msg("record %d reported delivered %d times", no, s->delivered[no]);
        assert_int_equal(s->failed[no], 0);
    }
    /* The re-sent records: handed to the first producer, reported by the
     * recreated one (the first one's reports all came before the notice).
     * As many as the notice says, frames kept inline and on the heap. */
    for (int no = 0; no < N_RECORDS; no++) {
        if (!s->sent_before[no] || !s->delivered_after[no])
            continue;
        resent_heap += heap_kept(lens[no]);
        resent_inline += !heap_kept(lens[no]);
    }
    print_message("re-sent: %zu frames kept on the heap, %zu inline\n", resent_heap, resent_inline);
    assert_int_equal(resent_count(s), (long)(resent_heap + resent_inline));
    if (resent_heap == 0 || resent_inline == 0)
        fail_msg("re-sent: %zu frames kept on the heap, %zu inline; both kinds expected",
                 resent_heap, resent_inline);

    /* on the topics: every record, each copy (a re-sent record that had
     * reached the topic before the failure is there twice) decoded back
     * into the very event sent, whose encoding is the frame that was
     * sent; events_of_operation checks the key (the country) */
    strlist_t got = {0};
    ops_event_t *on_topic = NULL;
    size_t n_on_topic = 0;
    assert_int_equal(events_of_operation(g_broker->bootstrap, op, &got, &on_topic, &n_on_topic), 0);
    for (size_t i = 0; i < n_on_topic; i++) {
        unsigned char again[FRAME_CAP];
        size_t len = 0;
        int no = record_of(&on_topic[i]);
        assert_true(no >= 0);
        assert_int_equal(ops_codec_encode_event(codec, &on_topic[i], again, sizeof(again), &len,
                                                err, sizeof err),
                         0);
        if (len != lens[no] || memcmp(again, frames[no], len) != 0)
            fail_msg("record %d (%s) arrived as other bytes (%zu, sent %zu)", no,
                     on_topic[i].event_id, len, lens[no]);
        copies[no]++;
    }
    for (int no = 0; no < N_RECORDS; no++) {
        if (copies[no] == 0)
            fail_msg("record %d is not on its topic", no);
        ops_record_format_json(&evs[no], line, sizeof(line));
        if (bsearch(&(const char *){line}, got.v, got.n, sizeof(*got.v), cmp_str) == NULL)
            fail_msg("record %d is not on its topic as sent: %s", no, line);
    }
    strlist_free(&got);
    free(on_topic);

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
    ops_produce_t *p = start_seen_producer(s, -1);
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
    ops_produce_options_t po = {.max_recreate = -1, .on_failed = on_failed_one, .opaque = &f};
    ops_produce_stats_t st;
    (void)state;
    make_event("RESEND-OUTSIDE", 7, &ev);
    ev.count = OPS_COUNT_MAX + 1;
    ops_produce_t *p = start_producer(&po);
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

/* A producer destroyed while records whose frames it keeps on the heap are
 * in flight (the brokers answer only after a minute): each is reported
 * failed once, with its own event decoded from its heap frame and the
 * closing reason, and every frame is freed after librdkafka is gone. The
 * sanitizer build runs this with ASan and LSan: a frame read after it was
 * freed, or never freed, fails it. */
static void a_producer_destroyed_with_heap_frames_in_flight_reports_and_frees_each(void **state) {
    static const char op[] = "RESEND-ABANDON";
    enum { N = 50 };
    char err[512];
    ops_event_t *evs = calloc(N_RECORDS, sizeof(*evs));
    seen_t *s = calloc(1, sizeof(*s));
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof err);
    ops_produce_stats_t st;
    (void)state;
    assert_non_null(evs);
    assert_non_null(s);
    assert_non_null(codec);
    s->sent = evs;
    ops_produce_t *p = start_seen_producer(s, -1);
    /* one record through first: the brokers and the topics are known */
    make_event(op, 0, &evs[0]);
    assert_int_equal(ops_produce_send(p, &evs[0], INPUT_FILE, 0, err, sizeof err), 0);
    assert_int_equal(ops_produce_flush(p, 30000), 0);
    assert_int_equal(s->delivered[0], 1);

    assert_int_equal(harness_broker_rtt(g_broker, 60000), 0);
    for (int i = 1; i <= N; i++) {
        int no = 5 * i; /* a long location: far over the inline size */
        unsigned char frame[FRAME_CAP];
        size_t len = 0;
        make_event(op, no, &evs[no]);
        assert_int_equal(
            ops_codec_encode_event(codec, &evs[no], frame, sizeof(frame), &len, err, sizeof err),
            0);
        assert_true(heap_kept(len));
        assert_int_equal(ops_produce_send(p, &evs[no], INPUT_FILE, no, err, sizeof err), 0);
    }
    ops_produce_poll(p, 200); /* the requests are on their way */
    ops_produce_stats(p, &st);
    assert_int_equal(st.in_flight, N);
    ops_produce_destroy(p);
    assert_int_equal(harness_broker_rtt(g_broker, 0), 0);

    if (s->wrong)
        fail_msg("%d callback(s) wrong, first: %s", s->wrong, s->first_wrong);
    for (int i = 1; i <= N; i++) {
        int no = 5 * i;
        if (s->failed[no] != 1 || s->delivered[no] != 0)
            fail_msg("record %d reported %d times failed, %d times delivered", no, s->failed[no],
                     s->delivered[no]);
        assert_string_equal(s->last_reason[no], CLOSED_REASON);
    }
    ops_codec_destroy(codec);
    free(s);
    free(evs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_recreated_producer_resends_the_same_bytes_and_reports_each_record_once),
        cmocka_unit_test(without_recreation_each_failed_record_is_reported_with_its_event_and_line),
        cmocka_unit_test(an_event_outside_the_model_is_refused_with_its_event_and_line),
        cmocka_unit_test(a_producer_destroyed_with_heap_frames_in_flight_reports_and_frees_each),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
