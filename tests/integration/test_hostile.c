/*
 * Hostile bytes on the event topics, against the real opstream-count: cut
 * frames, random bytes, a 2^31 string length, negative lengths, an array
 * block of 2^62 items, bad union indexes, unknown schema ids, wrong magic
 * bytes and a 4 MiB message (the largest the embedded broker keeps). Each goes to the DLQ unchanged
 * (or cut and marked), the valid events around them count exactly, and over many such messages the
 * consumer's memory stays bounded. OPSTREAM_LONG=1 sends 100,000 hostile messages instead of
 * 10,000.
 */
#include "test_count_common.h"

#include <inttypes.h>

#define GROUP "opstream-count"
#define OP "FLASH-WEKA"

/* ---- hostile frames ------------------------------------------------------ */

typedef enum hostile_kind {
    H_CUT = 0,     /* a valid frame cut short (also below the 5-byte header) */
    H_RANDOM,      /* random bytes */
    H_STRING_2E31, /* event_id claims 2^31 bytes */
    H_NEGATIVE,    /* a negative string length mid-record */
    H_ARRAY_2E62,  /* an array block of 2^62 items with no bytes behind them */
    H_BAD_UNION,   /* location's union index outside its two branches */
    H_UNKNOWN_ID,  /* a schema id no registry entry has */
    H_MAGIC,       /* first byte not 0x00 */
    H_KINDS
} hostile_kind_t;

/* The DLQ reason class (opstream.error prefix) each kind must get; NULL:
 * any class (random bytes). A cut frame is "truncated". */
static const char *const h_class[H_KINDS] = {"truncated",         NULL,        "too-large",
                                             "malformed",         "too-large", "malformed",
                                             "unknown-schema-id", "magic"};

typedef struct hbuf {
    unsigned char p[OPS_CODEC_MAX_FRAME];
    size_t n;
} hbuf_t;

