/*
 * Integration test of the embedded broker and the path every event takes:
 * opstream-broker starts, announces itself and stops cleanly; events of every
 * kind go through ops_kafka_producer_new + the codec to their topics keyed by
 * country and come back field for field. Also proves the harness's
 * redis-server answers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "opstream/codec.h"
#include "opstream/config.h"
#include "opstream/event.h"
#include "opstream/kafka.h"

static harness_broker_t *g_broker;
static harness_redis_t *g_redis;
static char g_bootstrap_file[HARNESS_PATH_MAX];

static int group_setup(void **state) {
    const char *args[] = {"--bootstrap-file", g_bootstrap_file, NULL};

    if (harness_group_setup(state) != 0 ||
        harness_path(g_bootstrap_file, sizeof(g_bootstrap_file), "bootstrap.txt") != 0)
        return -1;
    g_broker = harness_broker_start(args);
    g_redis = harness_redis_start(false);
    return g_broker != NULL && g_redis != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    int rc = 0;

    /* The broker that served every test also stops cleanly (and, built
     * with SAN=1, without leaks: LeakSanitizer would make the exit code 1). */
    if (g_broker != NULL && harness_broker_stop(g_broker) != 0) {
        fprintf(stderr, "opstream-broker did not exit 0 on SIGTERM\n");
        rc = -1;
    }
    harness_broker_free(g_broker);
    harness_redis_free(g_redis);
    g_broker = NULL;
    g_redis = NULL;
    harness_group_teardown(state);
    return rc;
}

/* ---- the events: one or more of every kind, modelled on Flash-Weka ----- */

static void fill_common(ops_event_t *ev, ops_kind_t kind, const char *id, const char *cc,
                        const char *ref, const char *location) {
    ops_event_init(ev);
    ev->kind = kind;
    snprintf(ev->event_id, sizeof(ev->event_id), "%s", id);
    snprintf(ev->operation, sizeof(ev->operation), "FLASH-WEKA");
    snprintf(ev->country, sizeof(ev->country), "%s", cc);
    ev->occurred_at = 1727705100000LL; /* 2024-09-30T14:05:00Z */
    ev->reported_at = 1727708700123LL;
    snprintf(ev->source_ref, sizeof(ev->source_ref), "%s", ref);
    ev->has_location = location != NULL;
    if (location != NULL)
        snprintf(ev->location, sizeof(ev->location), "%s", location);
}

static void add_nationality(ops_event_t *ev, const char *cc) {
    memcpy(ev->nationalities[ev->n_nationalities++], cc, 3);
}

#define N_EVENTS 6

static void build_events(ops_event_t evs[N_EVENTS]) {
    ops_event_t *e;

    e = &evs[0];
    fill_common(e, OPS_KIND_ARREST, "6f1c2a9e-3b7d-5e41-9a0c-1d2e3f4a5b6c", "CM",
                "CM-DGSN-2024-0931", "Yaounde");
    e->count = 3;
    e->offence = OPS_OFFENCE_HUMAN_TRAFFICKING;
    add_nationality(e, "CM");
    add_nationality(e, "NG");

    e = &evs[1];
    fill_common(e, OPS_KIND_ARREST, "0a7b8c9d-1e2f-5a3b-8c4d-5e6f7a8b9c0d", "NG", "NAPTIP/LAG/5512",
                NULL);
    e->count = 1;
    e->offence = OPS_OFFENCE_MIGRANT_SMUGGLING;

    e = &evs[2];
    fill_common(e, OPS_KIND_RESCUE, "b3c4d5e6-f7a8-5b9c-8d0e-1f2a3b4c5d6e", "PH", "PNP-ACG-77120",
                "Pasay City, Metro Manila");
    e->count = 250;
    e->minors = 12;
    e->referred = 40;
    e->exploitation = OPS_EXPLOITATION_FORCED_CRIMINALITY;
    e->site = OPS_SITE_SCAM_CENTRE;
    add_nationality(e, "ID");
    add_nationality(e, "VN");
    add_nationality(e, "CN");

    e = &evs[3];
    fill_common(e, OPS_KIND_MIGRANT, "c4d5e6f7-a8b9-5c0d-9e1f-2a3b4c5d6e7f", "LY", "LCG-2024-118",
                "Off Zuwara");
    e->count = 57;
    e->minors = 9;
    add_nationality(e, "SD");
    add_nationality(e, "ER");

    e = &evs[4];
    fill_common(e, OPS_KIND_SEIZURE, "d5e6f7a8-b9c0-5d1e-8f2a-3b4c5d6e7f80", "BR", "PF-SP-4471",
                NULL);
    e->count = 12;
    e->category = OPS_CATEGORY_DOCUMENTS;

    e = &evs[5];
    fill_common(e, OPS_KIND_RESCUE, "e6f7a8b9-c0d1-5e2f-9a3b-4c5d6e7f8091", "ES", "PN-UCRIF-0042",
                "Hotel, Madrid");
    e->count = 30;
    e->minors = 0;
    e->exploitation = OPS_EXPLOITATION_SEXUAL;
    e->site = OPS_SITE_HOTEL;
    add_nationality(e, "CO");
}

