/*
 * What a newcomer meets first, for the producers, opstream-alerts,
 * opstream-stats and opstream-broker: an unreachable broker or Redis is named
 * in the program's own words, once, and the program ends with the exit code
 * its --help gives; SIGTERM ends every waiting state within seconds; the
 * broker's bootstrap file is never stale; opstream-stats --watch fits an
 * 80x24 terminal (read back from a pseudo-terminal); and the small
 * inconsistencies: ignored options, operation codes, unknown countries, CSV
 * trailing cells, directories given as files.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "pty_screen.h"

/* Deadlines are generous (a loaded machine); the behaviour asserted is the
 * message and the exit code, never a timing. */
#define NAMED_WITHIN_MS 30000 /* the default 10 s connect timeout, and slack */
#define STOPPED_WITHIN_MS 5000
#define SHORT_CONNECT "opstream.connect.timeout.s=2"

static harness_redis_t *g_redis;

static int group_setup(void **state) {
    return harness_group_setup_redis(state, &g_redis);
}

static int group_teardown(void **state) {
    return harness_group_teardown_redis(state, &g_redis);
}

/* A 127.0.0.1 port where nothing listens: bound, then closed. */
static int closed_port(void) {
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    assert_true(port > 0);
    return port;
}

static size_t count_of(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Waits for p to exit within ms; its exit code. Fails the test (showing
 * stderr) when it is still running. */
static int exit_within(harness_proc_t *p, int ms) {
    if (harness_proc_wait(p, ms) != 0) {
        char *err = harness_proc_stderr(p);
        print_error("%s still running after %d ms; stderr:\n%s\n", p->name, ms, err ? err : "");
        free(err);
        harness_proc_kill(p);
        fail_msg("%s did not exit in time", p->name);
    }
    return harness_proc_exit_code(p);
}

/* Runs argv to its end (within ms) and returns its exit code, its stderr in
 * *errp and stdout in *outp (both may be NULL; the caller frees). */
static int run(const char *const argv[], const char *const env[], int ms, char **errp,
               char **outp) {
    harness_proc_t *p = harness_spawn(argv, env, 0);
    assert_non_null(p);
    int code = exit_within(p, ms);
    if (errp != NULL)
        *errp = harness_proc_stderr(p);
    if (outp != NULL)
        *outp = harness_proc_stdout(p);
    harness_proc_free(p);
    return code;
}

static void assert_contains(const char *text, const char *what) {
    if (strstr(text, what) == NULL)
        fail_msg("expected \"%s\" in:\n%s", what, text);
}

/* librdkafka's own log lines ("%3|...|FAIL|") stay behind -v. */
static void assert_no_librdkafka_lines(const char *text) {
    if (strstr(text, "%3|") != NULL || strstr(text, "%4|") != NULL ||
        strstr(text, "kafka FAIL") != NULL)
        fail_msg("librdkafka log lines without -v:\n%s", text);
}

/* The one line naming the brokers, and no librdkafka lines. */
static void assert_brokers_named_once(const char *err, const char *bs, int secs) {
    char want[256];
    snprintf(want, sizeof(want), "cannot reach the brokers at %s within %d s", bs, secs);
    assert_contains(err, want);
    assert_int_equal(count_of(err, "cannot reach the brokers"), 1);
    assert_no_librdkafka_lines(err);
}

static void example(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/examples/%s", harness_src_dir(), name);
}

/* Starts argv, lets it settle into its waiting state for wait_ms, sends
 * SIGTERM and checks that it exits with want within STOPPED_WITHIN_MS.
 * Returns the exited process (the caller reads its output and frees it). */
static harness_proc_t *sigterm_after(const char *const argv[], int wait_ms, int want) {
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    usleep((useconds_t)wait_ms * 1000);
    assert_true(harness_proc_running(p));
    harness_proc_signal(p, SIGTERM);
    assert_int_equal(exit_within(p, STOPPED_WITHIN_MS), want);
    return p;
}

static void all_brokers_down(harness_broker_t *b) {
    for (int i = 1; i <= 3; i++) {
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "broker-down %d", i);
        assert_int_equal(harness_broker_command(b, cmd, NULL, 0), 0);
    }
}

