/*
 * opstream-count against the embedded broker and a real redis-server: known
 * input gives every metric exactly (per operation, per country, per minute
 * and hour bucket, sets), the same events produced twice count once with
 * dedupe on and again once its window has passed, garbage or truncated
 * messages each go to the DLQ once while the counters stay exact, and a
 * key the step cannot write holds the stream (ERROR naming it, nothing
 * written, offsets kept) until an operator fixes it. The consumers run with
 * dedupe off (tc_spawn_count) unless a test is about dedupe.
 */
#include "test_count_common.h"

#include "opstream/counter.h"

#define SEED 20240930ULL

/* Events of two operations over the last three hours, plus late ones. */
static void produce_known_input(tc_model_t *a, tc_model_t *b, int n, uint64_t seed) {
    uint64_t rng = seed;
    int64_t now = tc_wall_ms();

    for (int i = 0; i < n; i++) {
        int64_t at = now - (int64_t)(tc_rand(&rng) % (3 * 3600 * 1000ULL));
        if (i % 50 == 0)
            at = now - 20LL * 3600 * 1000 - i; /* late: most of a day back */
        ops_event_t ev = tc_event(&rng, i % 3 ? "FLASH-WEKA" : "WEKA-II", i, at);
        tc_produce_event(&ev);
        tc_model_event(i % 3 ? a : b, &ev, now);
    }
    tc_flush();
}

/* Both operations' counts are exact; the models are freed. */
static void assert_exact_and_free(tc_model_t *a, tc_model_t *b) {
    assert_int_equal(tc_model_compare(a, true), 0);
    assert_int_equal(tc_model_compare(b, true), 0);
    tc_model_free(a);
    tc_model_free(b);
}

static void known_input_counts_every_metric_exactly(void **state) {
    tc_model_t a = {0}, b = {0};
    harness_proc_t *p;

    (void)state;
    produce_known_input(&a, &b, 3000, SEED);
    p = tc_spawn_count("opstream-count", NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(tc_model_compare(&a, true), 0);
    assert_int_equal(tc_model_compare(&b, true), 0);
    /* Spot checks against figures computed another way. */
    assert_true(tc_model_get(&a, "opstream:{FLASH-WEKA}:total", "events") == 2000);
    assert_true(tc_model_get(&b, "opstream:{WEKA-II}:total", "events") == 1000);
    tc_stop(p);

    /* A restart changes nothing: all offsets are stored. */
    p = tc_spawn_count("opstream-count", NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 20000), 0);
    tc_stop(p);
    assert_exact_and_free(&a, &b);
}

/* opstream-count with args counts everything produced and is stopped:
 * its stderr (the caller frees it). */
static char *count_all_then_stderr(const char *const *args) {
    harness_proc_t *p = tc_spawn_count("opstream-count", args);
    char *err;

    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(harness_proc_stop(p, 20000), 0);
    err = harness_proc_stderr(p);
    assert_non_null(err);
    harness_proc_free(p);
    return err;
}

/* The wake-ups opstream-count -v counted at exit ("prefetch: N wake-ups of
 * the partitions' leaders, M sent nothing"), and *unsent the M; -1 when
 * the line is missing. */
static long wake_ups(const char *err, long *unsent) {
    const char *l = err != NULL ? strstr(err, "prefetch: ") : NULL;
    long n = -1;

    *unsent = -1;
    for (; l != NULL && n < 0; l = strstr(l + 10, "prefetch: "))
        if (sscanf(l, "prefetch: %ld wake-ups of the partitions' leaders, %ld sent nothing", &n,
                   unsent) != 2)
            n = -1;
    return n;
}

/* A prefetch of 20 messages fills and drains many times over 3000 events:
 * each time the consumer sends its wake-up to the leaders of the assigned
 * partitions (-v counts them at exit: there are some, and librdkafka sent
 * every one), and the counts stay exact. */
