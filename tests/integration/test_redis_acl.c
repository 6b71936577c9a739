/*
 * config/redis-acl.conf against a real redis-server: the file is rendered
 * the way docker-compose.yml does it (comment and blank lines stripped,
 * password hashes filled in) and loaded with --aclfile. The default user is
 * off, the counter user reaches only opstream:* keys with the commands it
 * needs, the query user only reads; and opstream-count, opstream-alert and
 * opstream-stats work end to end as those users, with passwords from files.
 */
#include "test_count_common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define COUNT_PASS "c0unt-s3cret-Weka"
#define QUERY_PASS "qu3ry-s3cret-Weka"
#define OP "WEKA-II"

typedef struct acl_redis {
    harness_proc_t *proc;
    int port;
    char dir[HARNESS_PATH_MAX];
    char count_pass_file[HARNESS_PATH_MAX];
    char query_pass_file[HARNESS_PATH_MAX];
} acl_redis_t;

static acl_redis_t g_acl;

/* SHA-256 of s as 64 hex digits, by sha256sum (the way the compose file
 * does it), so the test does not trust its own hashing. */
static int sha256_hex(const char *s, char out[65]) {
    char path[HARNESS_PATH_MAX], cmd[2 * HARNESS_PATH_MAX];
    FILE *fp;
    int rc = -1;

    harness_path(path, sizeof path, "sha-input");
    if (harness_write_file(path, s, (size_t)-1) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "sha256sum < '%s'", path);
    fp = popen(cmd, "r");
    if (fp != NULL && fscanf(fp, "%64s", out) == 1 && strlen(out) == 64)
        rc = 0;
    if (fp != NULL)
        pclose(fp);
    return rc;
}

/* The shipped file with comment and blank lines removed and the
 * placeholders replaced. Returns a malloc'd text. */