/* ---- producers ----------------------------------------------------------- */

static void
produce_names_an_unreachable_broker_once_and_fails_each_record_with_its_line(void **state) {
    char bs[64], file[HARNESS_PATH_MAX], want[HARNESS_PATH_MAX + 256], *err = NULL;
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    example(file, sizeof(file), "togo.jsonl");
    const char *argv[] = {"opstream-produce", "-b", bs, "--country", "TG", file, NULL};
    assert_int_equal(run(argv, NULL, NAMED_WITHIN_MS, &err, NULL), 3);
    assert_brokers_named_once(err, bs, 10);
    for (int line = 1; line <= 4; line++) {
        snprintf(want, sizeof(want), "%s:%d: delivery failed: not sent: brokers %s not reachable",
                 file, line, bs);
        assert_contains(err, want);
    }
    assert_contains(err, "read 4, delivered 0, rejected 0, failed 4");
    free(err);
}

static void produce_stops_within_seconds_of_sigterm_while_connecting(void **state) {
    char bs[64], file[HARNESS_PATH_MAX], want[HARNESS_PATH_MAX + 256];
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    example(file, sizeof(file), "togo.jsonl");
    const char *argv[] = {"opstream-produce", "-b", bs,   "-X", "opstream.connect.timeout.s=600",
                          "--country",        "TG", file, NULL};
    harness_proc_t *p = sigterm_after(argv, 1000, 3);
    char *err = harness_proc_stderr(p);
    snprintf(want, sizeof(want), "%s:4: delivery failed: interrupted before delivery was confirmed",
             file);
    assert_contains(err, want);
    assert_contains(err, "read 4, delivered 0, rejected 0, failed 4");
    free(err);
    harness_proc_free(p);
}

static const char *g_bootstrap;

static bool some_event_on_a_topic(void *arg) {
    static const char *const topics[] = {"opstream.arrests", "opstream.rescues",
                                         "opstream.migrants", "opstream.seizures"};
    int64_t n = 0;
    (void)arg;
    for (size_t i = 0; i < 4; i++) {
        int64_t c = harness_topic_count(g_bootstrap, topics[i], 5000);
        n += c > 0 ? c : 0;
    }
    return n > 0;
}

/* The brokers answered, then went away with records in flight: the final
 * flush after SIGTERM is bounded and the unconfirmed records are reported. */
static void produce_stops_within_seconds_of_sigterm_while_flushing(void **state) {
    (void)state;
    harness_broker_t *b = harness_broker_start(NULL);
    assert_non_null(b);
    const char *argv[] = {"opstream-produce", "-b",    b->bootstrap, "--country", "TG",
                          "--format",         "jsonl", "-",          NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, HARNESS_STDIN_PIPE);
    assert_non_null(p);
    char file[HARNESS_PATH_MAX], *lines;
    example(file, sizeof(file), "togo.jsonl");
    lines = harness_read_file(file, NULL);
    assert_non_null(lines);
    char *second = strchr(lines, '\n') + 1;
    char first[4096];
    snprintf(first, sizeof(first), "%.*s", (int)(second - lines), lines);
    assert_int_equal(harness_proc_write(p, first), 0);
    /* the first record reached its topic: the brokers answered */
    g_bootstrap = b->bootstrap;
    assert_int_equal(harness_wait_until(some_event_on_a_topic, NULL, 20000), 0);
    char *err = NULL;
    all_brokers_down(b);
    assert_int_equal(harness_proc_write(p, second), 0);
    usleep(500 * 1000);
    harness_proc_signal(p, SIGTERM);
    assert_int_equal(exit_within(p, STOPPED_WITHIN_MS), 3);
    err = harness_proc_stderr(p);
    assert_contains(err, "stdin:4: delivery failed: interrupted before delivery was confirmed");
    assert_contains(err, "read 4, delivered 1, rejected 0, failed 3");
    free(err);
    free(lines);
    harness_proc_free(p);
    harness_broker_free(b);
}