/* Field-for-field equality of the parts of an event its kind carries. */
static void assert_event_equal(const ops_event_t *want, const ops_event_t *got) {
    uint32_t i;

    assert_int_equal(got->kind, want->kind);
    assert_string_equal(got->event_id, want->event_id);
    assert_string_equal(got->operation, want->operation);
    assert_string_equal(got->country, want->country);
    assert_true(got->occurred_at == want->occurred_at);
    assert_true(got->reported_at == want->reported_at);
    assert_string_equal(got->source_ref, want->source_ref);
    assert_int_equal(got->has_location, want->has_location);
    if (want->has_location)
        assert_string_equal(got->location, want->location);
    assert_int_equal(got->count, want->count);
    switch (want->kind) {
    case OPS_KIND_ARREST:
        assert_int_equal(got->offence, want->offence);
        break;
    case OPS_KIND_RESCUE:
        assert_int_equal(got->minors, want->minors);
        assert_int_equal(got->referred, want->referred);
        assert_int_equal(got->exploitation, want->exploitation);
        assert_int_equal(got->site, want->site);
        break;
    case OPS_KIND_MIGRANT:
        assert_int_equal(got->minors, want->minors);
        break;
    case OPS_KIND_SEIZURE:
        assert_int_equal(got->category, want->category);
        break;
    default:
        fail_msg("unexpected kind %d", (int)want->kind);
    }
    if (want->kind != OPS_KIND_SEIZURE) {
        assert_int_equal(got->n_nationalities, want->n_nationalities);
        for (i = 0; i < want->n_nationalities; i++)
            assert_string_equal(got->nationalities[i], want->nationalities[i]);
    }
}

/* Delivery accounting, as a producer does it: only a report counts. */
typedef struct delivery {
    int delivered;
    int failed;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    delivery_t *d = opaque;

    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        d->delivered++;
    else
        d->failed++;
}

/* Encodes and produces every event to its kind's topic, keyed by country,
 * and waits for all delivery reports. */