static char *render_acl(void) {
    char path[HARNESS_PATH_MAX], count_sha[65], query_sha[65];
    char *src, *out, *line, *save = NULL;
    size_t cap, n = 0;

    snprintf(path, sizeof path, "%s/config/redis-acl.conf", harness_src_dir());
    src = harness_read_file(path, NULL);
    assert_non_null(src);
    assert_int_equal(sha256_hex(COUNT_PASS, count_sha), 0);
    assert_int_equal(sha256_hex(QUERY_PASS, query_sha), 0);
    cap = strlen(src) + 256;
    out = calloc(1, cap);
    assert_non_null(out);
    for (line = strtok_r(src, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        const char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (line[0] == '#' || *p == '\0')
            continue;
        for (p = line; *p; p++) {
            if (strncmp(p, "@COUNT_SHA256@", 14) == 0 || strncmp(p, "@QUERY_SHA256@", 14) == 0) {
                memcpy(out + n, p[1] == 'C' ? count_sha : query_sha, 64);
                n += 64;
                p += 13;
            } else {
                out[n++] = *p;
            }
        }
        out[n++] = '\n';
        assert_true(n + 128 < cap);
    }
    free(src);
    return out;
}

static int free_port(void) {
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* A connection authenticated as user (NULL: none at all). */
static redisContext *acl_connect(const char *user, const char *pass) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_acl.port, tv);

    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (user != NULL) {
        redisReply *r = redisCommand(c, "AUTH %s %s", user, pass);
        bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static bool acl_redis_up(void *arg) {
    redisContext *c = acl_connect("opstream-query", QUERY_PASS);

    (void)arg;
    if (c == NULL)
        return false;
    redisFree(c);
    return true;
}

static int acl_group_setup(void **state) {
    char acl_path[HARNESS_PATH_MAX + 16], port[16], log[HARNESS_PATH_MAX + 16];
    char *acl;

    if (harness_group_setup(state) != 0)
        return -1;
    g_acl.port = free_port();
    snprintf(g_acl.dir, sizeof g_acl.dir, "%s/redis-acl", harness_tmpdir());
    if (mkdir(g_acl.dir, 0700) != 0)
        return -1;
    acl = render_acl();
    snprintf(acl_path, sizeof acl_path, "%s/users.acl", g_acl.dir);
    if (harness_write_file(acl_path, acl, (size_t)-1) != 0)
        return -1;
    free(acl);
    /* Password files end with a newline, as `echo` or an editor leaves them. */
    harness_path(g_acl.count_pass_file, sizeof g_acl.count_pass_file, "redis-count.password");
    harness_path(g_acl.query_pass_file, sizeof g_acl.query_pass_file, "redis-query.password");
    if (harness_write_file(g_acl.count_pass_file, COUNT_PASS "\n", (size_t)-1) != 0 ||
        harness_write_file(g_acl.query_pass_file, QUERY_PASS "\n", (size_t)-1) != 0)
        return -1;
    snprintf(port, sizeof port, "%d", g_acl.port);
    snprintf(log, sizeof log, "%s/redis.log", g_acl.dir);
    const char *argv[] = {
        "redis-server", "--port",    port, "--bind",    "127.0.0.1", "--dir",
        g_acl.dir,      "--save",    "",   "--aclfile", acl_path,    "--maxmemory-policy",
        "noeviction",   "--logfile", log,  NULL};
    g_acl.proc = harness_spawn(argv, NULL, 0);
    if (g_acl.proc == NULL || harness_wait_until(acl_redis_up, NULL, 10000) != 0)
        return -1;
    return 0;
}

static int acl_group_teardown(void **state) {
    harness_proc_free(g_acl.proc);
    return harness_group_teardown(state);
}

/* Runs a command as user and returns the reply (never NULL). */
static redisReply *as_user(const char *user, const char *pass, const char *fmt, ...) {
    redisContext *c = acl_connect(user, pass);
    redisReply *r;
    va_list ap;

    assert_non_null(c);
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    redisFree(c);
    return r;
}

static void expect_noperm(redisReply *r, const char *what) {
    if (r->type != REDIS_REPLY_ERROR || strstr(r->str, "NOPERM") == NULL)
        fail_msg("%s: expected NOPERM, got type %d '%s'", what, r->type, r->str ? r->str : "");
    freeReplyObject(r);
}

static void expect_ok(redisReply *r, const char *what) {
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", what, r->str);
    freeReplyObject(r);
}

#define COUNT_USER "opstream-count", COUNT_PASS
#define QUERY_USER "opstream-query", QUERY_PASS

static void default_user_is_off(void **state) {
    redisContext *c = acl_connect(NULL, NULL);
    redisReply *r;

    (void)state;
    assert_non_null(c);
    r = redisCommand(c, "GET opstream:operations");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "NOAUTH"));
    freeReplyObject(r);
    r = redisCommand(c, "AUTH default %s", "");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
    assert_null(acl_connect("opstream-count", "wrong-password"));
}

static void counter_user_touches_only_opstream_keys_with_its_commands(void **state) {
    (void)state;
    expect_ok(as_user(COUNT_USER, "HINCRBY opstream:{ACL}:total arrests 1"), "HINCRBY");
    expect_ok(as_user(COUNT_USER, "XADD opstream:{ACL}:alerts * a 1"), "XADD");
    expect_ok(as_user(COUNT_USER, "EVAL %s 0", "return redis.call('HGET', 'opstream:x', 'f')"),
              "EVAL on opstream:*");
    expect_noperm(as_user(COUNT_USER, "SET other:key 1"), "SET outside opstream:*");
    expect_noperm(as_user(COUNT_USER, "HGETALL session:1"), "HGETALL outside opstream:*");
    expect_noperm(as_user(COUNT_USER, "FLUSHALL"), "FLUSHALL");
    expect_noperm(as_user(COUNT_USER, "CONFIG SET appendonly no"), "CONFIG SET");
    expect_noperm(as_user(COUNT_USER, "KEYS *"), "KEYS");
    expect_noperm(as_user(COUNT_USER, "ACL LIST"), "ACL LIST");
    expect_noperm(as_user(COUNT_USER, "SHUTDOWN"), "SHUTDOWN");
    expect_noperm(as_user(COUNT_USER, "MODULE LIST"), "MODULE");
    /* A script runs with its caller's permissions. */
    redisReply *r = as_user(COUNT_USER, "EVAL %s 0", "return redis.call('SET', 'other:key', '1')");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_true(strstr(r->str, "NOPERM") != NULL || strstr(r->str, "permission") != NULL ||
                strstr(r->str, "can't access") != NULL);
    freeReplyObject(r);
}