static void simulate_names_an_unreachable_broker_once_and_exits_3(void **state) {
    char bs[64], *err = NULL;
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    const char *argv[] = {"opstream-simulate", "-b", bs, "-X", SHORT_CONNECT, "--rate", "50", NULL};
    assert_int_equal(run(argv, NULL, NAMED_WITHIN_MS, &err, NULL), 3);
    assert_brokers_named_once(err, bs, 2);
    assert_contains(err, "not sent: brokers not reachable");
    assert_contains(err, "delivered 0");
    /* one line, not one per event */
    assert_int_equal(count_of(err, "delivery failed"), 0);
    free(err);
}

static void simulate_stops_within_seconds_of_sigterm_while_connecting(void **state) {
    char bs[64];
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    const char *argv[] = {"opstream-simulate",
                          "-b",
                          bs,
                          "-X",
                          "opstream.connect.timeout.s=600",
                          "--rate",
                          "50",
                          NULL};
    harness_proc_t *p = sigterm_after(argv, 1000, 3);
    char *err = harness_proc_stderr(p);
    assert_contains(err, "interrupted before delivery was confirmed");
    assert_contains(err, "delivered 0");
    free(err);
    harness_proc_free(p);
}

static void simulate_stops_within_seconds_of_sigterm_while_flushing(void **state) {
    (void)state;
    harness_broker_t *b = harness_broker_start(NULL);
    assert_non_null(b);
    const char *argv[] = {"opstream-simulate", "-b", b->bootstrap, "--rate", "20", NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    /* some events delivered: the brokers answered */
    g_bootstrap = b->bootstrap;
    assert_int_equal(harness_wait_until(some_event_on_a_topic, NULL, 20000), 0);
    all_brokers_down(b);
    usleep(1000 * 1000);
    harness_proc_signal(p, SIGTERM);
    assert_int_equal(exit_within(p, STOPPED_WITHIN_MS), 3);
    char *err = harness_proc_stderr(p);
    assert_contains(err, "interrupted before delivery was confirmed");
    assert_null(strstr(err, "cannot reach the brokers"));
    free(err);
    harness_proc_free(p);
    harness_broker_free(b);
}

/* ---- opstream-alerts ------------------------------------------------------ */

static void alerts_without_brokers_says_no_brokers_at_once(void **state) {
    char *err = NULL;
    (void)state;
    const char *argv[] = {"opstream-alerts", NULL};
    const char *env[] = {"OPSTREAM_BROKERS", "OPSTREAM_CONFIG", NULL};
    assert_int_equal(run(argv, env, STOPPED_WITHIN_MS, &err, NULL), 2);
    assert_contains(err, "no brokers: use -b, OPSTREAM_BROKERS or bootstrap.servers");
    free(err);
}

/* The consumers too: no brokers is a configuration error (exit 2), at once. */
static void consumers_without_brokers_say_no_brokers_and_exit_2(void **state) {
    char rules[HARNESS_PATH_MAX];
    (void)state;
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", harness_src_dir());
    const char *count[] = {"opstream-count", "--redis", "redis://127.0.0.1:1", NULL};
    const char *alert[] = {"opstream-alert", "--redis", "redis://127.0.0.1:1", "--rules", rules,
                           NULL};
    const char *const *argvs[] = {count, alert};
    const char *env[] = {"OPSTREAM_BROKERS", "OPSTREAM_CONFIG", NULL};
    for (size_t i = 0; i < 2; i++) {
        char *err = NULL;
        assert_int_equal(run(argvs[i], env, STOPPED_WITHIN_MS, &err, NULL), 2);
        assert_contains(err, "no brokers: use -b, OPSTREAM_BROKERS or bootstrap.servers");
        free(err);
    }
}

static void alerts_names_an_unreachable_broker_and_exits_1(void **state) {
    char bs[64], *err = NULL;
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    const char *argv[] = {"opstream-alerts", "-b", bs, NULL};
    assert_int_equal(run(argv, NULL, NAMED_WITHIN_MS, &err, NULL), 1);
    assert_brokers_named_once(err, bs, 10);
    free(err);
}

static void alerts_stops_within_seconds_of_sigterm_while_connecting(void **state) {
    char bs[64];
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    const char *argv[] = {
        "opstream-alerts", "-b", bs, "-X", "opstream.connect.timeout.s=600", NULL};
    harness_proc_free(sigterm_after(argv, 1000, 0));
}

static void alerts_stops_within_seconds_of_sigterm_while_following(void **state) {
    (void)state;
    harness_broker_t *b = harness_broker_start(NULL);
    assert_non_null(b);
    const char *argv[] = {"opstream-alerts", "-b", b->bootstrap, NULL};
    harness_proc_free(sigterm_after(argv, 1500, 0));
    harness_broker_free(b);
}

/* --from-beginning --exit-at-end reads the topic to its end: the same first
 * contact as following it. */
static void alerts_to_the_end_without_brokers_says_no_brokers_at_once(void **state) {
    char *err = NULL;
    (void)state;
    const char *argv[] = {"opstream-alerts", "--from-beginning", "--exit-at-end", NULL};
    const char *env[] = {"OPSTREAM_BROKERS", "OPSTREAM_CONFIG", NULL};
    assert_int_equal(run(argv, env, STOPPED_WITHIN_MS, &err, NULL), 2);
    assert_contains(err, "no brokers: use -b, OPSTREAM_BROKERS or bootstrap.servers");
    free(err);
}

static void alerts_to_the_end_names_an_unreachable_broker_and_exits_1(void **state) {
    char bs[64], *err = NULL;
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    const char *argv[] = {"opstream-alerts", "-b", bs, "--from-beginning", "--exit-at-end", NULL};
    assert_int_equal(run(argv, NULL, NAMED_WITHIN_MS, &err, NULL), 1);
    assert_brokers_named_once(err, bs, 10);
    free(err);
}

static void alerts_to_the_end_stops_within_seconds_of_sigterm_while_connecting(void **state) {
    char bs[64];
    (void)state;
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", closed_port());
    const char *argv[] = {"opstream-alerts",  "-b", bs, "-X", "opstream.connect.timeout.s=600",
                          "--from-beginning", "--exit-at-end", NULL};
    harness_proc_free(sigterm_after(argv, 1000, 0));
}

/* The same explanation of the code format as opstream-stats gives. */
static void alerts_refuses_an_operation_that_is_not_a_code_like_stats(void **state) {
    char *a_err = NULL, *s_err = NULL;
    (void)state;
    const char *alerts[] = {"opstream-alerts", "-b", "127.0.0.1:1", "--operation",
                            "liberterra-ii",   NULL};
    const char *stats[] = {"opstream-stats", "--redis", g_redis->url, "liberterra-ii", NULL};
    assert_int_equal(run(alerts, NULL, STOPPED_WITHIN_MS, &a_err, NULL), 2);
    assert_int_equal(run(stats, NULL, STOPPED_WITHIN_MS, &s_err, NULL), 2);
    const char *explained = "'liberterra-ii' is not an operation code (A-Z, 0-9 and '-', 1-32 "
                            "characters, not starting with '-'): did you mean LIBERTERRA-II?";
    assert_contains(a_err, explained);
    assert_contains(s_err, explained);
    free(a_err);
    free(s_err);
}

/* ---- options a program would ignore are neither listed nor accepted ------ */

static void ignored_options_are_not_listed_and_are_refused(void **state) {
    char *out = NULL, *err = NULL;
    (void)state;
    const char *alerts_help[] = {"opstream-alerts", "--help", NULL};
    assert_int_equal(run(alerts_help, NULL, STOPPED_WITHIN_MS, NULL, &out), 0);
    assert_null(strstr(out, "--redis"));
    assert_null(strstr(out, "OPSTREAM_REDIS"));
    assert_contains(out, "-b, --brokers");
    free(out);
    const char *stats_help[] = {"opstream-stats", "--help", NULL};
    assert_int_equal(run(stats_help, NULL, STOPPED_WITHIN_MS, NULL, &out), 0);
    assert_null(strstr(out, "-b, --brokers"));
    assert_null(strstr(out, "librdkafka property"));
    assert_null(strstr(out, "OPSTREAM_BROKERS"));
    assert_contains(out, "--redis URL");
    free(out);
    const char *produce_help[] = {"opstream-produce", "--help", NULL};
    assert_int_equal(run(produce_help, NULL, STOPPED_WITHIN_MS, NULL, &out), 0);
    assert_null(strstr(out, "--redis"));
    assert_null(strstr(out, "errors are always shown"));
    free(out);
    const char *sim_help[] = {"opstream-simulate", "--help", NULL};
    assert_int_equal(run(sim_help, NULL, STOPPED_WITHIN_MS, NULL, &out), 0);
    assert_contains(out, "[--operation OP]");
    free(out);

    const char *alerts_redis[] = {"opstream-alerts", "-b",         "127.0.0.1:1",
                                  "--redis",         g_redis->url, NULL};
    assert_int_equal(run(alerts_redis, NULL, STOPPED_WITHIN_MS, &err, NULL), 2);
    assert_contains(err, "--redis: this program does not use Redis");
    free(err);
    const char *stats_b[] = {"opstream-stats", "-b", "127.0.0.1:1", "FLASH-WEKA", NULL};
    assert_int_equal(run(stats_b, NULL, STOPPED_WITHIN_MS, &err, NULL), 2);
    assert_contains(err, "-b: this program does not use Kafka");
    free(err);
    const char *stats_x[] = {"opstream-stats", "-X", "linger.ms=5", "FLASH-WEKA", NULL};
    assert_int_equal(run(stats_x, NULL, STOPPED_WITHIN_MS, &err, NULL), 2);
    assert_contains(err, "only opstream.* settings apply");
    free(err);
}

/* ---- opstream-stats -------------------------------------------------------- */

static void stats_names_unreachable_redis_and_exits_3(void **state) {
    char url[64], *err = NULL;
    (void)state;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", closed_port());
    const char *argv[] = {"opstream-stats", "--redis", url, "FLASH-WEKA", NULL};
    assert_int_equal(run(argv, NULL, NAMED_WITHIN_MS, &err, NULL), 3);
    assert_contains(err, "cannot reach Redis");
    assert_contains(err, "Connection refused");
    free(err);
}

/* Writes an operation with n countries (the first n of a list) as
 * opstream-count would have. */
static void seed_operation(const char *op, int n) {
    static const char *const cc[] = {"NG", "GH", "SN", "CI", "TG", "BJ", "CM", "KE", "UG", "TZ",
                                     "RW", "ZA", "ZM", "MW", "MZ", "AO", "NA", "BW", "ZW", "ET",
                                     "SD", "SS", "ML", "NE", "BF", "GN", "SL", "LR", "GM", "GW"};
    redisReply *r = harness_redis_command(g_redis, "SADD opstream:operations %s", op);
    assert_non_null(r);
    freeReplyObject(r);
    for (int i = 0; i < n; i++) {
        r = harness_redis_command(g_redis, "SADD opstream:{%s}:countries %s", op, cc[i]);
        assert_non_null(r);
        freeReplyObject(r);
        r = harness_redis_command(g_redis, "HSET opstream:{%s}:country:%s events %d arrests 1", op,
                                  cc[i], 100 - i);
        assert_non_null(r);
        freeReplyObject(r);
    }
    r = harness_redis_command(g_redis, "HSET opstream:{%s}:total events %d arrests %d", op, n, n);
    assert_non_null(r);
    freeReplyObject(r);
}

static void stats_country_that_never_reported_is_exit_1_with_a_message(void **state) {
    char *err = NULL, *out = NULL;
    (void)state;
    seed_operation("FIRST-NG", 3); /* NG GH SN */
    const char *cm[] = {"opstream-stats", "--redis", g_redis->url, "FIRST-NG",
                        "--country",      "CM",      NULL};
    assert_int_equal(run(cm, NULL, STOPPED_WITHIN_MS, &err, &out), 1);
    assert_contains(err, "country CM has not reported for FIRST-NG");
    assert_string_equal(out, "");
    free(err);
    free(out);
    const char *gh[] = {"opstream-stats", "--redis", g_redis->url, "FIRST-NG",
                        "--country",      "GH",      NULL};
    assert_int_equal(run(gh, NULL, STOPPED_WITHIN_MS, &err, &out), 0);
    assert_contains(out, "FIRST-NG / GH");
    free(err);
    free(out);
}

static void stats_watch_redraws_in_place_and_fits_80x24(void **state) {
    char path[HARNESS_PATH_MAX], line[SCR_COLS * 4 + 1];
    struct winsize ws = {.ws_row = SCR_ROWS, .ws_col = SCR_COLS};
    screen_t *s = calloc(1, sizeof(*s));
    int fd = -1;
    (void)state;
    assert_non_null(s);
    for (int r = 0; r < SCR_ROWS; r++)
        scr_clear_line(s, r, 0);
    snprintf(path, sizeof(path), "%s/opstream-stats", harness_bin_dir());
    pid_t pid = forkpty(&fd, NULL, NULL, &ws);
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("TERM", "xterm", 1);
        execl(path, "opstream-stats", "--redis", g_redis->url, "WATCH-OP", "--watch", (char *)NULL);
        _exit(127);
    }
    /* before the first count: one waiting line, redrawn in place */
    scr_pump(s, fd, 2500);
    scr_row(s, 0, line, sizeof(line));
    assert_non_null(strstr(line, "WATCH-OP"));
    if (scr_find(s, "waiting for the first counted event of WATCH-OP") < 0) {
        scr_dump(s);
        fail_msg("no waiting line");
    }
    assert_int_equal(scr_find(s, "not found"), -1);

    /* 30 countries: header, totals and windows first, the table cut */
    seed_operation("WATCH-OP", 30);
    scr_pump(s, fd, 2500);
    int frames = s->frames;
    scr_row(s, 0, line, sizeof(line));
    if (strstr(line, "WATCH-OP  at ") != line || scr_find(s, "total") != 3 ||
        scr_find(s, "last 24h") != 6 || scr_find(s, "more countries") < 0 ||
        scr_find(s, "latest alerts: none") < 0) {
        scr_dump(s);
        fail_msg("the frame does not fit as expected");
    }
    /* rows shown + "N more" = 30 */
    int first = scr_find(s, "country ") + 1, more = scr_find(s, "more countries");
    unsigned long n_more = 0;
    scr_row(s, more, line, sizeof(line));
    assert_int_equal(sscanf(line, "\xe2\x80\xa6 %lu more countries", &n_more), 1);
    assert_int_equal((unsigned long)(more - first) + n_more, 30);
    assert_true(frames >= 3); /* redrawn, from the top each time */
    assert_int_equal(s->scrolled, 0);

    /* SIGTERM ends it */
    kill(pid, SIGTERM);
    int status = 0;
    int64_t until = harness_now_ms() + STOPPED_WITHIN_MS;
    pid_t w = 0;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && harness_now_ms() < until) {
        scr_pump(s, fd, 50);
    }
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("opstream-stats --watch did not stop on SIGTERM");
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(fd);
    free(s);
}