static void put_bytes(hbuf_t *b, const void *p, size_t n) {
    assert_true(b->n + n <= sizeof b->p);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* Avro long: zigzag, then a base-128 varint. */
static void put_long(hbuf_t *b, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

    do {
        unsigned char c = z & 0x7f;
        z >>= 7;
        if (z)
            c |= 0x80;
        put_bytes(b, &c, 1);
    } while (z);
}

static void put_str(hbuf_t *b, const char *s) {
    put_long(b, (int64_t)strlen(s));
    put_bytes(b, s, strlen(s));
}

static void put_header(hbuf_t *b, unsigned char magic, int32_t id) {
    unsigned char h[5] = {magic, (unsigned char)((uint32_t)id >> 24),
                          (unsigned char)((uint32_t)id >> 16), (unsigned char)((uint32_t)id >> 8),
                          (unsigned char)id};
    put_bytes(b, h, 5);
}

/* The fields every kind starts with, valid, for an arrest. */
static void put_common(hbuf_t *b, int i) {
    char ref[32], id[OPS_EVENT_ID_LEN + 1];

    snprintf(ref, sizeof ref, "NGP-%d", i);
    ops_event_id_derive(OP, "NG", OPS_KIND_ARREST, ref, id);
    put_str(b, id);
    put_str(b, OP);
    put_str(b, "NG");
    put_long(b, 1684820700000LL);
    put_long(b, 1685210400000LL);
    put_str(b, ref);
}

/* Hostile message number i: its kind is i % H_KINDS, its bytes depend on i
 * only, so the test can rebuild it to compare with the DLQ copy. */
static hostile_kind_t hostile_frame(int i, hbuf_t *b) {
    uint64_t rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(i + 1) * 0x100000001b3ULL;
    hostile_kind_t k = (hostile_kind_t)(i % H_KINDS);
    char err[256];
    ops_event_t ev;

    b->n = 0;
    switch (k) {
    case H_CUT:
    case H_UNKNOWN_ID:
    case H_MAGIC:
        ev = tc_event(&rng, OP, i, 1684820700000LL);
        assert_int_equal(
            ops_codec_encode_event(g_codec, &ev, b->p, sizeof b->p, &b->n, err, sizeof err), 0);
        if (k == H_CUT) {
            b->n = 1 + tc_rand(&rng) % (b->n - 1); /* 1..len-1 bytes */
        } else if (k == H_UNKNOWN_ID) {
            uint32_t id = 1000 + (uint32_t)(tc_rand(&rng) % 1000000);
            b->p[1] = (unsigned char)(id >> 24);
            b->p[2] = (unsigned char)(id >> 16);
            b->p[3] = (unsigned char)(id >> 8);
            b->p[4] = (unsigned char)id;
        } else {
            b->p[0] = (unsigned char)(1 + tc_rand(&rng) % 255);
        }
        break;
    case H_RANDOM:
        b->n = 1 + tc_rand(&rng) % 300;
        for (size_t j = 0; j < b->n; j++)
            b->p[j] = (unsigned char)tc_rand(&rng);
        break;
    case H_STRING_2E31:
        put_header(b, 0, 1);
        put_long(b, INT64_C(1) << 31);
        put_str(b, "abc");
        break;
    case H_NEGATIVE:
        put_header(b, 0, 1);
        put_common(b, i);
        b->n -= 1 + strlen("NGP-") + (size_t)snprintf(err, sizeof err, "%d", i);
        put_long(b, -(int64_t)(1 + tc_rand(&rng) % 100000)); /* source_ref */
        put_str(b, "x");
        break;
    case H_ARRAY_2E62:
        put_header(b, 0, 1);
        put_common(b, i);
        put_long(b, 0);                /* location: null */
        put_long(b, 3);                /* persons */
        put_long(b, 0);                /* offence */
        put_long(b, INT64_C(1) << 62); /* suspect_nationalities: 2^62 items */
        break;
    case H_BAD_UNION:
        put_header(b, 0, 1);
        put_common(b, i);
        put_long(b, 2 + (int64_t)(tc_rand(&rng) % 1000)); /* location: branch >= 2 */
        put_str(b, "Lagos");
        put_long(b, 3);
        put_long(b, 0);
        put_long(b, 0);
        break;
    default:
        fail();
    }
    return k;
}

static const char *topic_of(int i) {
    static const char *const t[] = {"opstream.arrests", "opstream.rescues", "opstream.migrants",
                                    "opstream.seizures"};
    return t[(i / H_KINDS) % 4];
}

/* Produces hostile messages [from, to), keyed "h<i>", and after every tenth
 * one a valid event (modelled in m when m is not NULL). */
static int produce_hostile(int from, int to, tc_model_t *m, uint64_t *rng, int valid_base) {
    hbuf_t *b = malloc(sizeof *b);
    char key[32];
    int valid = 0;

    assert_non_null(b);
    for (int i = from; i < to; i++) {
        hostile_frame(i, b);
        snprintf(key, sizeof key, "h%d", i);
        tc_produce_raw(topic_of(i), key, b->p, b->n);
        if (i % 10 == 9 && m != NULL) {
            ops_event_t ev = tc_event(rng, OP, valid_base + valid++, tc_wall_ms() - 60000);
            tc_model_event(m, &ev, tc_wall_ms());
            tc_produce_event(&ev);
        }
    }
    free(b);
    return valid;
}

/* Only the operation the valid events named exists in Redis. */
static void assert_only_operation(const char *op) {
    redisReply *r = harness_redis_command(g_redis, "SMEMBERS opstream:operations");

    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, op);
    freeReplyObject(r);
}