static void produce_events(ops_codec_t *codec, const ops_event_t *evs, int n) {
    char errstr[512];
    ops_config_t *cfg = ops_config_new();
    delivery_t d = {0, 0};
    rd_kafka_t *rk;
    int64_t deadline;
    int i;

    assert_non_null(cfg);
    assert_int_equal(
        ops_config_set(cfg, "bootstrap.servers", g_broker->bootstrap, errstr, sizeof(errstr)), 0);
    rk = ops_kafka_producer_new(cfg, on_delivery, &d, errstr, sizeof(errstr));
    if (rk == NULL)
        fail_msg("ops_kafka_producer_new: %s", errstr);
    for (i = 0; i < n; i++) {
        unsigned char frame[OPS_CODEC_MAX_FRAME];
        char topic[64];
        size_t len = 0;
        rd_kafka_resp_err_t err;

        if (ops_codec_encode_event(codec, &evs[i], frame, sizeof(frame), &len, errstr,
                                   sizeof(errstr)) != 0)
            fail_msg("encode event %d: %s", i, errstr);
        assert_int_equal(ops_topic_name("opstream.", evs[i].kind, topic, sizeof(topic)), 0);
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(evs[i].country, strlen(evs[i].country)),
            RD_KAFKA_V_VALUE(frame, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    deadline = harness_now_ms() + 20000;
    while (d.delivered + d.failed < n && harness_now_ms() < deadline)
        rd_kafka_poll(rk, 50);
    rd_kafka_flush(rk, 1000);
    rd_kafka_destroy(rk);
    ops_config_destroy(cfg);
    assert_int_equal(d.failed, 0);
    assert_int_equal(d.delivered, n);
}

static void test_events_of_every_kind_come_back_field_for_field_keyed_by_country(void **state) {
    char errstr[512];
    ops_event_t evs[N_EVENTS];
    ops_codec_t *codec;
    int found[N_EVENTS] = {0};
    int kind;

    (void)state;
    build_events(evs);
    codec = ops_codec_new(NULL, errstr, sizeof(errstr));
    if (codec == NULL)
        fail_msg("ops_codec_new: %s", errstr);
    produce_events(codec, evs, N_EVENTS);

    for (kind = 0; kind < OPS_KIND_COUNT; kind++) {
        harness_msgs_t msgs;
        char topic[64];
        int expected = 0;
        size_t m;
        int i;

        for (i = 0; i < N_EVENTS; i++)
            expected += evs[i].kind == (ops_kind_t)kind;
        assert_int_equal(ops_topic_name("opstream.", (ops_kind_t)kind, topic, sizeof(topic)), 0);
        assert_int_equal(harness_consume_all(g_broker->bootstrap, topic, 300, 20000, &msgs), 0);
        assert_int_equal(msgs.n, expected);
        for (m = 0; m < msgs.n; m++) {
            ops_event_t got;
            ops_codec_err_t err;

            err = ops_codec_decode_event(codec, msgs.v[m].value, msgs.v[m].value_len, &got, errstr,
                                         sizeof(errstr));
            if (err != OPS_CODEC_OK)
                fail_msg("decode %s offset %lld: %s", topic, (long long)msgs.v[m].offset, errstr);
            for (i = 0; i < N_EVENTS; i++) {
                if (strcmp(evs[i].event_id, got.event_id) == 0)
                    break;
            }
            if (i == N_EVENTS)
                fail_msg("unexpected event %s on %s", got.event_id, topic);
            assert_int_equal(evs[i].kind, kind);
            assert_event_equal(&evs[i], &got);
            assert_non_null(msgs.v[m].key);
            assert_int_equal(msgs.v[m].key_len, 2);
            assert_memory_equal(msgs.v[m].key, evs[i].country, 2);
            found[i]++;
        }
        harness_msgs_free(&msgs);
    }
    for (kind = 0; kind < N_EVENTS; kind++)
        assert_int_equal(found[kind], 1);
    ops_codec_destroy(codec);
}

/* ---- the broker process itself ---------------------------------------- */

static int count_char(const char *s, char c) {
    int n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_broker_prints_bootstrap_line_and_writes_bootstrap_file(void **state) {
    char *file;
    char expected[sizeof(g_broker->bootstrap) + 2];

    (void)state;
    /* Three brokers (the default) on loopback. */
    assert_int_equal(count_char(g_broker->bootstrap, ','), 2);
    assert_int_equal(strncmp(g_broker->bootstrap, "127.0.0.1:", 10), 0);
    file = harness_read_file(g_bootstrap_file, NULL);
    assert_non_null(file);
    snprintf(expected, sizeof(expected), "%s\n", g_broker->bootstrap);
    assert_string_equal(file, expected);
    free(file);
}

static void test_broker_creates_every_opstream_topic_empty(void **state) {
    static const char *const topics[] = {"opstream.arrests",  "opstream.rescues",
                                         "opstream.migrants", "opstream.seizures",
                                         "opstream.alerts",   "opstream.dlq"};
    size_t i;

    (void)state;
    /* alerts and dlq are not written by this test: they exist and are empty. */
    for (i = 4; i < sizeof(topics) / sizeof(topics[0]); i++)
        assert_int_equal(harness_topic_count(g_broker->bootstrap, topics[i], 10000), 0);
    for (i = 0; i < 4; i++)
        assert_true(harness_topic_count(g_broker->bootstrap, topics[i], 10000) >= 0);
}

static void test_broker_control_channel_answers_ok_or_error(void **state) {
    char answer[256];

    (void)state;
    assert_int_equal(harness_broker_command(g_broker, "ping", answer, sizeof(answer)), 0);
    assert_string_equal(answer, "ok");
    assert_int_equal(
        harness_broker_command(g_broker, "leader opstream.dlq 0 2", answer, sizeof(answer)), 0);
    assert_int_equal(harness_broker_command(g_broker, "broker-down x", answer, sizeof(answer)), -1);
    assert_string_equal(answer, "error: bad broker id 'x'");
    assert_int_equal(harness_broker_command(g_broker, "no-such-command", answer, sizeof(answer)),
                     -1);
    assert_int_equal(strncmp(answer, "error: ", 7), 0);
    assert_int_equal(harness_broker_command(g_broker, "push-errors Produce 1 NO_SUCH_ERROR", answer,
                                            sizeof(answer)),
                     -1);
    assert_string_equal(answer, "error: unknown error 'NO_SUCH_ERROR'");
}

static void test_produce_survives_an_injected_retriable_error(void **state) {
    harness_msgs_t msgs;

    (void)state;
    /* A topic of its own, made over the control channel. The next Produce
     * request fails once with a retriable error; the client retries and the
     * message is there exactly once, headers included. */
    assert_int_equal(harness_broker_command(g_broker, "create-topic test.faults 1 3", NULL, 0), 0);
    assert_int_equal(
        harness_broker_command(g_broker, "push-errors Produce 1 NOT_LEADER_FOR_PARTITION", NULL, 0),
        0);
    assert_int_equal(harness_produce(g_broker->bootstrap, "test.faults", 0, "XX", 2, "payload", 7,
                                     (const char *const[]){"opstream.error", "magic", NULL}),
                     0);
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "test.faults", 200, 20000, &msgs), 0);
    assert_int_equal(msgs.n, 1);
    assert_memory_equal(msgs.v[0].value, "payload", 7);
    {
        char hdr[32];

        assert_int_equal(harness_msg_header(&msgs.v[0], "opstream.error", hdr, sizeof(hdr)), 0);
        assert_string_equal(hdr, "magic");
    }
    harness_msgs_free(&msgs);
}

static void test_redis_server_of_the_harness_answers_ping(void **state) {
    redisReply *reply;

    (void)state;
    reply = harness_redis_command(g_redis, "PING");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    assert_string_equal(reply->str, "PONG");
    freeReplyObject(reply);
}

static void test_broker_says_it_is_in_memory_and_exits_0_on_sigterm(void **state) {
    const char *args[] = {"--brokers", "1", "--partitions", "2", NULL};
    harness_broker_t *b;
    char *err;

    (void)state;
    b = harness_broker_start(args);
    assert_non_null(b);
    assert_int_equal(count_char(b->bootstrap, ','), 0);
    assert_int_equal(harness_broker_stop(b), 0);
    err = harness_proc_stderr(b->proc);
    assert_non_null(strstr(err, "memory only"));
    assert_non_null(strstr(err, "5 MiB"));
    free(err);
    harness_broker_free(b);
}

/* Runs opstream-broker with one option to its end; asserts the exit code
 * and returns what it printed on stdout (to_stderr: on stderr). */
static char *run_broker_option(const char *opt, const char *arg, int want_code, bool to_stderr) {
    const char *argv[] = {"opstream-broker", opt, arg, NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    char *out;

    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 10000), 0);
    assert_int_equal(harness_proc_exit_code(p), want_code);
    out = to_stderr ? harness_proc_stderr(p) : harness_proc_stdout(p);
    harness_proc_free(p);
    return out;
}

