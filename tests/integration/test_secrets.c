/*
 * Secrets stay out of sight: a Redis password given as a file
 * (OPSTREAM_REDIS_PASSWORD_FILE) or a SASL password given as a file
 * (opstream.sasl.password.file, OPSTREAM_SASL_PASSWORD_FILE) is not in the
 * process list (/proc/PID/cmdline), not in the environment, and not in the
 * program's output, while the program works with it.
 */
#include "test_count_common.h"

#include <sys/stat.h>

#define REDIS_PASS "Fl4sh-Weka-redis-pw"
#define WRONG_PASS "n0t-the-r1ght-pw"
#define SASL_PASS "Fl4sh-Weka-sasl-pw"
#define USER "desk-ng"

/* /proc/PID/<what> with its NUL separators turned into spaces. */
static char *proc_text(pid_t pid, const char *what) {
    char path[64];
    size_t len;
    char *s;

    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    s = harness_read_file(path, &len);
    assert_non_null(s);
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0')
            s[i] = ' ';
    return s;
}

static void assert_not_in_process(const harness_proc_t *p, const char *secret) {
    char *cmdline = proc_text(p->pid, "cmdline");
    char *environ = proc_text(p->pid, "environ");
    char *out = harness_proc_stdout(p);
    char *err = harness_proc_stderr(p);

    assert_true(strlen(cmdline) > 0);
    assert_null(strstr(cmdline, secret));
    assert_null(strstr(environ, secret));
    assert_null(strstr(out, secret));
    assert_null(strstr(err, secret));
    free(cmdline);
    free(environ);
    free(out);
    free(err);
}

static void write_secret(const char *name, const char *secret, char *path, size_t size) {
    char line[128];

    harness_path(path, size, name);
    snprintf(line, sizeof line, "%s\n", secret);
    assert_int_equal(harness_write_file(path, line, (size_t)-1), 0);
    assert_int_equal(chmod(path, 0600), 0);
}

static void redis_password_file_keeps_the_password_out_of_the_process_list(void **state) {
    char pass_file[HARNESS_PATH_MAX], env[HARNESS_PATH_MAX + 40], url[128];
    uint64_t rng = 5;
    redisReply *r;

    (void)state;
    /* A Redis user with a password; the default user stays for the checks. */
    r = harness_redis_command(g_redis, "ACL SETUSER %s on >%s ~opstream:* +@all", USER, REDIS_PASS);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    write_secret("redis.password", REDIS_PASS, pass_file, sizeof pass_file);
    snprintf(env, sizeof env, "OPSTREAM_REDIS_PASSWORD_FILE=%s", pass_file);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?user=%s", g_redis->port, USER);
    for (int i = 0; i < 50; i++) {
        ops_event_t ev = tc_event(&rng, "FLASH-WEKA", i, tc_wall_ms() - 60000);
        tc_produce_event(&ev);
    }
    tc_flush();
    const char *argv[] = {"opstream-count", "-b", g_broker->bootstrap, "--redis", url, "-v", NULL};
    const char *envv[] = {env, NULL};
    harness_proc_t *p = harness_spawn(argv, envv, 0);
    assert_non_null(p);
    assert_int_equal(tc_wait_consumed("opstream-count", 30000), 0); /* it authenticated */
    assert_not_in_process(p, REDIS_PASS);
    assert_int_equal(harness_proc_stop(p, 20000), 0);
    harness_proc_free(p);
    r = harness_redis_command(g_redis, "ACL DELUSER %s", USER);
    freeReplyObject(r);
}

static void wrong_redis_password_is_reported_without_echoing_it(void **state) {
    char pass_file[HARNESS_PATH_MAX], env[HARNESS_PATH_MAX + 40], url[128];
    redisReply *r;

    (void)state;
    r = harness_redis_command(g_redis, "ACL SETUSER %s on >%s ~opstream:* +@all", USER, REDIS_PASS);
    freeReplyObject(r);
    write_secret("wrong.password", WRONG_PASS, pass_file, sizeof pass_file);
    snprintf(env, sizeof env, "OPSTREAM_REDIS_PASSWORD_FILE=%s", pass_file);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?user=%s", g_redis->port, USER);
    const char *argv[] = {"opstream-count", "-b", g_broker->bootstrap, "--redis", url, NULL};
    const char *envv[] = {env, NULL};
    harness_proc_t *p = harness_spawn(argv, envv, 0);
    assert_non_null(p);
    void *a[] = {p, "WRONGPASS"};
    assert_int_equal(harness_wait_until(tc_says, a, 30000), 0); /* Redis's refusal, passed on */
    assert_not_in_process(p, WRONG_PASS);
    assert_int_equal(tc_offsets_sum("opstream-count"), 0); /* nothing written */
    harness_proc_stop(p, 20000);
    harness_proc_free(p);
    r = harness_redis_command(g_redis, "ACL DELUSER %s", USER);
    freeReplyObject(r);
}

