/*
 * Unit tests for the Redis Cluster router's pure parts (lib/redis_cluster.c):
 * the key hash against the Redis Cluster specification's vectors, the
 * redis-cluster:// URL, CLUSTER SLOTS replies built by hand, and MOVED / ASK
 * redirections. No server is started.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/config.h"
#include "opstream/keys.h"
#include "opstream/redis_cluster.h"
#include "opstream/redis_link.h"

static int slot_of(const char *key) {
    return ops_redis_cluster_key_slot(key, strlen(key));
}

static int slot_of_bytes(const char *s) {
    return ops_redis_cluster_crc16(s, strlen(s)) & 16383;
}

static void crc16_is_xmodem_as_the_specification_says(void **state) {
    (void)state;
    assert_int_equal(ops_redis_cluster_crc16("123456789", 9), 0x31C3);
    assert_int_equal(ops_redis_cluster_crc16("", 0), 0);
    /* slots that redis-server 7 answers for CLUSTER KEYSLOT */
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("bar"), 5061);
    assert_int_equal(slot_of("123456789"), 0x31C3 & 16383);
}

static void hash_tags_follow_the_specification(void **state) {
    (void)state;
    /* the specification's examples */
    assert_int_equal(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    assert_int_equal(slot_of("{user1000}.following"), slot_of_bytes("user1000"));
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of_bytes("{bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of_bytes("bar"));
    assert_int_equal(slot_of("foo{}{bar}"), slot_of_bytes("foo{}{bar}"));
    /* no closing brace, or no opening one: the whole key */
    assert_int_equal(slot_of("foo{bar"), slot_of_bytes("foo{bar"));
    assert_int_equal(slot_of("foo}bar{"), slot_of_bytes("foo}bar{"));
    assert_int_equal(slot_of("{}"), slot_of_bytes("{}"));
    /* bytes after a NUL count (keys are binary) */
    assert_int_not_equal(ops_redis_cluster_key_slot("a\0b", 3), ops_redis_cluster_key_slot("a", 1));
}

/* Every key of one operation, the applied watermarks included, shares the
 * operation's slot; the offsets key of a group has the group's slot. */
static void keys_of_one_operation_share_its_slot(void **state) {
    char k[OPS_KEY_MAX];
    (void)state;
    int op = slot_of_bytes("LIBERTERRA-II");
    assert_true(ops_key_total("LIBERTERRA-II", k, sizeof k) > 0);
    assert_int_equal(slot_of(k), op);
    assert_true(ops_key_country("LIBERTERRA-II", "CM", k, sizeof k) > 0);
    assert_int_equal(slot_of(k), op);
    assert_true(ops_key_countries("LIBERTERRA-II", k, sizeof k) > 0);
    assert_int_equal(slot_of(k), op);
    assert_true(ops_key_alerts("LIBERTERRA-II", k, sizeof k) > 0);
    assert_int_equal(slot_of(k), op);
    assert_int_equal(slot_of("opstream:{LIBERTERRA-II}:applied:{opstream-count}"), op);
    assert_true(ops_key_offsets("opstream-count", k, sizeof k) > 0);
    assert_string_equal(k, "opstream:offsets:opstream-count"); /* no tag: the whole key */
    assert_int_equal(slot_of(k), slot_of_bytes(k));
}

static void good_cluster_urls_parse_into_seeds(void **state) {
    static const struct {
        const char *url, *user, *password;
        size_t n;
        const char *host[3];
        int port[3];
    } rows[] = {
        {"redis-cluster://10.0.0.1:7000", "", "", 1, {"10.0.0.1"}, {7000}},
        {"redis-cluster://a:7000,b:7001,c", "", "", 3, {"a", "b", "c"}, {7000, 7001, 6379}},
        {"REDIS-CLUSTER://h:1/", "", "", 1, {"h"}, {1}},
        {"redis-cluster://h:1/0", "", "", 1, {"h"}, {1}},
        {"redis-cluster://desk:pw@a:1,b:2", "desk", "pw", 2, {"a", "b"}, {1, 2}},
        {"redis-cluster://:p%2Cw%40x@a:1", "", "p,w@x", 1, {"a"}, {1}},
        {"redis-cluster://:p@ss@a:1,b:2", "", "p@ss", 2, {"a", "b"}, {1, 2}},
        {"redis-cluster://[::1]:7000,[fe80::1%25eth0]:7001",
         "",
         "",
         2,
         {"::1", "fe80::1%eth0"},
         {7000, 7001}},
        {"redis-cluster://a:1,b:2?user=ops&password=x%26y", "ops", "x&y", 2, {"a", "b"}, {1, 2}},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ops_redis_cluster_url_t u;
        char err[256] = "";
        if (ops_redis_cluster_url_parse(rows[i].url, &u, err, sizeof err) != 0)
            fail_msg("row %zu (%s): %s", i, rows[i].url, err);
        if (strcmp(u.user, rows[i].user) != 0 || strcmp(u.password, rows[i].password) != 0 ||
            u.n_seeds != rows[i].n)
            fail_msg("row %zu (%s): user '%s' password '%s' %zu seeds", i, rows[i].url, u.user,
                     u.password, u.n_seeds);
        for (size_t s = 0; s < u.n_seeds; s++)
            if (strcmp(u.seeds[s].host, rows[i].host[s]) != 0 || u.seeds[s].port != rows[i].port[s])
                fail_msg("row %zu (%s): seed %zu is %s:%d", i, rows[i].url, s, u.seeds[s].host,
                         u.seeds[s].port);
    }
}

static void bad_cluster_urls_are_refused_with_a_reason(void **state) {
    static const struct {
        const char *url, *reason;
    } rows[] = {
        {"redis-cluster://", "no seed node"},
        {"redis-cluster://u:p@", "no seed node"},
        {"redis-cluster:///0", "no seed node"},
        {"redis-cluster://a:1,", "empty seed node 2"},
        {"redis-cluster://a:1,,b:2", "empty seed node 2"},
        {"redis-cluster://,a:1", "empty seed node 1"},
        {"redis-cluster://a:1,b:0", "seed node 2 'b:0': port '0' is not a number in 1..65535"},
        {"redis-cluster://a:x", "seed node 1 'a:x': port 'x'"},
        {"redis-cluster://::1:7000", "IPv6 addresses go in brackets"},
        {"redis-cluster://a:1/3", "Redis Cluster has only db 0 (found '/3')"},
        {"redis-cluster://a:1?db=2", "Redis Cluster has only db 0"},
        {"redis-cluster://secret@a:1", "credentials without ':'"},
        {"redis-cluster://:p%zz@a:1", "bad percent-escape in password"},
        {"redis-cluster://a:1?timeout=5", "unknown URL parameter 'timeout'"},
        {"redis-cluster://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "more than 16 seed nodes"},
        {"redis://a:1", "expected a redis-cluster:// URL"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ops_redis_cluster_url_t u;
        char err[256] = "";
        if (ops_redis_cluster_url_parse(rows[i].url, &u, err, sizeof err) != -1)
            fail_msg("row %zu (%s) was accepted", i, rows[i].url);
        if (strstr(err, rows[i].reason) == NULL)
            fail_msg("row %zu (%s): error '%s' does not say '%s'", i, rows[i].url, err,
                     rows[i].reason);
    }
}

static void cluster_url_errors_never_show_the_password(void **state) {
    static const char *urls[] = {
        "redis-cluster://ops:TopSecret@a:99999", "redis-cluster://ops:TopSecret@a:1,b:x",
        "redis-cluster://:TopSecret@a:1/5",      "redis-cluster://a:1?password=TopSecret&bad=1",
        "redis-cluster://ops:TopSecret@a:1,,",
    };
    (void)state;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        ops_redis_cluster_url_t u;
        char err[256] = "";
        assert_int_equal(ops_redis_cluster_url_parse(urls[i], &u, err, sizeof err), -1);
        if (strstr(err, "TopSecret") != NULL)
            fail_msg("%s: error shows the password: %s", urls[i], err);
        assert_string_equal(u.password, "");
    }
}

/* The same URL is accepted wherever --redis, OPSTREAM_REDIS and
 * opstream.redis.url are read: the configuration's check and the link. */
static void config_and_link_accept_cluster_urls(void **state) {
    char err[256] = "";
    (void)state;
    ops_config_t *cfg = ops_config_new();
    assert_non_null(cfg);
    assert_int_equal(
        ops_config_set(cfg, "opstream.redis.url", "redis-cluster://a:7000,b:7001", err, sizeof err),
        0);
    assert_int_equal(
        ops_config_set(cfg, "opstream.redis.url", "redis-cluster://a:7000,", err, sizeof err), -1);
    assert_non_null(strstr(err, "empty seed node 2"));
    ops_config_destroy(cfg);

    ops_redis_link_t *l =
        ops_redis_link_new("redis-cluster://u:pw@127.0.0.1:1", NULL, 200, err, sizeof err);
    assert_non_null(l);
    assert_true(ops_redis_link_is_cluster(l));
    assert_non_null(ops_redis_link_cluster(l));
    /* nothing listens on port 1: the append says which seed it could not reach */
    const char *argv[] = {"PING"};
    assert_int_equal(ops_redis_link_append(l, "k", 1, argv, NULL, err, sizeof err), -1);
    if (strstr(err, "cannot load the slot map") == NULL || strstr(err, "127.0.0.1:1") == NULL)
        fail_msg("error: %s", err);
    assert_null(strstr(err, "pw"));
    ops_redis_link_destroy(l);

    l = ops_redis_link_new("redis://127.0.0.1:1", NULL, 200, err, sizeof err);
    assert_non_null(l);
    assert_false(ops_redis_link_is_cluster(l));
    assert_null(ops_redis_link_cluster(l));
    ops_redis_link_destroy(l);
    assert_null(ops_redis_link_new("redis-cluster://a:1,b:x", NULL, 200, err, sizeof err));
    assert_non_null(strstr(err, "seed node 2"));
}

/* ---- replies built by hand ------------------------------------------------- */

static redisReply *mk(int type) {
    redisReply *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->type = type;
    return r;
}

static redisReply *mk_str(const char *s) {
    redisReply *r = mk(REDIS_REPLY_STRING);
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *mk_int(long long v) {
    redisReply *r = mk(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static redisReply *mk_arr(size_t n, ...) {
    redisReply *r = mk(REDIS_REPLY_ARRAY);
    va_list ap;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof *r->element);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

/* [start, end, [host, port, id], [replica host, port, id]] */
static redisReply *slot_line(long long start, long long end, const char *host, long long port) {
    return mk_arr(4, mk_int(start), mk_int(end),
                  mk_arr(3, mk_str(host), mk_int(port), mk_str("0123abcd")),
                  mk_arr(3, mk_str("10.9.9.9"), mk_int(7999), mk_str("ffff")));
}

static void cluster_slots_replies_map_slots_to_primaries(void **state) {
    ops_redis_cluster_range_t *rg = NULL;
    size_t n = 0;
    char err[256] = "";
    (void)state;
    redisReply *r =
        mk_arr(4, slot_line(0, 5460, "10.0.0.1", 7000), slot_line(5461, 10922, "", 7001),
               slot_line(10923, 16000, "?", 7002), slot_line(16001, 16383, "::1", 7003));
    assert_int_equal(ops_redis_cluster_slots_parse(r, "10.0.0.5", &rg, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(rg[0].start, 0);
    assert_int_equal(rg[0].end, 5460);
    assert_string_equal(rg[0].host, "10.0.0.1");
    assert_int_equal(rg[0].port, 7000);
    assert_string_equal(rg[1].host, "10.0.0.5"); /* "" is the node asked */
    assert_string_equal(rg[2].host, "10.0.0.5"); /* "?" likewise */
    assert_int_equal(rg[2].end, 16000);
    assert_string_equal(rg[3].host, "::1");
    free(rg);
    freeReplyObject(r);

    r = mk_arr(0);
    assert_int_equal(ops_redis_cluster_slots_parse(r, "h", &rg, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    free(rg);
    freeReplyObject(r);
}

static void malformed_cluster_slots_replies_are_refused(void **state) {
    ops_redis_cluster_range_t *rg = NULL;
    size_t n = 0;
    char err[256] = "";
    redisReply *bad[] = {
        mk_arr(1, slot_line(10, 5, "h", 1)),                                /* end < start */
        mk_arr(1, slot_line(0, 16384, "h", 1)),                             /* past the last slot */
        mk_arr(1, slot_line(0, 1, "h", 0)),                                 /* port 0 */
        mk_arr(1, mk_arr(2, mk_int(0), mk_int(1))),                         /* no node */
        mk_arr(1, mk_arr(3, mk_int(0), mk_int(1), mk_arr(1, mk_str("h")))), /* no port */
        mk_arr(1, mk_str("x")),
        mk_str("x"),
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ops_redis_cluster_slots_parse(bad[i], "h", &rg, &n, err, sizeof err) != -1)
            fail_msg("reply %zu was accepted", i);
        assert_null(rg);
        assert_non_null(strstr(err, "CLUSTER SLOTS"));
        freeReplyObject(bad[i]);
    }
    redisReply *e = mk(REDIS_REPLY_ERROR);
    e->str = strdup("ERR This instance has cluster support disabled");
    e->len = strlen(e->str);
    assert_int_equal(ops_redis_cluster_slots_parse(e, "h", &rg, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "cluster support disabled"));
    freeReplyObject(e);
}

static void redirections_are_read_from_error_replies(void **state) {
    static const struct {
        const char *err;
        ops_redis_cluster_redirect_t kind;
        int slot;
        const char *host;
        int port;
    } rows[] = {
        {"MOVED 3999 127.0.0.1:6381", OPS_REDIS_CLUSTER_MOVED, 3999, "127.0.0.1", 6381},
        {"ASK 3999 127.0.0.1:6381", OPS_REDIS_CLUSTER_ASK, 3999, "127.0.0.1", 6381},
        {"MOVED 0 ::1:7000", OPS_REDIS_CLUSTER_MOVED, 0, "::1", 7000},
        {"MOVED 16383 [::1]:7000", OPS_REDIS_CLUSTER_MOVED, 16383, "::1", 7000},
        {"MOVED 12 :7005", OPS_REDIS_CLUSTER_MOVED, 12, "10.0.0.5", 7005}, /* the node asked */
        {"ASK 7 redis-3.ops.example:6379", OPS_REDIS_CLUSTER_ASK, 7, "redis-3.ops.example", 6379},
        {"MOVED 16384 h:1", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"MOVED -1 h:1", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"MOVED 12 h:0", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"MOVED 12 h", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"MOVED 12", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"MOVED x h:1", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"MOVED 12 h:1x", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"ASKING", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"TRYAGAIN Multiple keys request during rehashing of slot", OPS_REDIS_CLUSTER_NO_REDIRECT,
         0, "", 0},
        {"CLUSTERDOWN The cluster is down", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
        {"ERR unknown command", OPS_REDIS_CLUSTER_NO_REDIRECT, 0, "", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char host[64] = "";
        int slot = 0, port = 0;
        ops_redis_cluster_redirect_t k = ops_redis_cluster_redirect_parse(
            rows[i].err, "10.0.0.5", &slot, host, sizeof host, &port);
        if (k != rows[i].kind)
            fail_msg("row %zu (%s): kind %d", i, rows[i].err, (int)k);
        if (k == OPS_REDIS_CLUSTER_NO_REDIRECT)
            continue;
        if (slot != rows[i].slot || strcmp(host, rows[i].host) != 0 || port != rows[i].port)
            fail_msg("row %zu (%s): slot %d host '%s' port %d", i, rows[i].err, slot, host, port);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc16_is_xmodem_as_the_specification_says),
        cmocka_unit_test(hash_tags_follow_the_specification),
        cmocka_unit_test(keys_of_one_operation_share_its_slot),
        cmocka_unit_test(good_cluster_urls_parse_into_seeds),
        cmocka_unit_test(bad_cluster_urls_are_refused_with_a_reason),
        cmocka_unit_test(cluster_url_errors_never_show_the_password),
        cmocka_unit_test(config_and_link_accept_cluster_urls),
        cmocka_unit_test(cluster_slots_replies_map_slots_to_primaries),
        cmocka_unit_test(malformed_cluster_slots_replies_are_refused),
        cmocka_unit_test(redirections_are_read_from_error_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