static void a_prefetch_that_fills_and_drains_again_and_again_counts_exactly(void **state) {
    static const char *const small[] = {"--batch", "50", "-X", "queued.min.messages=20", "-v",
                                        NULL};
    tc_model_t a = {0}, b = {0};
    long wakes, unsent;
    char *err;

    (void)state;
    produce_known_input(&a, &b, 3000, SEED + 1);
    err = count_all_then_stderr(small);
    wakes = wake_ups(err, &unsent);
    print_message("prefetch: %ld wake-ups, %ld sent nothing\n", wakes, unsent);
    if (wakes <= 0 || unsent != 0)
        fail_msg("%ld wake-ups (%ld sent nothing) for 3000 events, a prefetch of 20:\n%s", wakes,
                 unsent, err);
    free(err);
    assert_exact_and_free(&a, &b);
}

/* The leader broker of each partition of topic (6 partitions). */
static void leaders_of(const char *topic, int32_t leader[6]) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(g_rk, topic, NULL);

    assert_non_null(t);
    assert_int_equal(rd_kafka_metadata(g_rk, 0, t, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    assert_int_equal(md->topics[0].partition_cnt, 6);
    for (int i = 0; i < 6; i++)
        leader[md->topics[0].partitions[i].id] = md->topics[0].partitions[i].leader;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
}

/* arg: the tc_model_t the counts in Redis are to match. */
static bool counts_match(void *arg) {
    return tc_model_compare(arg, false) == 0;
}

/* A leader broker that is down does not hold up the partitions whose
 * leaders are up: with a prefetch of 20 the consumer wakes the leaders of
 * all its partitions again and again, the down one among them, and the
 * 1,500 events sent meanwhile to partitions led by the other brokers are
 * all counted. (A wake-up that waited for the down leader's answer, as a
 * watermark query does in librdkafka 2.0.2 even with timeout 0, stopped
 * the consume loop for as long as the broker stayed down.) */
static void a_leader_broker_down_does_not_hold_up_the_partitions_led_by_the_others(void **state) {
    static const char *const small[] = {"--batch", "50", "-X", "queued.min.messages=20", "-v",
                                        NULL};
    tc_model_t a = {0}, b = {0}, m = {0};
    int32_t leader[OPS_KIND_COUNT][6];
    uint64_t rng = SEED + 7;
    char cmd[64], topic[64], err[256];
    const int coord = 1;
    int down = -1;

    (void)state;
    /* broker 1 coordinates the group; another broker that leads some
     * partition goes down */
    assert_int_equal(harness_broker_command(g_broker, "coordinator opstream-count 1", NULL, 0), 0);
    produce_known_input(&a, &b, 300, SEED + 6);
    harness_proc_t *p = tc_spawn_count("opstream-count", small);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    for (int k = 0; k < OPS_KIND_COUNT; k++) {
        ops_topic_name(NULL, (ops_kind_t)k, topic, sizeof topic);
        leaders_of(topic, leader[k]);
        for (int i = 0; i < 6; i++)
            if (down < 0 && leader[k][i] != coord)
                down = leader[k][i];
    }
    assert_true(down > 0);
    snprintf(cmd, sizeof cmd, "broker-down %d", down);
    assert_int_equal(harness_broker_command(g_broker, cmd, NULL, 0), 0);

    /* events of one more operation, each to a partition led by a broker up */
    int64_t now = tc_wall_ms();
    for (int i = 0; i < 1500; i++) {
        ops_event_t ev = tc_event(&rng, "LIBERTERRA-II", i, now - 60000 - i);
        unsigned char frame[OPS_CODEC_MAX_FRAME];
        size_t len;
        int32_t part = -1;
        for (int j = 0; j < 6 && part < 0; j++)
            if (leader[ev.kind][(i + j) % 6] != down)
                part = (i + j) % 6;
        if (part < 0)
            continue; /* every partition of the topic on the down broker */
        assert_int_equal(
            ops_codec_encode_event(g_codec, &ev, frame, sizeof frame, &len, err, sizeof err), 0);
        ops_topic_name(NULL, ev.kind, topic, sizeof topic);
        tc_produce_raw_to(topic, part, ev.country, frame, len);
        tc_model_event(&m, &ev, now);
    }
    tc_flush();
    int counted = harness_wait_until(counts_match, &m, 30000);
    snprintf(cmd, sizeof cmd, "broker-up %d", down);
    assert_int_equal(harness_broker_command(g_broker, cmd, NULL, 0), 0);
    if (counted != 0) {
        char *e = harness_proc_stderr(p);
        tc_model_compare(&m, true);
        fprintf(stderr, "broker %d down (coordinator %d); opstream-count stderr:\n%s\n", down,
                coord, e ? e : "");
        free(e);
    }
    assert_int_equal(counted, 0);
    tc_stop(p);
    assert_exact_and_free(&a, &b);
    tc_model_free(&m);
}

/* The batch count in opstream-count's last status line, or -1. */
static long last_batches(const char *err) {
    const char *at = NULL, *p = err;
    long n = -1;

    while ((p = strstr(p, " batches,")) != NULL)
        at = p++;
    if (at != NULL) {
        while (at > err && at[-1] >= '0' && at[-1] <= '9')
            at--;
        n = strtol(at, NULL, 10);
    }
    return n;
}

/* A catch-up on a backlog (12,000 events, --batch 50) lets a batch fill on
 * while the step before it runs, past 4 times --batch (200) up to 16 times
 * (800): it takes far fewer batches than the 60 that batches of at most 200
 * need (measured: 18-21 against 62), and the counts stay exact. */
static void a_catch_up_grows_its_batches_past_four_times_the_batch_size(void **state) {
    static const char *const small[] = {"--batch", "50", NULL};
    tc_model_t a = {0}, b = {0};
    char *err;
    long batches;

    (void)state;
    produce_known_input(&a, &b, 12000, SEED + 3);
    err = count_all_then_stderr(small);
    batches = last_batches(err);
    print_message("catch-up: %ld batches\n", batches);
    if (batches <= 0 || batches >= 40)
        fail_msg("%ld batches for 12000 events at --batch 50; stderr:\n%s", batches, err);
    free(err);
    assert_exact_and_free(&a, &b);
}

static const char *const dedupe_on[] = {"-X", "opstream.dedupe.window.s=604800", NULL};

/* Dedupe itself, with honest offsets: the second copy of each event has
 * its own offset, so only the dedupe marks keep it from counting. */
static void same_events_produced_twice_count_once(void **state) {
    tc_model_t a = {0}, b = {0};
    harness_proc_t *p;
    redisReply *r;

    (void)state;
    produce_known_input(&a, &b, 1000, SEED + 1);
    p = tc_spawn_count("opstream-count", dedupe_on);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(tc_model_compare(&a, false), 0);
    /* The same file again: every event_id is already counted. */
    tc_model_t a2 = {0}, b2 = {0};
    produce_known_input(&a2, &b2, 1000, SEED + 1);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&a, true), 0);
    assert_int_equal(tc_model_compare(&b, true), 0);
    /* The dedupe marks are there, with an expiry. */
    r = harness_redis_command(g_redis, "KEYS opstream:{FLASH-WEKA}:seen:*");
    assert_non_null(r);
    assert_true(r->elements >= 1);
    redisReply *ttl = harness_redis_command(g_redis, "TTL %s", r->element[0]->str);
    assert_true(ttl->integer > 0);
    freeReplyObject(ttl);
    freeReplyObject(r);
    tc_model_free(&a);
    tc_model_free(&b);
    tc_model_free(&a2);
    tc_model_free(&b2);
}

