/*
 * Unit tests for ops_redis_url_parse (lib/redis.c): a table of URLs that
 * must parse to given parts and a table that must fail with a reason, plus
 * the connect path's password-file and unreachable-server errors. No
 * server is started.
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

#include "opstream/redis.h"

static void good_urls_parse_into_their_parts(void **state) {
    static const struct {
        const char *url;
        const char *host;
        int port;
        const char *unix_path, *user, *password;
        int db;
    } rows[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, "", "", "", 0},
        {"redis://localhost", "localhost", 6379, "", "", "", 0},
        {"redis://redis.ops.example:6380/3", "redis.ops.example", 6380, "", "", "", 3},
        {"redis://localhost/", "localhost", 6379, "", "", "", 0},
        {"REDIS://Localhost:1", "Localhost", 1, "", "", "", 0},
        {"redis://:s3cret@10.0.0.5:6379/2", "10.0.0.5", 6379, "", "", "s3cret", 2},
        {"redis://desk:pw@h:65535/15", "h", 65535, "", "desk", "pw", 15},
        {"redis://[::1]:6390/1", "::1", 6390, "", "", "", 1},
        {"redis://[fe80::1%25eth0]", "fe80::1%eth0", 6379, "", "", "", 0},
        {"redis://u%40x:p%3Aa%2Fss%25@h", "h", 6379, "", "u@x", "p:a/ss%", 0},
        {"redis://:p@ss@h/4", "h", 6379, "", "", "p@ss", 4}, /* last '@' ends userinfo */
        {"redis://:@h", "h", 6379, "", "", "", 0},
        {"redis:///5", "127.0.0.1", 6379, "", "", "", 5},
        {"redis://h?db=7", "h", 6379, "", "", "", 7},
        {"redis://h/1?password=x%26y&user=ops", "h", 6379, "", "ops", "x&y", 1},
        {"unix:///run/redis/redis.sock", "", 6379, "/run/redis/redis.sock", "", "", 0},
        {"unix:///tmp/r.sock?db=9", "", 6379, "/tmp/r.sock", "", "", 9},
        {"redis+unix:///tmp/my%20redis.sock?db=2", "", 6379, "/tmp/my redis.sock", "", "", 2},
        {"unix://:pw@/tmp/r.sock", "", 6379, "/tmp/r.sock", "", "pw", 0},
        {"redis://h/2147483647", "h", 6379, "", "", "", 2147483647},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ops_redis_url_t u;
        char err[256] = "";
        if (ops_redis_url_parse(rows[i].url, &u, err, sizeof err) != 0)
            fail_msg("row %zu (%s): %s", i, rows[i].url, err);
        if (strcmp(u.host, rows[i].host) != 0 || u.port != rows[i].port ||
            strcmp(u.unix_path, rows[i].unix_path) != 0 || strcmp(u.user, rows[i].user) != 0 ||
            strcmp(u.password, rows[i].password) != 0 || u.db != rows[i].db)
            fail_msg("row %zu (%s): host '%s' port %d unix '%s' user '%s' password '%s' db %d", i,
                     rows[i].url, u.host, u.port, u.unix_path, u.user, u.password, u.db);
    }
}

typedef struct refusal {
    const char *url;
    const char *reason; /* substring of the error */
} refusal_t;

/* Each URL is refused, with an error that says the reason. */
static void assert_refused(const refusal_t *rows, size_t n) {
    for (size_t i = 0; i < n; i++) {
        ops_redis_url_t u;
        char err[256] = "";
        if (ops_redis_url_parse(rows[i].url, &u, err, sizeof err) != -1)
            fail_msg("row %zu (%s) was accepted", i, rows[i].url);
        if (!strstr(err, rows[i].reason))
            fail_msg("row %zu (%s): error '%s' does not say '%s'", i, rows[i].url, err,
                     rows[i].reason);
    }
}