static void stats_watch_waits_for_redis_and_stops_on_sigterm(void **state) {
    char url[64], *out = NULL;
    (void)state;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", closed_port());
    const char *argv[] = {"opstream-stats", "--redis", url, "FLASH-WEKA", "--watch", NULL};
    harness_proc_t *p = sigterm_after(argv, 1500, 3);
    out = harness_proc_stdout(p);
    assert_contains(out, "waiting for Redis: cannot reach Redis");
    free(out);
    harness_proc_free(p);
}

/* ---- opstream-broker --------------------------------------------------------- */

static bool file_changed(void *arg) {
    char *text = harness_read_file(arg, NULL);
    bool changed = text != NULL && strstr(text, "127.0.0.1:1\n") == NULL;
    free(text);
    return changed;
}

static void broker_replaces_a_stale_bootstrap_file_and_removes_its_own_at_exit(void **state) {
    char file[HARNESS_PATH_MAX], *out = NULL;
    (void)state;
    harness_path(file, sizeof(file), "stale.bootstrap");
    assert_int_equal(harness_write_file(file, "127.0.0.1:1\n", (size_t)-1), 0);
    const char *argv[] = {"opstream-broker", "--bootstrap-file", file, NULL};
    harness_proc_t *b = harness_spawn(argv, NULL, 0);
    assert_non_null(b);
    /* --wait passes over the stale list (nothing answers there) */
    const char *wait[] = {"opstream-broker", "--wait", file, "--timeout", "20", NULL};
    assert_int_equal(run(wait, NULL, 30000, NULL, &out), 0);
    assert_int_equal(harness_wait_until(file_changed, file, 5000), 0);
    char *listed = harness_read_file(file, NULL);
    assert_non_null(listed);
    assert_string_equal(out, listed);
    free(listed);
    free(out);
    harness_proc_signal(b, SIGTERM);
    assert_int_equal(exit_within(b, STOPPED_WITHIN_MS), 0);
    struct stat st;
    assert_int_equal(stat(file, &st), -1);
    assert_int_equal(errno, ENOENT);
    harness_proc_free(b);
}