static bool no_dedupe_marks_left(void *arg) {
    redisReply *r = harness_redis_command(g_redis, "KEYS opstream:{%s}:seen:*", (const char *)arg);
    bool none = r != NULL && r->elements == 0;

    if (r != NULL)
        freeReplyObject(r);
    return none;
}

/* As documented: the window bounds dedupe. With a 2 s window, a record
 * re-sent once its marks have expired counts again (with event times well
 * inside the accepted range), so the totals double. */
static void record_re_sent_after_the_dedupe_window_counts_again(void **state) {
    const char *const window_2s[] = {"-X", "opstream.dedupe.window.s=2", NULL};
    tc_model_t a = {0}, b = {0}, a2 = {0}, b2 = {0};
    uint64_t rng = SEED + 5;
    int64_t now = tc_wall_ms();
    ops_event_t ev[200];

    (void)state;
    for (int i = 0; i < 200; i++) {
        ev[i] = tc_event(&rng, "WEKA-II", i, now - 60000 - i * 1000);
        tc_produce_event(&ev[i]);
        tc_model_event(&a, &ev[i], now);
        tc_model_event(&a2, &ev[i], now);
        tc_model_event(&a2, &ev[i], now); /* what two countings give */
    }
    tc_flush();
    harness_proc_t *p = tc_spawn_count("opstream-count", window_2s);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    assert_int_equal(tc_model_compare(&a, true), 0);
    /* Past the window, Redis has dropped the marks: the same records again. */
    assert_int_equal(harness_wait_until(no_dedupe_marks_left, "WEKA-II", 30000), 0);
    for (int i = 0; i < 200; i++)
        tc_produce_event(&ev[i]);
    tc_flush();
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&a2, true), 0);
    assert_int_equal(tc_model_get(&a2, "opstream:{WEKA-II}:total", "events"), 400);
    tc_model_free(&a);
    tc_model_free(&b);
    tc_model_free(&a2);
    tc_model_free(&b2);
}