static void bad_urls_are_refused_with_a_reason(void **state) {
    static const refusal_t rows[] = {
        {"", "empty Redis URL"},
        {"localhost:6379",
         "expected redis://, unix://, redis+unix://, redis-sentinel:// or redis-cluster://"},
        {"redis-cluster://h:7000", "reached through the Redis link"},
        {"http://localhost", "expected redis://"},
        {"rediss://h:6379", "TLS"},
        {"redis://h:0", "port '0' is not a number in 1..65535"},
        {"redis://h:65536", "port '65536'"},
        {"redis://h:", "port ''"},
        {"redis://h:63x9", "port '63x9'"},
        {"redis://h/-1", "db '-1'"},
        {"redis://h/2147483648", "db '2147483648'"},
        {"redis://h/1/2", "db '1/2'"},
        {"redis://h/x", "db 'x'"},
        {"redis://h?db=", "db ''"},
        {"redis://::1:6379", "IPv6 addresses go in brackets"},
        {"redis://[::1", "missing ']'"},
        {"redis://[]:6379", "empty IPv6 address"},
        {"redis://[::1]x", "after IPv6 address"},
        {"redis://secret@h", "credentials without ':'"},
        {"redis://:p%zz@h", "bad percent-escape in password"},
        {"redis://:p%4@h", "bad percent-escape in password"},
        {"redis://u%00:p@h", "%00 is not allowed in user"},
        {"redis://h?timeout=5", "unknown URL parameter 'timeout'"},
        {"redis://h?db", "has no '='"},
        {"unix://", "absolute socket path"},
        {"unix:///", "empty socket path"},
        {"unix://relative.sock", "absolute socket path"},
        {"unix:///tmp/r.sock?db=x", "db 'x'"},
    };
    (void)state;
    assert_refused(rows, sizeof(rows) / sizeof(rows[0]));
}

static void errors_never_show_the_password(void **state) {
    ops_redis_url_t u;
    char err[256] = "";
    (void)state;
    assert_int_equal(ops_redis_url_parse("redis://:TopSecret@h:99999", &u, err, sizeof err), -1);
    assert_null(strstr(err, "TopSecret"));
    assert_string_equal(u.password, "");
    assert_int_equal(ops_redis_url_parse("redis+unix://:TopSecret@/s?bad=1", &u, err, sizeof err),
                     -1);
    assert_null(strstr(err, "TopSecret"));
}

static void too_long_parts_are_refused_not_truncated(void **state) {
    char url[700];
    ops_redis_url_t u;
    char err[256] = "";
    (void)state;
    memset(url, 0, sizeof url);
    strcpy(url, "redis://");
    memset(url + 8, 'h', 300);
    assert_int_equal(ops_redis_url_parse(url, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "host is too long"));
    strcpy(url, "redis://:");
    memset(url + 9, 'p', 300);
    strcpy(url + 309, "@h");
    assert_int_equal(ops_redis_url_parse(url, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "password is too long"));
}

static void unreadable_password_file_is_named_in_the_error(void **state) {
    char err[512] = "";
    (void)state;
    redisContext *c =
        ops_redis_connect("redis://127.0.0.1:1/0", "/nonexistent/redis.pw", 200, err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, "redis password file '/nonexistent/redis.pw'"));
}

static void empty_password_file_is_refused(void **state) {
    char path[] = "/tmp/opstream-test-redis-pw.XXXXXX";
    char err[512] = "";
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    redisContext *c = ops_redis_connect("redis://127.0.0.1:1/0", path, 200, err, sizeof err);
    unlink(path);
    assert_null(c);
    assert_non_null(strstr(err, "first line is empty"));
}

/* Port 1 on the loopback refuses at once: the error says where. */
static void refused_connection_names_the_server(void **state) {
    char err[512] = "";
    (void)state;
    redisContext *c = ops_redis_connect("redis://127.0.0.1:1/0", NULL, 500, err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, "redis 127.0.0.1:1: "));
    c = ops_redis_connect("unix:///nonexistent/redis.sock", NULL, 500, err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, "redis /nonexistent/redis.sock: "));
    c = ops_redis_connect("bogus", NULL, 500, err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, "expected redis://"));
}