static void
every_hostile_frame_goes_to_the_dlq_unchanged_and_valid_events_count_exactly(void **state) {
    enum { N = 2000 };
    tc_model_t m = {0};
    uint64_t rng = 4242;
    harness_msgs_t dlq = {0};
    hbuf_t *b = malloc(sizeof *b);
    int64_t *seen = calloc(N, sizeof *seen);
    int per_kind[H_KINDS] = {0};
    char hv[512], key[32];

    (void)state;
    assert_non_null(b);
    assert_non_null(seen);
    produce_hostile(0, N, &m, &rng, 0);
    tc_flush();
    harness_proc_t *p = tc_spawn_count(GROUP, NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed(GROUP, 60000), 0);
    tc_stop(p); /* exit 0: under ASan this is also LeakSanitizer's verdict */
    assert_int_equal(tc_model_compare(&m, true), 0);
    assert_only_operation(OP);

    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.dlq", 1000, 60000, &dlq),
                     0);
    assert_int_equal(dlq.n, N); /* each hostile message once, nothing else */
    for (size_t j = 0; j < dlq.n; j++) {
        const harness_msg_t *d = &dlq.v[j];
        int i;
        assert_non_null(d->key);
        assert_true(d->key_len < sizeof key);
        memcpy(key, d->key, d->key_len);
        key[d->key_len] = '\0';
        assert_int_equal(sscanf(key, "h%d", &i), 1);
        assert_true(i >= 0 && i < N);
        hostile_kind_t k = hostile_frame(i, b);
        per_kind[k]++;
        /* The direct decoder and the avro-c reference refuse it alike. */
        {
            char e_direct[256], e_ref[256];
            ops_event_t x, y;
            ops_codec_err_t got =
                ops_codec_decode_event(g_codec, b->p, b->n, &x, e_direct, sizeof e_direct);
            assert_int_not_equal(got, OPS_CODEC_OK);
            assert_int_equal(got, ops_codec_decode_event_reference(g_codec, b->p, b->n, &y, e_ref,
                                                                   sizeof e_ref));
            assert_string_equal(e_direct, e_ref);
        }
        /* The original bytes, unchanged. */
        assert_int_equal(d->value_len, b->n);
        assert_memory_equal(d->value, b->p, b->n);
        assert_int_equal(harness_msg_header(d, "opstream.error", hv, sizeof hv), 0);
        if (h_class[k] != NULL && strncmp(hv, h_class[k], strlen(h_class[k])) != 0)
            fail_msg("message h%d (kind %d): reason '%s', expected class '%s'", i, (int)k, hv,
                     h_class[k]);
        assert_int_equal(harness_msg_header(d, "opstream.source.topic", hv, sizeof hv), 0);
        assert_string_equal(hv, topic_of(i));
        assert_int_equal(harness_msg_header(d, "opstream.source.offset", hv, sizeof hv), 0);
        seen[i]++;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    for (int k = 0; k < H_KINDS; k++)
        assert_true(per_kind[k] >= N / H_KINDS);
    harness_msgs_free(&dlq);
    free(seen);
    free(b);
    tc_model_free(&m);
}

/* ---- memory ------------------------------------------------------------- */

static void consumer_memory_stays_bounded_over_a_flood_of_hostile_messages(void **state) {
    const char *long_env = getenv("OPSTREAM_LONG");
    int n = long_env != NULL && strcmp(long_env, "1") == 0 ? 100000 : 10000;
    int warm = n / 10;
    const char *const args[] = {"--batch", "1000", NULL};
    uint64_t rng = 99;
    tc_model_t m = {0};

    (void)state;
    harness_proc_t *p = tc_spawn_count(GROUP, args);
    assert_non_null(p);
    /* Warm up: buffers, the DLQ producer and the codec reach their size. */
    int valid = produce_hostile(0, warm, &m, &rng, 0);
    tc_flush();
    assert_int_equal(tc_wait_consumed(GROUP, 120000), 0);
    long base_kb = tc_proc_status_kb(p->pid, "VmRSS:");
    assert_true(base_kb > 0);
    bool sanitized = tc_proc_is_sanitized(p->pid);

    /* Waves of 5,000 that the consumer takes while the next is produced:
     * what is measured is what the messages leave behind, not librdkafka's
     * prefetch of a backlog (bounded by queued.max.messages.kbytes). */
    for (int from = warm; from < n; from += 5000) {
        int to = from + 5000 < n ? from + 5000 : n;
        valid += produce_hostile(from, to, &m, &rng, valid);
        tc_flush();
        if ((to / 5000) % 2 == 0)
            assert_int_equal(tc_wait_consumed(GROUP, 120000), 0);
    }
    assert_int_equal(tc_wait_consumed(GROUP, 300000), 0);
    long peak_kb = tc_proc_status_kb(p->pid, "VmHWM:");
    long end_kb = tc_proc_status_kb(p->pid, "VmRSS:");
    fprintf(stderr,
            "hostile flood: %d messages, RSS %ld kB after warm-up, %ld kB at the end, "
            "peak %ld kB%s\n",
            n, base_kb, end_kb, peak_kb, sanitized ? " (sanitized build: no RSS bound)" : "");
    if (!sanitized)
        assert_true(peak_kb - base_kb < 32 * 1024);
    tc_stop(p); /* exit 0; under ASan LeakSanitizer would make it non-zero */
    assert_int_equal(harness_topic_count(g_broker->bootstrap, "opstream.dlq", 10000), n);
    assert_int_equal(tc_model_compare(&m, true), 0);
    assert_only_operation(OP);
    tc_model_free(&m);
}