static bool says_error_naming_the_total_key(void *arg) {
    char *err = harness_proc_stderr(arg);
    bool yes = err != NULL && strstr(err, "ERROR") != NULL &&
               strstr(err, "opstream:{FLASH-WEKA}:total holds a string, not a hash") != NULL;

    free(err);
    return yes;
}

/* Someone wrote a string where the operation's totals live: opstream-count
 * says ERROR naming the key and keeps retrying; nothing of that operation is
 * written (no dedupe marks, watermarks or other key of it) and the offsets
 * do not move, nothing is dropped; the other operation's step of the same
 * batch may have been applied (its watermarks keep the retries from
 * counting it again); once the operator deletes the key, every event counts
 * exactly. */
static void key_of_the_wrong_type_holds_the_stream_until_fixed_then_counts_exactly(void **state) {
    tc_model_t a = {0}, b = {0};
    redisReply *r;

    (void)state;
    r = harness_redis_command(g_redis, "SET opstream:{FLASH-WEKA}:total oops");
    assert_non_null(r);
    freeReplyObject(r);
    produce_known_input(&a, &b, 300, SEED + 6);
    harness_proc_t *p = tc_spawn_count("opstream-count", dedupe_on);
    assert_non_null(p);
    assert_int_equal(harness_wait_until(says_error_naming_the_total_key, p, 30000), 0);
    assert_true(harness_proc_running(p));
    r = harness_redis_command(g_redis, "KEYS opstream:*");
    assert_non_null(r);
    for (size_t i = 0; i < r->elements; i++) /* of FLASH-WEKA only the broken key; no offsets */
        if (strcmp(r->element[i]->str, "opstream:{FLASH-WEKA}:total") != 0 &&
            strncmp(r->element[i]->str, "opstream:members:", 17) != 0 &&
            strncmp(r->element[i]->str, "opstream:{WEKA-II}:", 19) != 0)
            fail_msg("key %s was written", r->element[i]->str);
    freeReplyObject(r);
    r = harness_redis_command(g_redis, "DEL opstream:{FLASH-WEKA}:total");
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(p);
    assert_exact_and_free(&a, &b);
}

typedef struct bad_msg {
    const char *what;
    unsigned char bytes[64];
    size_t len;
} bad_msg_t;