static void sentinel_urls_parse_into_sentinels_and_master(void **state) {
    static const struct {
        const char *url;
        const char *master, *user, *password;
        int db;
        size_t n;
        const char *hosts[3];
        int ports[3];
        const char *suser, *spwfile;
    } rows[] = {
        {"redis-sentinel://127.0.0.1#mymaster", "mymaster", "", "", 0, 1, {"127.0.0.1"}, {26379},
         "", ""},
        {"redis-sentinel://a:26380,b,[::1]:5#m", "m", "", "", 0, 3, {"a", "b", "::1"},
         {26380, 26379, 5}, "", ""},
        {"REDIS-SENTINEL://ops:p%23w@s1:1,s2:2/3#ops-main", "ops-main", "ops", "p#w", 3, 2,
         {"s1", "s2"}, {1, 2}, "", ""},
        {"redis-sentinel://:pw@s/2?user=desk#m%2Dx", "m-x", "desk", "pw", 2, 1, {"s"}, {26379},
         "", ""},
        {"redis-sentinel://s?db=4&sentinel_user=sent&sentinel_password_file=/run/s%20p#m", "m",
         "", "", 4, 1, {"s"}, {26379}, "sent", "/run/s p"},
        {"redis-sentinel://:p@ss@s#m", "m", "", "p@ss", 0, 1, {"s"}, {26379}, "", ""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ops_redis_url_t u;
        char err[256] = "";
        if (ops_redis_url_parse(rows[i].url, &u, err, sizeof err) != 0)
            fail_msg("row %zu (%s): %s", i, rows[i].url, err);
        assert_true(u.sentinel);
        if (strcmp(u.master, rows[i].master) != 0 || strcmp(u.user, rows[i].user) != 0 ||
            strcmp(u.password, rows[i].password) != 0 || u.db != rows[i].db ||
            u.nsentinels != rows[i].n || strcmp(u.sentinel_user, rows[i].suser) != 0 ||
            strcmp(u.sentinel_password_file, rows[i].spwfile) != 0)
            fail_msg("row %zu (%s): master '%s' user '%s' password '%s' db %d, %zu sentinels, "
                     "sentinel_user '%s' file '%s'",
                     i, rows[i].url, u.master, u.user, u.password, u.db, u.nsentinels,
                     u.sentinel_user, u.sentinel_password_file);
        for (size_t k = 0; k < u.nsentinels; k++)
            if (strcmp(u.sentinels[k].host, rows[i].hosts[k]) != 0 ||
                u.sentinels[k].port != rows[i].ports[k])
                fail_msg("row %zu (%s): sentinel %zu is %s:%d", i, rows[i].url, k,
                         u.sentinels[k].host, u.sentinels[k].port);
    }
}

static void bad_sentinel_urls_are_refused_with_a_reason(void **state) {
    static const refusal_t rows[] = {
        {"redis-sentinel://s", "no master name: end the URL with #MASTER"},
        {"redis-sentinel://s#", "no master name"},
        {"redis-sentinel://#m", "no sentinel address"},
        {"redis-sentinel://a,,b#m", "empty address in the sentinel list"},
        {"redis-sentinel://a,#m", "empty address in the sentinel list"},
        {"redis-sentinel://,a#m", "empty address in the sentinel list"},
        {"redis-sentinel://a:0#m", "port '0' is not a number in 1..65535"},
        {"redis-sentinel://a,b:x#m", "port 'x'"},
        {"redis-sentinel://a/x#m", "db 'x'"},
        {"redis-sentinel://a#m%zz", "bad percent-escape in master name"},
        {"redis-sentinel://a#m m", "master name after '#' holds a space"},
        {"redis-sentinel://secret@a#m", "credentials without ':'"},
        {"redis-sentinel://a?timeout=1#m", "unknown URL parameter 'timeout'"},
        {"redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q#m", "more than 16 sentinels"},
        {"redis://h?sentinel_user=x", "'sentinel_user' is only for redis-sentinel://"},
    };
    (void)state;
    assert_refused(rows, sizeof(rows) / sizeof(rows[0]));
}

/* An unescaped '#' in a password must not leak through the master name. */
static void sentinel_errors_never_show_the_password(void **state) {
    ops_redis_url_t u;
    char err[256] = "";
    (void)state;
    assert_int_equal(ops_redis_url_parse("redis-sentinel://:Top#Secret@a", &u, err, sizeof err),
                     -1);
    assert_null(strstr(err, "Secret"));
    assert_string_equal(u.password, "");
    assert_int_equal(ops_redis_url_parse("redis-sentinel://:TopSecret@a:99999#m", &u, err,
                                         sizeof err),
                     -1);
    assert_null(strstr(err, "TopSecret"));
}

/* Nobody listens on ports 1 and 2: the error names the master and each
 * sentinel tried, with why. */
static void unreachable_sentinels_are_each_named(void **state) {
    char err[1024] = "";
    (void)state;
    redisContext *c = ops_redis_connect("redis-sentinel://:TopSecret@127.0.0.1:1,127.0.0.1:2#mm",
                                        NULL, 300, err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, "redis-sentinel master 'mm': no primary found through 2 sentinels"));
    assert_non_null(strstr(err, "127.0.0.1:1 ("));
    assert_non_null(strstr(err, "127.0.0.1:2 ("));
    assert_null(strstr(err, "TopSecret"));
}