/* ---- an oversized message ---------------------------------------------- */

/* The embedded broker accepts a 10 MB message but its partition keeps only
 * the newest 5 MiB, so the message is gone before any consumer can fetch it;
 * 4 MiB is the largest it keeps, still four times the consumer's 1 MiB
 * opstream.max.message.bytes. A real Kafka with message.max.bytes raised
 * takes 10 MB the same way. */
static void oversized_4mib_message_goes_to_the_dlq_cut_and_marked(void **state) {
    const size_t big = 4u * 1024 * 1024;
    unsigned char *v = malloc(big);
    char err[512], hv[128];
    ops_config_t *cfg = ops_config_new();
    rd_kafka_t *rk;
    harness_msgs_t dlq = {0};
    tc_model_t m = {0};
    uint64_t rng = 7;

    (void)state;
    assert_non_null(v);
    /* A valid frame header padded to 4 MiB: the size alone is the fault. */
    hbuf_t *b = malloc(sizeof *b);
    assert_non_null(b);
    hostile_frame(H_MAGIC, b); /* any frame: the first bytes */
    memset(v, 'A', big);
    v[0] = 0;
    memcpy(v + 1, b->p + 1, 4);
    free(b);
    assert_int_equal(ops_config_set(cfg, "bootstrap.servers", g_broker->bootstrap, err, sizeof err),
                     0);
    assert_int_equal(ops_config_set(cfg, "message.max.bytes", "12000000", err, sizeof err), 0);
    rk = ops_kafka_producer_new(cfg, tp_dr_cb, NULL, err, sizeof err);
    assert_non_null(rk);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("opstream.arrests"),
                                       RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY("big", 3),
                                       RD_KAFKA_V_VALUE(v, big),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    rd_kafka_flush(rk, 30000);
    assert_int_equal(rd_kafka_outq_len(rk), 0);
    assert_int_equal(g_dr_failed, 0); /* the embedded broker took it */
    rd_kafka_destroy(rk);
    ops_config_destroy(cfg);
    /* A valid event behind it on the same partition still counts. */
    ops_event_t ev = tc_event(&rng, OP, 1, tc_wall_ms() - 60000);
    ev.kind = OPS_KIND_ARREST;
    ev.minors = 0;
    ev.site = 0;
    tc_model_event(&m, &ev, tc_wall_ms());
    unsigned char frame[OPS_CODEC_MAX_FRAME];
    size_t len;
    assert_int_equal(
        ops_codec_encode_event(g_codec, &ev, frame, sizeof frame, &len, err, sizeof err), 0);
    assert_int_equal(
        harness_produce(g_broker->bootstrap, "opstream.arrests", 0, "NG", 2, frame, len, NULL), 0);

    harness_proc_t *p = tc_spawn_count(GROUP, NULL);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed(GROUP, 60000), 0);
    tc_stop(p);
    assert_int_equal(tc_model_compare(&m, true), 0);
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.dlq", 1000, 60000, &dlq),
                     0);
    assert_int_equal(dlq.n, 1);
    assert_int_equal(harness_msg_header(&dlq.v[0], "opstream.error", hv, sizeof hv), 0);
    assert_int_equal(strncmp(hv, "too-large", 9), 0);
    assert_int_equal(harness_msg_header(&dlq.v[0], "opstream.truncated", hv, sizeof hv), 0);
    assert_int_equal(strtoull(hv, NULL, 10), big); /* the original size */
    assert_true(dlq.v[0].value_len < big);
    assert_memory_equal(dlq.v[0].value, v, dlq.v[0].value_len); /* its first bytes */
    harness_msgs_free(&dlq);
    tc_model_free(&m);
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            every_hostile_frame_goes_to_the_dlq_unchanged_and_valid_events_count_exactly, tc_setup,
            tc_teardown),
        cmocka_unit_test_setup_teardown(oversized_4mib_message_goes_to_the_dlq_cut_and_marked,
                                        tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(
            consumer_memory_stays_bounded_over_a_flood_of_hostile_messages, tc_setup, tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