/* The SASL password file sets librdkafka's sasl.password when a client is
 * built (and wins over a sasl.password set before); a missing file is an
 * error that names the file. */
static void sasl_password_file_reaches_librdkafka(void **state) {
    char pass_file[HARNESS_PATH_MAX], err[512], got[256];
    size_t sz = sizeof got;
    ops_config_t *cfg = ops_config_new();
    rd_kafka_conf_t *conf;

    (void)state;
    write_secret("sasl.password", SASL_PASS, pass_file, sizeof pass_file);
    assert_non_null(cfg);
    assert_int_equal(ops_config_set(cfg, "sasl.password", "from-the-command-line", err, sizeof err),
                     0);
    assert_int_equal(ops_config_set(cfg, "opstream.sasl.password.file", pass_file, err, sizeof err),
                     0);
    conf = ops_kafka_conf_new(cfg, OPS_KAFKA_CONSUMER, err, sizeof err);
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.password", got, &sz), RD_KAFKA_CONF_OK);
    assert_string_equal(got, SASL_PASS);
    rd_kafka_conf_destroy(conf);
    assert_int_equal(
        ops_config_set(cfg, "opstream.sasl.password.file", "/nonexistent/sasl.pw", err, sizeof err),
        0);
    assert_null(ops_kafka_conf_new(cfg, OPS_KAFKA_PRODUCER, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/sasl.pw"));
    ops_config_destroy(cfg);
}

/* A consumer set up for SASL with the password in a file (the embedded
 * broker has no SASL, so it waits for the broker): the password is in none
 * of its process list, environment or output. */
static void sasl_password_file_keeps_the_password_out_of_the_process_list(void **state) {
    char pass_file[HARNESS_PATH_MAX], env[HARNESS_PATH_MAX + 40];

    (void)state;
    write_secret("sasl.password", SASL_PASS, pass_file, sizeof pass_file);
    snprintf(env, sizeof env, "OPSTREAM_SASL_PASSWORD_FILE=%s", pass_file);
    const char *argv[] = {"opstream-count",
                          "-b",
                          g_broker->bootstrap,
                          "--redis",
                          g_redis->url,
                          "-X",
                          "security.protocol=SASL_PLAINTEXT",
                          "-X",
                          "sasl.mechanism=PLAIN",
                          "-X",
                          "sasl.username=" USER,
                          "-v",
                          NULL};
    const char *envv[] = {env, NULL};
    harness_proc_t *p = harness_spawn(argv, envv, 0);
    assert_non_null(p);
    void *a[] = {p, "SASL"}; /* it tried to authenticate */
    assert_int_equal(harness_wait_until(tc_says, a, 30000), 0);
    assert_not_in_process(p, SASL_PASS);
    harness_proc_stop(p, 20000);
    harness_proc_free(p);

    /* The file missing: a configuration error (exit 2) naming the file. */
    const char *bad_env[] = {"OPSTREAM_SASL_PASSWORD_FILE=/nonexistent/sasl.pw", NULL};
    p = harness_spawn(argv, bad_env, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    assert_int_equal(harness_proc_exit_code(p), 2);
    char *err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "/nonexistent/sasl.pw"));
    free(err);
    harness_proc_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            redis_password_file_keeps_the_password_out_of_the_process_list, tc_setup, tc_teardown),
        cmocka_unit_test_setup_teardown(wrong_redis_password_is_reported_without_echoing_it,
                                        tc_setup, tc_teardown),
        cmocka_unit_test(sasl_password_file_reaches_librdkafka),
        cmocka_unit_test_setup_teardown(
            sasl_password_file_keeps_the_password_out_of_the_process_list, tc_setup, tc_teardown),
    };
    return cmocka_run_group_tests(tests, tc_group_setup, tc_group_teardown);
}