static void test_broker_rejects_bad_options_with_exit_2(void **state) {
    char *err;

    (void)state;
    err = run_broker_option("--brokers", "0", 2, true);
    assert_non_null(strstr(err, "--brokers"));
    free(err);
}

/* --help documents options, the control channel and exit codes; both
 * --help and --version exit 0 without starting a cluster. */
static void test_broker_help_and_version_exit_0(void **state) {
    char *out;

    (void)state;
    out = run_broker_option("--help", NULL, 0, false);
    assert_non_null(strstr(out, "--bootstrap-file"));
    assert_non_null(strstr(out, "push-errors"));
    assert_non_null(strstr(out, "Exit codes"));
    free(out);
    out = run_broker_option("--version", NULL, 0, false);
    assert_int_equal(strncmp(out, "opstream-broker ", 16), 0);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_prints_bootstrap_line_and_writes_bootstrap_file),
        cmocka_unit_test(test_broker_creates_every_opstream_topic_empty),
        cmocka_unit_test(test_events_of_every_kind_come_back_field_for_field_keyed_by_country),
        cmocka_unit_test(test_broker_control_channel_answers_ok_or_error),
        cmocka_unit_test(test_produce_survives_an_injected_retriable_error),
        cmocka_unit_test(test_redis_server_of_the_harness_answers_ping),
        cmocka_unit_test(test_broker_says_it_is_in_memory_and_exits_0_on_sigterm),
        cmocka_unit_test(test_broker_rejects_bad_options_with_exit_2),
        cmocka_unit_test(test_broker_help_and_version_exit_0),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