static void broker_wait_names_what_it_waited_for_and_stops_on_sigterm(void **state) {
    char file[HARNESS_PATH_MAX], *err = NULL;
    (void)state;
    harness_path(file, sizeof(file), "dead.bootstrap");
    assert_int_equal(harness_write_file(file, "127.0.0.1:1\n", (size_t)-1), 0);
    const char *argv[] = {"opstream-broker", "--wait", file, "--timeout", "2", NULL};
    assert_int_equal(run(argv, NULL, NAMED_WITHIN_MS, &err, NULL), 1);
    assert_contains(err, "no broker answered within 2 s (127.0.0.1:1: Connection refused)");
    free(err);

    const char *forever[] = {"opstream-broker", "--wait", file, "--timeout", "600", NULL};
    harness_proc_t *p = sigterm_after(forever, 500, 1);
    err = harness_proc_stderr(p);
    assert_contains(err, "interrupted");
    free(err);
    harness_proc_free(p);
}

/* ---- input and files ----------------------------------------------------------- */

static void
csv_empty_trailing_cells_are_ignored_and_a_value_past_the_header_is_rejected(void **state) {
    char file[HARNESS_PATH_MAX], want[HARNESS_PATH_MAX + 128], *err = NULL;
    (void)state;
    harness_path(file, sizeof(file), "trailing.csv");
    assert_int_equal(
        harness_write_file(file,
                           "kind,operation,country,occurred_at,source_ref,persons,offence\n"
                           "arrest,FLASH-WEKA,TG,2024-09-30T14:05:00Z,R1,2,OTHER,,\n"
                           "arrest,FLASH-WEKA,TG,2024-09-30T14:05:00Z,R2,2,OTHER,,x\n"
                           "arrest,FLASH-WEKA,TG,2024-09-30T14:05:00Z,R3,2,OTHER\n",
                           (size_t)-1),
        0);
    const char *argv[] = {"opstream-produce", "--dry-run", file, NULL};
    assert_int_equal(run(argv, NULL, STOPPED_WITHIN_MS, &err, NULL), 1);
    snprintf(want, sizeof(want),
             "%s:3: field 9 (\"x\") is past the header's 7 columns (only empty cells may follow "
             "the last column)",
             file);
    assert_contains(err, want);
    assert_contains(err, "read 3, valid 2, rejected 1");
    free(err);
}