static void query_user_only_reads(void **state) {
    (void)state;
    expect_ok(as_user(QUERY_USER, "HGETALL opstream:{ACL}:total"), "HGETALL");
    expect_ok(as_user(QUERY_USER, "SMEMBERS opstream:operations"), "SMEMBERS");
    expect_ok(as_user(QUERY_USER, "XREVRANGE opstream:{ACL}:alerts + - COUNT 5"), "XREVRANGE");
    expect_noperm(as_user(QUERY_USER, "HINCRBY opstream:{ACL}:total arrests 1"), "HINCRBY");
    expect_noperm(as_user(QUERY_USER, "DEL opstream:{ACL}:total"), "DEL");
    expect_noperm(as_user(QUERY_USER, "XADD opstream:{ACL}:alerts * a 1"), "XADD");
    expect_noperm(as_user(QUERY_USER, "EVAL %s 0", "return 1"), "EVAL");
    expect_noperm(as_user(QUERY_USER, "GET other:key"), "GET outside opstream:*");
    expect_noperm(as_user(QUERY_USER, "FLUSHALL"), "FLUSHALL");
    expect_noperm(as_user(QUERY_USER, "CONFIG GET *"), "CONFIG GET");
    /* KEYS takes no key argument for ~opstream:* to limit: the query user
     * lists every key name, as docs/security.md says. */
    redisReply *r = as_user(QUERY_USER, "KEYS *");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

/* ---- end to end ----------------------------------------------------------- */

/* tc_setup without the FLUSHALL (this Redis has no default user): a fresh
 * broker, a producer and a codec. */
static int setup_broker_and_producer(void) {
    char err[256];

    g_broker = harness_broker_start(NULL);
    g_codec = ops_codec_new(NULL, err, sizeof err);
    if (g_broker == NULL || g_codec == NULL)
        return -1;
    return tp_producer_start();
}

static long long hget_ll(const char *key, const char *field) {
    redisReply *r = as_user(QUERY_USER, "HGET %s %s", key, field);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;

    freeReplyObject(r);
    return v;
}

static int64_t acl_offsets_sum(const char *group) {
    redisReply *r = as_user(QUERY_USER, "HVALS opstream:offsets:%s", group);
    int64_t sum = 0;

    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        sum += strtoll(r->element[i]->str, NULL, 10);
    freeReplyObject(r);
    return sum;
}

typedef struct want {
    const char *group;
    int64_t n;
} want_t;

static bool group_consumed(void *arg) {
    const want_t *w = arg;
    return acl_offsets_sum(w->group) == w->n;
}

static bool alert_mirrored(void *arg) {
    redisReply *r = as_user(QUERY_USER, "XLEN opstream:{%s}:alerts", (const char *)arg);
    bool yes = r->type == REDIS_REPLY_INTEGER && r->integer >= 1;

    freeReplyObject(r);
    return yes;
}

static void consumers_and_stats_work_end_to_end_as_their_acl_users(void **state) {
    char url[128], rules[HARNESS_PATH_MAX], env_count[HARNESS_PATH_MAX + 40],
        env_query[HARNESS_PATH_MAX + 40], key[OPS_KEY_MAX], want_s[32];
    uint64_t rng = 31;
    int64_t sums[OPS_METRIC_COUNT] = {0};
    const int n = 300;
    int64_t alerts = 0;

    (void)state;
    assert_int_equal(setup_broker_and_producer(), 0);
    for (int i = 0; i < n; i++) {
        ops_event_t ev = tc_event(&rng, OP, i, tc_wall_ms() - 120000);
        if (i == n / 2) { /* one raid the alert rule fires on */
            ev.kind = OPS_KIND_RESCUE;
            ev.count = 250;
            ev.minors = 40;
            ev.site = OPS_SITE_SCAM_CENTRE;
        }
        int64_t v[OPS_METRIC_COUNT];
        alerts += ev.kind == OPS_KIND_RESCUE && ev.count >= 200;
        ops_event_metrics(&ev, v);
        for (int k = 0; k < OPS_METRIC_COUNT; k++)
            sums[k] += v[k];
        tc_produce_event(&ev);
    }
    tc_flush();
    harness_path(rules, sizeof rules, "acl-rules.conf");
    assert_int_equal(harness_write_file(rules,
                                        "[rule mass-rescue]\nkind = rescue\nwhen = victims >= 200\n"
                                        "severity = CRITICAL\n",
                                        (size_t)-1),
                     0);
    /* The user in the URL, its password only in a file. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?user=opstream-count", g_acl.port);
    snprintf(env_count, sizeof env_count, "OPSTREAM_REDIS_PASSWORD_FILE=%s", g_acl.count_pass_file);
    const char *env[] = {env_count, NULL};
    const char *count_argv[] = {"opstream-count", "-b", g_broker->bootstrap, "--redis", url, NULL};
    const char *alert_argv[] = {
        "opstream-alert", "-b", g_broker->bootstrap, "--redis", url, "--rules", rules, NULL};
    harness_proc_t *count = harness_spawn(count_argv, env, 0);
    harness_proc_t *alert = harness_spawn(alert_argv, env, 0);
    assert_non_null(count);
    assert_non_null(alert);
    want_t w = {"opstream-count", tc_topic_messages()};
    assert_int_equal(w.n, n);
    assert_int_equal(harness_wait_until(group_consumed, &w, 60000), 0);
    assert_int_equal(harness_wait_until(alert_mirrored, (void *)OP, 60000), 0);
    want_t wa = {"opstream-alert", n};
    assert_int_equal(harness_wait_until(group_consumed, &wa, 60000), 0);
    char *err = harness_proc_stderr(count);
    assert_null(strstr(err, "NOPERM"));
    free(err);
    err = harness_proc_stderr(alert);
    assert_null(strstr(err, "NOPERM"));
    free(err);
    assert_int_equal(harness_proc_stop(count, 20000), 0);
    assert_int_equal(harness_proc_stop(alert, 20000), 0);
    harness_proc_free(count);
    harness_proc_free(alert);

    snprintf(key, sizeof key, "opstream:{%s}:total", OP);
    for (int k = 0; k < OPS_METRIC_COUNT; k++)
        assert_int_equal(hget_ll(key, ops_metric_name((ops_metric_t)k)), sums[k]);
    assert_int_equal(harness_topic_count(g_broker->bootstrap, "opstream.alerts", 10000), alerts);
    redisReply *r = as_user(QUERY_USER, "XLEN opstream:{%s}:alerts", OP);
    assert_int_equal(r->integer, alerts); /* mirrored once each */
    freeReplyObject(r);

    /* opstream-stats as the read-only user. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?user=opstream-query", g_acl.port);
    snprintf(env_query, sizeof env_query, "OPSTREAM_REDIS_PASSWORD_FILE=%s", g_acl.query_pass_file);
    const char *qenv[] = {env_query, NULL};
    const char *stats_argv[] = {"opstream-stats", "--redis", url, OP, "--json", NULL};
    harness_proc_t *stats = harness_spawn(stats_argv, qenv, 0);
    assert_non_null(stats);
    assert_int_equal(harness_proc_wait(stats, 20000), 0);
    char *out = harness_proc_stdout(stats);
    err = harness_proc_stderr(stats);
    if (harness_proc_exit_code(stats) != 0)
        fail_msg("opstream-stats: exit %d: %s", harness_proc_exit_code(stats), err);
    snprintf(want_s, sizeof want_s, "%lld", (long long)sums[OPS_METRIC_VICTIMS]);
    assert_non_null(strstr(out, want_s));
    free(out);
    free(err);
    harness_proc_free(stats);
    tc_teardown(NULL);
    ops_codec_destroy(g_codec);
    g_codec = NULL;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_user_is_off),
        cmocka_unit_test(counter_user_touches_only_opstream_keys_with_its_commands),
        cmocka_unit_test(query_user_only_reads),
        cmocka_unit_test(consumers_and_stats_work_end_to_end_as_their_acl_users),
    };
    return cmocka_run_group_tests(tests, acl_group_setup, acl_group_teardown);
}
