/*
 * Unit tests for lib/config.c and lib/kafka.c's conf builder: kcat-style
 * routing of properties, properties files, the environment, and the
 * librdkafka defaults with user overrides. No servers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "opstream/config.h"
#include "opstream/kafka.h"

/* ---- fixtures: a config per test, a temp dir for files ---- */

typedef struct fixture {
    ops_config_t *cfg;
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->cfg = ops_config_new();
    snprintf(f->dir, sizeof(f->dir), "/tmp/opstream-test-config.XXXXXX");
    if (!f->cfg || !mkdtemp(f->dir)) {
        ops_config_destroy(f->cfg);
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/opstream.properties", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    ops_config_destroy(f->cfg);
    free(f);
    unsetenv("OPSTREAM_CONFIG");
    unsetenv("OPSTREAM_BROKERS");
    unsetenv("OPSTREAM_REDIS");
    unsetenv("OPSTREAM_REDIS_PASSWORD_FILE");
    return 0;
}

static void write_file(const fixture_t *f, const char *text) {
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* ---- routing ---- */

static void each_key_is_routed_by_its_prefix(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    static const struct {
        const char *key, *value;
        const char *get_key; /* what to read back */
        const char *expect;
    } rows[] = {
        {"opstream.topic.prefix", "weka.", "opstream.topic.prefix", "weka."},
        {"opstream.max.message.bytes", "2048", "opstream.max.message.bytes", "2048"},
        {"topic.message.timeout.ms", "60000", "topic.message.timeout.ms", "60000"},
        {"bootstrap.servers", "k1:9092,k2:9092", "bootstrap.servers", "k1:9092,k2:9092"},
        {"socket.timeout.ms", "30000", "socket.timeout.ms", "30000"},
        {"sasl.password", "a=b=c", "sasl.password", "a=b=c"},
        {"opstream.metrics.listen", "127.0.0.1:9464", "opstream.metrics.listen", "127.0.0.1:9464"},
        {"opstream.metrics.listen", "", "opstream.metrics.listen", ""}, /* off again */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (ops_config_set(f->cfg, rows[i].key, rows[i].value, err, sizeof(err)) != 0)
            fail_msg("row %zu (%s): %s", i, rows[i].key, err);
        assert_string_equal(ops_config_get(f->cfg, rows[i].get_key), rows[i].expect);
    }
    /* A topic property is not a Kafka global property, and the reverse. */
    assert_null(ops_config_get(f->cfg, "message.timeout.ms"));
    assert_null(ops_config_get(f->cfg, "topic.socket.timeout.ms"));
}

static void bad_properties_are_refused_with_a_reason(void **state) {
    fixture_t *f = *state;
    static const struct {
        const char *key, *value;
        const char *reason; /* substring of the error */
    } rows[] = {
        {"opstream.no.such.key", "1", "unknown property 'opstream.no.such.key'"},
        {"opstream.max.message.bytes", "lots", "not an integer"},
        {"opstream.max.message.bytes", "12x", "not an integer"},
        {"opstream.max.message.bytes", "", "not an integer"},
        {"opstream.max.message.bytes", "0", "out of range"},
        {"opstream.max.message.bytes", "99999999999999999999", "not an integer"},
        {"opstream.dedupe.window.s", "-5", "out of range"},
        {"opstream.redis.url", "http://localhost", "redis://"},
        {"opstream.metrics.listen", "9464", "opstream.metrics.listen: '9464': expected HOST:PORT"},
        {"opstream.metrics.listen", "h:70000", "port is not a number in 0..65535"},
        {"bootstrap.server", "k1:9092", "bootstrap.server"}, /* librdkafka's message */
        {"linger.ms", "soon", "linger.ms"},
        {"topic.no.such.thing", "1", "topic.no.such.thing"},
        {"", "x", "empty property name"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char err[512] = "";
        if (ops_config_set(f->cfg, rows[i].key, rows[i].value, err, sizeof(err)) != -1)
            fail_msg("row %zu (%s=%s) was accepted", i, rows[i].key, rows[i].value);
        if (!strstr(err, rows[i].reason))
            fail_msg("row %zu: error '%s' does not say '%s'", i, err, rows[i].reason);
    }
    /* Nothing of the refused rows was stored. */
    assert_string_equal(ops_config_get(f->cfg, "opstream.max.message.bytes"), "1048576");
    assert_null(ops_config_get(f->cfg, "bootstrap.server"));
}

static void librdkafka_names_an_unknown_property(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(ops_config_set(f->cfg, "enable.idempotense", "true", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such configuration property"));
    assert_non_null(strstr(err, "enable.idempotense"));
}

static void application_keys_fall_back_to_their_defaults(void **state) {
    fixture_t *f = *state;
    char err[256];
    assert_string_equal(ops_config_get(f->cfg, "opstream.topic.prefix"), "opstream.");
    assert_string_equal(ops_config_get(f->cfg, "opstream.redis.url"), "redis://127.0.0.1:6379/0");
    assert_string_equal(ops_config_get(f->cfg, "opstream.redis.password.file"), "");
    assert_int_equal(ops_config_get_int(f->cfg, "opstream.max.message.bytes"), 1048576);
    assert_int_equal(ops_config_get_int(f->cfg, "opstream.dedupe.window.s"), 604800);
    assert_int_equal(ops_config_get_int(f->cfg, "opstream.bucket.minute.ttl.s"), 172800);
    assert_int_equal(ops_config_get_int(f->cfg, "opstream.bucket.hour.ttl.s"), 3024000);
    assert_string_equal(ops_config_get(f->cfg, "opstream.metrics.listen"), ""); /* off */
    assert_null(ops_config_get(f->cfg, "opstream.unknown"));
    assert_null(ops_config_get(f->cfg, "bootstrap.servers"));
    /* A NULL config still answers defaults. */
    assert_string_equal(ops_config_get(NULL, "opstream.topic.prefix"), "opstream.");
    /* Set values win and integers are stored canonically. */
    assert_int_equal(ops_config_set(f->cfg, "opstream.dedupe.window.s", "+86400", err, sizeof err),
                     0);
    assert_int_equal(ops_config_get_int(f->cfg, "opstream.dedupe.window.s"), 86400);
    assert_string_equal(ops_config_get(f->cfg, "opstream.dedupe.window.s"), "86400");
}

static void integer_range_bounds_are_inclusive(void **state) {
    fixture_t *f = *state;
    char err[256];
    assert_int_equal(ops_config_set(f->cfg, "opstream.bucket.minute.ttl.s", "60", err, sizeof err),
                     0);
    assert_int_equal(ops_config_set(f->cfg, "opstream.bucket.minute.ttl.s", "59", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "59 is out of range 60.."));
    assert_int_equal(ops_config_get_int(f->cfg, "opstream.bucket.minute.ttl.s"), 60);
}

static void setting_a_key_again_replaces_its_value(void **state) {
    fixture_t *f = *state;
    char err[256];
    assert_int_equal(ops_config_set(f->cfg, "client.id", "a", err, sizeof err), 0);
    assert_int_equal(ops_config_set(f->cfg, "client.id", "b", err, sizeof err), 0);
    assert_string_equal(ops_config_get(f->cfg, "client.id"), "b");
}

/* ---- -X prop=value ---- */

static void dash_x_splits_at_the_first_equals_sign(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(ops_config_set_kv(f->cfg, "sasl.password=p=q==", err, sizeof err), 0);
    assert_string_equal(ops_config_get(f->cfg, "sasl.password"), "p=q==");
    assert_int_equal(ops_config_set_kv(f->cfg, "client.id=", err, sizeof err), 0);
    assert_string_equal(ops_config_get(f->cfg, "client.id"), "");
    assert_int_equal(ops_config_set_kv(f->cfg, "topic.acks=all", err, sizeof err), 0);
    assert_string_equal(ops_config_get(f->cfg, "topic.acks"), "all");

    assert_int_equal(ops_config_set_kv(f->cfg, "linger.ms", err, sizeof err), -1);
    assert_non_null(strstr(err, "expected property=value"));
    assert_int_equal(ops_config_set_kv(f->cfg, "=5", err, sizeof err), -1);
    assert_non_null(strstr(err, "empty property name"));
    assert_int_equal(ops_config_set_kv(f->cfg, "opstream.nope=1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown property 'opstream.nope'"));
}

/* ---- properties files ---- */

static void properties_file_skips_comments_and_trims_whitespace(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    write_file(f, "# national desk config\n"
                  "! also a comment\n"
                  "\n"
                  "   \t\n"
                  "  bootstrap.servers =  k1:9092 \n"
                  "opstream.topic.prefix=weka.\r\n"
                  "sasl.password = s3cr=t\n"
                  "\ttopic.message.timeout.ms\t=\t120000\n"
                  "opstream.dedupe.window.s=3600"); /* no final newline */
    if (ops_config_load_file(f->cfg, f->path, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(ops_config_get(f->cfg, "bootstrap.servers"), "k1:9092");
    assert_string_equal(ops_config_get(f->cfg, "opstream.topic.prefix"), "weka.");
    assert_string_equal(ops_config_get(f->cfg, "sasl.password"), "s3cr=t");
    assert_string_equal(ops_config_get(f->cfg, "topic.message.timeout.ms"), "120000");
    assert_int_equal(ops_config_get_int(f->cfg, "opstream.dedupe.window.s"), 3600);
}

static void bad_line_in_a_properties_file_names_file_and_line(void **state) {
    fixture_t *f = *state;
    static const struct {
        const char *text;
        const char *where;  /* ":LINE: " */
        const char *reason; /* substring */
    } rows[] = {
        {"# ok\nlinger.ms=5\njust words\n", ":3: ", "missing '='"},
        {"\n\n  = value\n", ":3: ", "empty key"},
        {"opstream.foo=1\n", ":1: ", "unknown property 'opstream.foo'"},
        {"a.b=1\n", ":1: ", "No such configuration property"},
        {"linger.ms=5\nopstream.max.message.bytes=huge\n", ":2: ", "not an integer"},
        {"opstream.bucket.hour.ttl.s=1\n", ":1: ", "out of range"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char err[512] = "";
        char expect[256];
        write_file(f, rows[i].text);
        if (ops_config_load_file(f->cfg, f->path, err, sizeof err) != -1)
            fail_msg("row %zu was accepted", i);
        snprintf(expect, sizeof expect, "%s%s", f->path, rows[i].where);
        if (strncmp(err, expect, strlen(expect)) != 0 || !strstr(err, rows[i].reason))
            fail_msg("row %zu: error '%s', expected '%s...%s'", i, err, expect, rows[i].reason);
    }
}

static void missing_properties_file_is_an_error_naming_it(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(ops_config_load_file(f->cfg, "/nonexistent/opstream.conf", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/opstream.conf"));
    assert_non_null(strstr(err, "No such file"));
}

/* ---- environment ---- */

static void environment_maps_onto_properties(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    write_file(f, "bootstrap.servers=from-file:9092\nopstream.topic.prefix=file.\n");
    setenv("OPSTREAM_CONFIG", f->path, 1);
    setenv("OPSTREAM_BROKERS", "env1:9092,env2:9092", 1);
    setenv("OPSTREAM_REDIS", "redis://:pw@10.0.0.5:6380/2", 1);
    setenv("OPSTREAM_REDIS_PASSWORD_FILE", "/run/secrets/redis", 1);
    if (ops_config_load_env(f->cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    /* The file is loaded first, the single variables override it. */
    assert_string_equal(ops_config_get(f->cfg, "bootstrap.servers"), "env1:9092,env2:9092");
    assert_string_equal(ops_config_get(f->cfg, "opstream.topic.prefix"), "file.");
    assert_string_equal(ops_config_get(f->cfg, "opstream.redis.url"),
                        "redis://:pw@10.0.0.5:6380/2");
    assert_string_equal(ops_config_get(f->cfg, "opstream.redis.password.file"),
                        "/run/secrets/redis");
}

static void empty_or_unset_environment_changes_nothing(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    setenv("OPSTREAM_BROKERS", "", 1);
    unsetenv("OPSTREAM_REDIS");
    assert_int_equal(ops_config_load_env(f->cfg, err, sizeof err), 0);
    assert_null(ops_config_get(f->cfg, "bootstrap.servers"));
    assert_string_equal(ops_config_get(f->cfg, "opstream.redis.url"), "redis://127.0.0.1:6379/0");
}

static void bad_environment_value_names_the_variable(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    setenv("OPSTREAM_REDIS", "localhost:6379", 1);
    assert_int_equal(ops_config_load_env(f->cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "OPSTREAM_REDIS: "));
    unsetenv("OPSTREAM_REDIS");
    setenv("OPSTREAM_CONFIG", "/nonexistent/x.properties", 1);
    assert_int_equal(ops_config_load_env(f->cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "OPSTREAM_CONFIG: /nonexistent/x.properties"));
}

/* ---- Kafka conf builder ---- */

/* One expected value of a built conf: global, or of its default topic conf. */
typedef struct expect {
    int topic;
    const char *key, *value;
} expect_t;

static void expect_conf(rd_kafka_conf_t *conf, const expect_t *rows, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char buf[512] = "";
        size_t sz = sizeof(buf);
        rd_kafka_conf_res_t res;
        if (rows[i].topic) {
            rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(conf);
            assert_non_null(tc);
            res = rd_kafka_topic_conf_get(tc, rows[i].key, buf, &sz);
        } else
            res = rd_kafka_conf_get(conf, rows[i].key, buf, &sz);
        if (res != RD_KAFKA_CONF_OK)
            fail_msg("%s%s is not a property", rows[i].topic ? "topic " : "", rows[i].key);
        if (strcmp(buf, rows[i].value) != 0)
            fail_msg("%s%s = '%s', expected '%s'", rows[i].topic ? "topic " : "", rows[i].key, buf,
                     rows[i].value);
    }
}

#define EXPECT_CONF(conf, rows) expect_conf((conf), (rows), sizeof(rows) / sizeof((rows)[0]))

static void producer_conf_has_the_delivery_defaults(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    static const expect_t rows[] = {
        {0, "enable.idempotence", "true"},
        {0, "socket.nagle.disable", "true"},
        {0, "linger.ms", "5"},
        {0, "client.id", "opstream"},
        {0, "compression.codec", "none"},
        {1, "acks", "-1"},                   /* all */
        {1, "message.timeout.ms", "300000"}, /* librdkafka's own */
    };
    rd_kafka_conf_t *conf = ops_kafka_conf_new(f->cfg, OPS_KAFKA_PRODUCER, err, sizeof err);
    assert_non_null(conf);
    EXPECT_CONF(conf, rows);
    rd_kafka_conf_destroy(conf);
}

static void consumer_conf_leaves_offsets_to_redis(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    static const expect_t rows[] = {
        {0, "enable.auto.commit", "false"},
        {0, "enable.auto.offset.store", "false"},
        {0, "socket.nagle.disable", "true"},
        {0, "fetch.wait.max.ms", "10"},
        {0, "client.id", "opstream"},
        {0, "partition.assignment.strategy", "range,roundrobin"}, /* eager */
        {1, "auto.offset.reset", "smallest"},                     /* earliest */
    };
    rd_kafka_conf_t *conf = ops_kafka_conf_new(f->cfg, OPS_KAFKA_CONSUMER, err, sizeof err);
    assert_non_null(conf);
    EXPECT_CONF(conf, rows);
    rd_kafka_conf_destroy(conf);
}

static void user_properties_override_the_defaults(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    static const char *const props[] = {
        "linger.ms=50",
        "client.id=desk-ng",
        "acks=1",
        "enable.idempotence=false",
        "topic.message.timeout.ms=60000",
        "bootstrap.servers=k1:9092",
    };
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
        if (ops_config_set_kv(f->cfg, props[i], err, sizeof err) != 0)
            fail_msg("%s: %s", props[i], err);
    static const expect_t rows[] = {
        {0, "linger.ms", "50"},
        {0, "client.id", "desk-ng"},
        {0, "enable.idempotence", "false"},
        {0, "bootstrap.servers", "k1:9092"},
        {0, "socket.nagle.disable", "true"}, /* untouched default stays */
        {1, "acks", "1"},
        {1, "message.timeout.ms", "60000"},
    };
    rd_kafka_conf_t *conf = ops_kafka_conf_new(f->cfg, OPS_KAFKA_PRODUCER, err, sizeof err);
    assert_non_null(conf);
    EXPECT_CONF(conf, rows);
    rd_kafka_conf_destroy(conf);
}

static void client_without_brokers_is_refused_clearly(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_null(ops_kafka_producer_new(f->cfg, NULL, NULL, err, sizeof err));
    assert_string_equal(err, "no brokers: use -b, OPSTREAM_BROKERS or bootstrap.servers");
    err[0] = '\0';
    assert_int_equal(ops_config_set(f->cfg, "bootstrap.servers", "127.0.0.1:1", err, sizeof err),
                     0);
    assert_null(ops_kafka_consumer_new(f->cfg, NULL, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "no consumer group"));
}

static void clients_are_created_when_configured(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    /* Nothing listens on port 1; creating a client must not need a broker
     * (the quiet log keeps the refused connection out of the test output). */
    assert_int_equal(ops_config_set(f->cfg, "bootstrap.servers", "127.0.0.1:1", err, sizeof err),
                     0);
    assert_int_equal(ops_config_set(f->cfg, "log_level", "0", err, sizeof err), 0);
    rd_kafka_t *p = ops_kafka_producer_new(f->cfg, NULL, NULL, err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    rd_kafka_destroy(p);
    rd_kafka_t *c = ops_kafka_consumer_new(f->cfg, "opstream-count", NULL, NULL, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    char buf[64];
    size_t sz = sizeof(buf);
    const rd_kafka_conf_t *conf = rd_kafka_conf(c);
    assert_int_equal(rd_kafka_conf_get(conf, "group.id", buf, &sz), RD_KAFKA_CONF_OK);
    assert_string_equal(buf, "opstream-count");
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

static void consumer_conf_value(fixture_t *f, const char *key, char *buf, size_t size) {
    char err[512] = "";
    ops_kafka_consumer_opts_t o = {
        .group = "opstream-count", .prefetch_messages = 10000, .fetch_bytes = 2097152};
    rd_kafka_t *c = ops_kafka_consumer_build(f->cfg, &o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    size_t sz = size;
    assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(c), key, buf, &sz), RD_KAFKA_CONF_OK);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

/* The runtime bounds librdkafka's prefetch and fetch responses; the
 * user's properties win, and fetch.max.bytes is never below
 * message.max.bytes (librdkafka refuses that). */
static void consumer_prefetch_bounds_give_way_to_the_users_properties(void **state) {
    fixture_t *f = *state;
    char err[512] = "", buf[64];
    assert_int_equal(ops_config_set(f->cfg, "bootstrap.servers", "127.0.0.1:1", err, sizeof err),
                     0);
    assert_int_equal(ops_config_set(f->cfg, "log_level", "0", err, sizeof err), 0);
    consumer_conf_value(f, "queued.min.messages", buf, sizeof buf);
    assert_string_equal(buf, "10000");
    consumer_conf_value(f, "fetch.max.bytes", buf, sizeof buf);
    assert_string_equal(buf, "2097152");
    assert_int_equal(ops_config_set(f->cfg, "message.max.bytes", "5000000", err, sizeof err), 0);
    consumer_conf_value(f, "fetch.max.bytes", buf, sizeof buf);
    assert_string_equal(buf, "5000000");
    assert_int_equal(ops_config_set(f->cfg, "fetch.max.bytes", "7000000", err, sizeof err), 0);
    assert_int_equal(ops_config_set(f->cfg, "queued.min.messages", "777", err, sizeof err), 0);
    consumer_conf_value(f, "fetch.max.bytes", buf, sizeof buf);
    assert_string_equal(buf, "7000000");
    consumer_conf_value(f, "queued.min.messages", buf, sizeof buf);
    assert_string_equal(buf, "777");
}

/* The consumer builder hands over the prefetch bound it gave the client:
 * the runtime's, else the user's queued.min.messages as librdkafka reads it
 * (any base, trailing text ignored), else librdkafka's default (100000).
 * Each time it equals what the client's conf holds. */
static void consumer_builder_hands_over_the_prefetch_bound_it_gave(void **state) {
    fixture_t *f = *state;
    static const struct {
        const char *user; /* NULL: not set */
        size_t ours, want;
    } rows[] = {
        {NULL, 10000, 10000}, {NULL, 0, 100000}, {"777", 10000, 777},
        {"0x14", 10000, 20},  {"010", 10000, 8}, {"40 messages", 10000, 40},
    };
    char err[512] = "", buf[64];

    assert_int_equal(ops_config_set(f->cfg, "bootstrap.servers", "127.0.0.1:1", err, sizeof err),
                     0);
    assert_int_equal(ops_config_set(f->cfg, "log_level", "0", err, sizeof err), 0);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t given = 12345, sz = sizeof buf;
        ops_kafka_consumer_opts_t o = {
            .group = "opstream-count", .prefetch_messages = rows[i].ours, .prefetch_given = &given};
        if (rows[i].user != NULL &&
            ops_config_set(f->cfg, "queued.min.messages", rows[i].user, err, sizeof err) != 0)
            fail_msg("queued.min.messages=%s: %s", rows[i].user, err);
        rd_kafka_t *c = ops_kafka_consumer_build(f->cfg, &o, err, sizeof err);
        if (!c)
            fail_msg("%s", err);
        assert_int_equal(given, rows[i].want);
        assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(c), "queued.min.messages", buf, &sz),
                         RD_KAFKA_CONF_OK);
        if (strtoull(buf, NULL, 10) != given)
            fail_msg("row %zu: handed over %zu, librdkafka holds %s", i, given, buf);
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
}

/* ---- the shipped example ---- */

/* Every "#key = value" line of config/opstream.properties.example, with
 * its '#' removed, is accepted, and each opstream.* line shows the default
 * the code really uses. */
static void example_file_shows_the_real_defaults(void **state) {
    fixture_t *f = *state;
    const char *src = getenv("OPSTREAM_SRC_DIR");
    char path[512], err[512] = "";
    char *line = NULL;
    size_t cap = 0;
    int opstream_lines = 0;
    snprintf(path, sizeof path, "%s/config/opstream.properties.example", src ? src : ".");
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    while (getline(&line, &cap, fp) > 0) {
        char key[128], value[256];
        if (sscanf(line, "#%127[a-z._] = %255s", key, value) != 2 || !strchr(key, '.'))
            continue;
        if (ops_config_set(f->cfg, key, value, err, sizeof err) != 0)
            fail_msg("%s: %s", path, err);
        if (strncmp(key, "opstream.", 9) == 0) {
            ops_config_t *fresh = ops_config_new();
            const char *def = ops_config_get(fresh, key);
            if (!def || strcmp(def, value) != 0)
                fail_msg("%s: %s shows '%s', the default is '%s'", path, key, value,
                         def ? def : "(none)");
            ops_config_destroy(fresh);
            opstream_lines++;
        }
    }
    free(line);
    fclose(fp);
    assert_true(opstream_lines >= 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(each_key_is_routed_by_its_prefix),
        T(bad_properties_are_refused_with_a_reason),
        T(librdkafka_names_an_unknown_property),
        T(application_keys_fall_back_to_their_defaults),
        T(integer_range_bounds_are_inclusive),
        T(setting_a_key_again_replaces_its_value),
        T(dash_x_splits_at_the_first_equals_sign),
        T(properties_file_skips_comments_and_trims_whitespace),
        T(bad_line_in_a_properties_file_names_file_and_line),
        T(missing_properties_file_is_an_error_naming_it),
        T(environment_maps_onto_properties),
        T(empty_or_unset_environment_changes_nothing),
        T(bad_environment_value_names_the_variable),
        T(producer_conf_has_the_delivery_defaults),
        T(consumer_conf_leaves_offsets_to_redis),
        T(user_properties_override_the_defaults),
        T(consumer_prefetch_bounds_give_way_to_the_users_properties),
        T(consumer_builder_hands_over_the_prefetch_bound_it_gave),
        T(client_without_brokers_is_refused_clearly),
        T(clients_are_created_when_configured),
        T(example_file_shows_the_real_defaults),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