static void a_directory_as_rules_or_config_file_says_so(void **state) {
    char *err = NULL;
    (void)state;
    const char *dir = harness_tmpdir();
    const char *rules[] = {"opstream-alert", "--check", "--rules", dir, NULL};
    assert_int_equal(run(rules, NULL, STOPPED_WITHIN_MS, &err, NULL), 2);
    assert_contains(err, "is a directory, not a rules file");
    free(err);
    const char *config[] = {"opstream-stats", "-c", dir, "FLASH-WEKA", NULL};
    assert_int_equal(run(config, NULL, STOPPED_WITHIN_MS, &err, NULL), 2);
    assert_contains(err, "is a directory, not a properties file");
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            produce_names_an_unreachable_broker_once_and_fails_each_record_with_its_line),
        cmocka_unit_test(produce_stops_within_seconds_of_sigterm_while_connecting),
        cmocka_unit_test(produce_stops_within_seconds_of_sigterm_while_flushing),
        cmocka_unit_test(simulate_names_an_unreachable_broker_once_and_exits_3),
        cmocka_unit_test(simulate_stops_within_seconds_of_sigterm_while_connecting),
        cmocka_unit_test(simulate_stops_within_seconds_of_sigterm_while_flushing),
        cmocka_unit_test(alerts_without_brokers_says_no_brokers_at_once),
        cmocka_unit_test(consumers_without_brokers_say_no_brokers_and_exit_2),
        cmocka_unit_test(alerts_names_an_unreachable_broker_and_exits_1),
        cmocka_unit_test(alerts_stops_within_seconds_of_sigterm_while_connecting),
        cmocka_unit_test(alerts_stops_within_seconds_of_sigterm_while_following),
        cmocka_unit_test(alerts_to_the_end_without_brokers_says_no_brokers_at_once),
        cmocka_unit_test(alerts_to_the_end_names_an_unreachable_broker_and_exits_1),
        cmocka_unit_test(alerts_to_the_end_stops_within_seconds_of_sigterm_while_connecting),
        cmocka_unit_test(alerts_refuses_an_operation_that_is_not_a_code_like_stats),
        cmocka_unit_test(ignored_options_are_not_listed_and_are_refused),
        cmocka_unit_test(stats_names_unreachable_redis_and_exits_3),
        cmocka_unit_test(stats_country_that_never_reported_is_exit_1_with_a_message),
        cmocka_unit_test(stats_watch_redraws_in_place_and_fits_80x24),
        cmocka_unit_test(stats_watch_waits_for_redis_and_stops_on_sigterm),
        cmocka_unit_test(broker_replaces_a_stale_bootstrap_file_and_removes_its_own_at_exit),
        cmocka_unit_test(broker_wait_names_what_it_waited_for_and_stops_on_sigterm),
        cmocka_unit_test(
            csv_empty_trailing_cells_are_ignored_and_a_value_past_the_header_is_rejected),
        cmocka_unit_test(a_directory_as_rules_or_config_file_says_so),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