/* Replies after which a connection must find the primary again, also when a
 * script or an error message quotes them. */
static void failover_replies_ask_for_a_new_connection(void **state) {
    static const struct {
        const char *text;
        bool reconnect;
    } rows[] = {
        {"READONLY You can't write against a read only replica.", true},
        {"READONLY You can't write against a read only replica. script: 3df9, on @user_script:1.",
         true},
        {"LOADING Redis is loading the dataset in memory", true},
        {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", true},
        {"redis: counter script: READONLY You can't write against a read only replica.", true},
        {"NOSCRIPT No matching script. Please use EVAL.", false},
        {"WRONGTYPE Operation against a key holding the wrong kind of value", false},
        {"ERR unknown command", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        redisReply r = {.type = REDIS_REPLY_ERROR, .str = (char *)rows[i].text};
        if (ops_redis_error_wants_reconnect(rows[i].text) != rows[i].reconnect ||
            ops_redis_reply_wants_reconnect(&r) != rows[i].reconnect)
            fail_msg("row %zu (%s): not %s", i, rows[i].text,
                     rows[i].reconnect ? "a reconnect" : "an ordinary error");
    }
    redisReply ok = {.type = REDIS_REPLY_STATUS, .str = (char *)"READONLY "};
    assert_false(ops_redis_reply_wants_reconnect(&ok));
    assert_false(ops_redis_reply_wants_reconnect(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_urls_parse_into_their_parts),
        cmocka_unit_test(bad_urls_are_refused_with_a_reason),
        cmocka_unit_test(errors_never_show_the_password),
        cmocka_unit_test(too_long_parts_are_refused_not_truncated),
        cmocka_unit_test(unreadable_password_file_is_named_in_the_error),
        cmocka_unit_test(empty_password_file_is_refused),
        cmocka_unit_test(refused_connection_names_the_server),
        cmocka_unit_test(sentinel_urls_parse_into_sentinels_and_master),
        cmocka_unit_test(bad_sentinel_urls_are_refused_with_a_reason),
        cmocka_unit_test(sentinel_errors_never_show_the_password),
        cmocka_unit_test(unreachable_sentinels_are_each_named),
        cmocka_unit_test(failover_replies_ask_for_a_new_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