static void garbage_and_truncated_messages_go_to_dlq_once_and_counts_stay_exact(void **state) {
    tc_model_t a = {0}, b = {0};
    harness_proc_t *p;
    harness_msgs_t dlq = {0};
    uint64_t rng = SEED + 2;
    int64_t now = tc_wall_ms();
    unsigned char frame[OPS_CODEC_MAX_FRAME];
    char err[256], topic[64];
    size_t len;
    int nbad = 0;

    (void)state;
    for (int i = 0; i < 600; i++) {
        ops_event_t ev = tc_event(&rng, "LIBERTERRA-II", i, now - (int64_t)(i * 997 % 3600000));
        tc_produce_event(&ev);
        tc_model_event(&a, &ev, now);
        if (i % 20 != 7)
            continue;
        /* Next to a good one, a bad one of four kinds on the same topic. */
        assert_int_equal(
            ops_codec_encode_event(g_codec, &ev, frame, sizeof frame, &len, err, sizeof err), 0);
        ops_topic_name(NULL, ev.kind, topic, sizeof topic);
        switch (nbad % 4) {
        case 0: /* truncated in the body */
            tc_produce_raw(topic, ev.country, frame, len / 2);
            break;
        case 1: /* not Confluent framing */
            frame[0] = 0x7b;
            tc_produce_raw(topic, ev.country, frame, len);
            break;
        case 2: /* unknown schema id */
            frame[1] = 0x7f;
            tc_produce_raw(topic, ev.country, frame, len);
            break;
        case 3: { /* random bytes after a valid header */
            unsigned char junk[48];
            memcpy(junk, frame, 5);
            for (size_t k = 5; k < sizeof junk; k++)
                junk[k] = (unsigned char)tc_rand(&rng);
            tc_produce_raw(topic, ev.country, junk, sizeof junk);
            break;
        }
        }
        nbad++;
    }
    tc_produce_raw("opstream.arrests", NULL, "", 0); /* empty value */
    nbad++;
    tc_flush();

    p = tc_spawn_count("opstream-count", NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&a, true), 0);

    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.dlq", 500, 20000, &dlq), 0);
    assert_int_equal(dlq.n, (size_t)nbad);
    for (size_t i = 0; i < dlq.n; i++) {
        char h[256], off[32];
        assert_int_equal(harness_msg_header(&dlq.v[i], "opstream.error", h, sizeof h), 0);
        assert_true(strlen(h) > 0);
        assert_int_equal(harness_msg_header(&dlq.v[i], "opstream.source.topic", h, sizeof h), 0);
        assert_int_equal(strncmp(h, "opstream.", 9), 0);
        assert_int_equal(harness_msg_header(&dlq.v[i], "opstream.source.partition", h, sizeof h),
                         0);
        assert_int_equal(harness_msg_header(&dlq.v[i], "opstream.source.offset", off, sizeof off),
                         0);
    }
    /* A restart does not send them again. */
    p = tc_spawn_count("opstream-count", NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 20000), 0);
    tc_stop(p);
    harness_msgs_free(&dlq);
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.dlq", 500, 20000, &dlq), 0);
    assert_int_equal(dlq.n, (size_t)nbad);
    harness_msgs_free(&dlq);
    tc_model_free(&a);
    tc_model_free(&b);
}

static bool says_waiting_for_broker(void *arg) {
    return harness_proc_stderr_has(arg, "waiting for broker 127.0.0.1:1");
}

static void unreachable_broker_is_waited_for_and_reported(void **state) {
    const char *argv[] = {"opstream-count", "-b", "127.0.0.1:1", "--redis",
                          g_redis->url,     "-g", "lone",        NULL};
    harness_proc_t *p;

    (void)state;
    p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_wait_until(says_waiting_for_broker, p, 20000), 0);
    assert_true(harness_proc_running(p)); /* it waits, it does not give up */
    tc_stop(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(known_input_counts_every_metric_exactly, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(same_events_produced_twice_count_once, tc_setup,
                                        tc_teardown),
        cmocka_unit_test_setup_teardown(
            garbage_and_truncated_messages_go_to_dlq_once_and_counts_stay_exact, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(record_re_sent_after_the_dedupe_window_counts_again,
                                        tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(
            key_of_the_wrong_type_holds_the_stream_until_fixed_then_counts_exactly, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(
            a_prefetch_that_fills_and_drains_again_and_again_counts_exactly, tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(
            a_catch_up_grows_its_batches_past_four_times_the_batch_size, tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(
            a_leader_broker_down_does_not_hold_up_the_partitions_led_by_the_others, tc_setup,
            tc_teardown),
        cmocka_unit_test(unreachable_broker_is_waited_for_and_reported),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
