/*
 * Integration tests of the Redis link over a real Redis Cluster (three
 * primaries, three replicas; tests/integration/cluster_harness.h): commands
 * pipelined to every one of the 16384 slots get their own replies in order;
 * the counts stay exact while redis-cli reshards 100 slots under them (MOVED
 * followed) and across a slot moved by hand (ASK followed); and the link
 * finds the promoted replica after its primary is SIGKILLed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster_harness.h"
#include "harness.h"
#include "opstream/redis_cluster.h"
#include "opstream/redis_link.h"

static harness_cluster_t *g_cl;

/* One key per slot: g_keys[s] hashes to slot s. */
static char g_keys[OPS_REDIS_CLUSTER_SLOTS][24];

static int group_setup(void **state) {
    int found = 0;
    for (long i = 0; found < OPS_REDIS_CLUSTER_SLOTS; i++) {
        char k[24];
        int n = snprintf(k, sizeof k, "rt:%ld", i);
        int s = ops_redis_cluster_key_slot(k, (size_t)n);
        if (g_keys[s][0] == '\0') {
            memcpy(g_keys[s], k, (size_t)n + 1);
            found++;
        }
    }
    return cluster_group_setup(state, &g_cl);
}

static int group_teardown(void **state) {
    return cluster_group_teardown(state, &g_cl);
}

static ops_redis_link_t *link_new(void) {
    char err[512];
    ops_redis_link_t *l = ops_redis_link_new(g_cl->url, NULL, 5000, err, sizeof err);
    if (l == NULL)
        fail_msg("link: %s", err);
    return l;
}

static ops_redis_cluster_stats_t stats_of(ops_redis_link_t *l) {
    ops_redis_cluster_stats_t s;
    ops_redis_cluster_get_stats(ops_redis_link_cluster(l), &s);
    return s;
}

/* One pipelined round: `cmd` KEY [arg] for every slot's key, then every
 * reply read in order. Returns 0 when every reply is what check() wants,
 * -1 when the link lost the round (an error string in err). */
static int round_all_slots(ops_redis_link_t *l, const char *cmd, const char *arg, long long expect,
                           char *err, size_t errsize) {
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s++) {
        const char *argv[] = {cmd, g_keys[s], arg};
        if (ops_redis_link_append(l, g_keys[s], arg != NULL ? 3 : 2, argv, NULL, err, errsize) !=
            0) {
            ops_redis_link_reset(l);
            return -1;
        }
    }
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s++) {
        redisReply *r = ops_redis_link_reply(l, err, errsize);
        if (r == NULL)
            return -1;
        bool ok = expect >= 0 ? r->type == REDIS_REPLY_INTEGER && r->integer == expect
                              : r->type == REDIS_REPLY_STATUS;
        if (!ok)
            fail_msg("slot %d (%s): reply type %d '%s' integer %lld, expected %lld", s, g_keys[s],
                     r->type, r->str ? r->str : "", r->integer, expect);
        freeReplyObject(r);
    }
    return 0;
}

/* The server's own CLUSTER KEYSLOT agrees with the router's hash. */
static void router_slots_match_the_servers(void **state) {
    static const char *keys[] = {"foo",
                                 "bar",
                                 "{user1000}.following",
                                 "foo{}{bar}",
                                 "foo{{bar}}zap",
                                 "opstream:{LIBERTERRA-II}:total",
                                 "opstream:offsets:opstream-count"};
    (void)state;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        redisReply *r = cluster_node_command(g_cl, 0, "CLUSTER KEYSLOT %s", keys[i]);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, ops_redis_cluster_key_slot(keys[i], strlen(keys[i])));
        freeReplyObject(r);
    }
}

/* 16384 commands in one pipeline, across the three primaries: every reply
 * is its own command's (INCR answers 1 the first time), and each key landed
 * on the primary that serves its slot. */
static void pipelined_commands_reach_every_slot_in_order(void **state) {
    char err[512];
    ops_redis_link_t *l = link_new();
    (void)state;
    assert_int_equal(round_all_slots(l, "SET", "0", -1, err, sizeof err), 0);
    assert_int_equal(round_all_slots(l, "INCR", NULL, 1, err, sizeof err), 0);
    /* a plain connection to the owner reads it (no redirection) */
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s += 997) {
        int owner = cluster_primary_of_slot(g_cl, s);
        redisReply *r = cluster_node_command(g_cl, owner, "GET %s", g_keys[s]);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_string_equal(r->str, "1");
        freeReplyObject(r);
    }
    ops_redis_cluster_stats_t st = stats_of(l);
    assert_int_equal(st.moved, 0);
    assert_int_equal(st.lost, 0);
    /* no route key: any node answers */
    const char *ping[] = {"PING"};
    redisReply *r = ops_redis_link_command(l, NULL, 1, ping, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    ops_redis_link_destroy(l);
}

/* INCR every slot's key round after round while redis-cli moves 100 slots
 * from one primary to another: the moved slots answer MOVED (and ASK while
 * a slot is half moved); every INCR runs exactly once. */
static void counts_stay_exact_while_100_slots_are_resharded(void **state) {
    char err[512];
    int prim[3];
    ops_redis_link_t *l = link_new();
    long long rounds = 0;
    (void)state;
    assert_int_equal(cluster_primaries(g_cl, prim, 3), 3);
    assert_int_equal(round_all_slots(l, "SET", "0", -1, err, sizeof err), 0);
    harness_proc_t *rs = cluster_reshard_start(g_cl, prim[0], prim[1], 100);
    assert_non_null(rs);
    int after = 0;
    while (after < 3) {
        if (round_all_slots(l, "INCR", NULL, rounds + 1, err, sizeof err) != 0)
            fail_msg("round %lld lost: %s", rounds + 1, err);
        rounds++;
        if (!harness_proc_running(rs))
            after++;
        assert_true(rounds < 100000);
    }
    assert_int_equal(harness_proc_exit_code(rs), 0);
    harness_proc_free(rs);
    ops_redis_cluster_stats_t st = stats_of(l);
    fprintf(stderr,
            "reshard of 100 slots: %lld rounds of 16384 INCR, %llu MOVED, %llu ASK, "
            "%llu retried, %llu map loads\n",
            rounds, (unsigned long long)st.moved, (unsigned long long)st.ask,
            (unsigned long long)st.retried, (unsigned long long)st.refreshes);
    assert_true(st.moved > 0);
    assert_int_equal(st.lost, 0);
    /* the values as a fresh link (and the owners) see them */
    ops_redis_link_t *fresh = link_new();
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s++) {
        const char *argv[] = {"GET", g_keys[s]};
        assert_int_equal(ops_redis_link_append(fresh, g_keys[s], 2, argv, NULL, err, sizeof err),
                         0);
    }
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s++) {
        redisReply *r = ops_redis_link_reply(fresh, err, sizeof err);
        assert_non_null(r);
        if (r->type != REDIS_REPLY_STRING || atoll(r->str) != rounds)
            fail_msg("slot %d: %s, expected %lld", s, r->str ? r->str : "(not a string)", rounds);
        freeReplyObject(r);
    }
    assert_int_equal(stats_of(fresh).moved, 0); /* its map was loaded after the move */
    ops_redis_link_destroy(fresh);
    ops_redis_link_destroy(l);
}

/* A slot half moved by hand: the keys already migrated are answered with
 * ASK, and the link asks the target (ASKING first) without changing its
 * map; once the move ends, MOVED. A pipeline mixing both gets each reply
 * in its place. */
static void ask_and_moved_are_followed_in_a_pipeline(void **state) {
    char err[512], ka[64], kb[64], kother[64];
    int prim[3];
    (void)state;
    assert_int_equal(cluster_primaries(g_cl, prim, 3), 3);
    int slot = ops_redis_cluster_key_slot("{ask-test}", 10);
    int from = cluster_primary_of_slot(g_cl, slot);
    int to = from == prim[2] ? prim[0] : prim[2];
    snprintf(ka, sizeof ka, "{ask-test}:a");
    snprintf(kb, sizeof kb, "{ask-test}:b");
    snprintf(kother, sizeof kother, "%s", g_keys[(slot + 8000) % OPS_REDIS_CLUSTER_SLOTS]);
    ops_redis_link_t *l = link_new();
    const char *seta[] = {"SET", ka, "10"}, *setb[] = {"SET", kb, "20"};
    for (int i = 0; i < 2; i++) {
        redisReply *r = ops_redis_link_command(l, ka, 3, i ? setb : seta, NULL, err, sizeof err);
        assert_non_null(r);
        freeReplyObject(r);
    }
    const char *const migrate[] = {ka, NULL};
    assert_int_equal(cluster_slot_half_move(g_cl, slot, from, to, migrate), 0);

    ops_redis_cluster_stats_t before = stats_of(l);
    const char *inca[] = {"INCR", ka}, *incb[] = {"INCR", kb}, *geto[] = {"GET", kother};
    const char **cmds[] = {inca, incb, geto, inca, incb};
    const char *routes[] = {ka, kb, kother, ka, kb};
    long long want[] = {11, 21, -1, 12, 22};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ops_redis_link_append(l, routes[i], 2, cmds[i], NULL, err, sizeof err), 0);
    for (int i = 0; i < 5; i++) {
        redisReply *r = ops_redis_link_reply(l, err, sizeof err);
        assert_non_null(r);
        if (want[i] >= 0 && (r->type != REDIS_REPLY_INTEGER || r->integer != want[i]))
            fail_msg("command %d: type %d '%s' %lld, expected %lld", i, r->type,
                     r->str ? r->str : "", r->integer, want[i]);
        freeReplyObject(r);
    }
    ops_redis_cluster_stats_t mid = stats_of(l);
    assert_int_equal(mid.ask - before.ask, 2); /* the two INCRs of the migrated key */
    assert_int_equal(mid.moved - before.moved, 0);
    char where[64];
    ops_redis_cluster_slot_addr(ops_redis_link_cluster(l), slot, where, sizeof where);
    char want_from[64];
    snprintf(want_from, sizeof want_from, "127.0.0.1:%d", g_cl->node[from].port);
    assert_string_equal(where, want_from); /* ASK leaves the map alone */

    assert_int_equal(cluster_slot_finish_move(g_cl, slot, from, to), 0);
    redisReply *r = ops_redis_link_command(l, kb, 2, incb, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 23);
    freeReplyObject(r);
    ops_redis_cluster_stats_t after = stats_of(l);
    assert_int_equal(after.moved - mid.moved, 1);
    ops_redis_link_destroy(l);
}

/* Loads user `name` of config/redis-acl.conf into every live node (ACL
 * SETUSER with the file's rules, the password given in clear). */
static void acl_user_from_config(const char *name, const char *password) {
    char path[HARNESS_PATH_MAX], head[64], pw[64];
    snprintf(path, sizeof path, "%s/config/redis-acl.conf", harness_src_dir());
    char *text = harness_read_file(path, NULL);
    assert_non_null(text);
    snprintf(head, sizeof head, "\nuser %s ", name);
    char *line = strstr(text, head);
    assert_non_null(line);
    line += strlen(head);
    *strchr(line, '\n') = '\0';
    const char *argv[128] = {"ACL", "SETUSER", name};
    int argc = 3;
    snprintf(pw, sizeof pw, ">%s", password);
    for (char *tok = strtok(line, " "); tok != NULL && argc < 128; tok = strtok(NULL, " "))
        argv[argc++] = tok[0] == '#' ? pw : tok;
    for (int i = 0; i < g_cl->n; i++) {
        redisContext *c = cluster_node_connect(g_cl, i);
        if (c == NULL)
            continue;
        redisReply *r = redisCommandArgv(c, argc, argv, NULL);
        assert_non_null(r);
        if (r->type == REDIS_REPLY_ERROR)
            fail_msg("ACL SETUSER %s: %s", name, r->str);
        freeReplyObject(r);
        redisFree(c);
    }
    free(text);
}

/* The users of config/redis-acl.conf are enough on a cluster: the counter
 * user writes to every slot (CLUSTER SLOTS) and follows ASK (ASKING); the
 * query user reads. Without cluster|slots in the file the link could not
 * load its map: taken away, the link says NOPERM. */
static void the_acl_users_of_the_config_file_work_on_a_cluster(void **state) {
    char err[512], url[600], key[64], val[32];
    (void)state;
    acl_user_from_config("opstream-count", "c0unt-pw");
    acl_user_from_config("opstream-query", "qu3ry-pw");
    snprintf(url, sizeof url, "redis-cluster://opstream-count:c0unt-pw@%s",
             g_cl->url + strlen("redis-cluster://"));
    ops_redis_link_t *l = ops_redis_link_new(url, NULL, 5000, err, sizeof err);
    assert_non_null(l);
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s += 7) {
        snprintf(key, sizeof key, "opstream:acl:{%.23s}", g_keys[s]); /* slot s */
        snprintf(val, sizeof val, "%d", s);
        const char *argv[] = {"HSET", key, "slot", val};
        if (ops_redis_link_append(l, key, 4, argv, NULL, err, sizeof err) != 0)
            fail_msg("append: %s", err);
    }
    for (int s = 0; s < OPS_REDIS_CLUSTER_SLOTS; s += 7) {
        redisReply *r = ops_redis_link_reply(l, err, sizeof err);
        assert_non_null(r);
        if (r->type != REDIS_REPLY_INTEGER)
            fail_msg("slot %d: %s", s, r->str);
        freeReplyObject(r);
    }
    /* an ASK on the way: ASKING is granted */
    int prim[3];
    assert_int_equal(cluster_primaries(g_cl, prim, 3), 3);
    int slot = ops_redis_cluster_key_slot("{acl-ask}", 9);
    int from = cluster_primary_of_slot(g_cl, slot), to = from == prim[0] ? prim[1] : prim[0];
    const char *set[] = {"HSET", "opstream:{acl-ask}:a", "v", "1"};
    redisReply *r = ops_redis_link_command(l, set[1], 4, set, NULL, err, sizeof err);
    assert_non_null(r);
    freeReplyObject(r);
    const char *const migrate[] = {"opstream:{acl-ask}:a", NULL};
    assert_int_equal(cluster_slot_half_move(g_cl, slot, from, to, migrate), 0);
    uint64_t asks = stats_of(l).ask;
    const char *incr[] = {"HINCRBY", "opstream:{acl-ask}:a", "v", "1"};
    r = ops_redis_link_command(l, incr[1], 4, incr, NULL, err, sizeof err);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 2)
        fail_msg("HINCRBY after ASK: type %d %s", r->type, r->str ? r->str : "");
    freeReplyObject(r);
    assert_int_equal(stats_of(l).ask, asks + 1);
    assert_int_equal(cluster_slot_finish_move(g_cl, slot, from, to), 0);
    ops_redis_link_destroy(l);

    /* the query user reads through its own link */
    snprintf(url, sizeof url, "redis-cluster://opstream-query:qu3ry-pw@%s",
             g_cl->url + strlen("redis-cluster://"));
    l = ops_redis_link_new(url, NULL, 5000, err, sizeof err);
    assert_non_null(l);
    const char *get[] = {"HGET", "opstream:{acl-ask}:a", "v"};
    r = ops_redis_link_command(l, get[1], 3, get, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "2");
    freeReplyObject(r);
    ops_redis_link_destroy(l);

    /* without cluster|slots the map cannot be loaded */
    for (int i = 0; i < g_cl->n; i++) {
        redisReply *x = cluster_node_command(g_cl, i, "ACL SETUSER opstream-query -cluster|slots");
        if (x != NULL)
            freeReplyObject(x);
    }
    l = ops_redis_link_new(url, NULL, 500, err, sizeof err);
    assert_non_null(l);
    assert_null(ops_redis_link_command(l, get[1], 3, get, NULL, err, sizeof err));
    if (strstr(err, "NOPERM") == NULL && strstr(err, "permission") == NULL)
        fail_msg("error without the permission named: %s", err);
    assert_null(strstr(err, "qu3ry-pw"));
    ops_redis_link_destroy(l);
}

/* SIGKILL the primary of a slot while rounds of SETs run: the rounds that
 * lose a connection fail (their replies are lost, as the link says), the
 * link reloads the map by itself, and once the replica is promoted every
 * slot is written again. */
static void the_link_follows_a_promoted_replica(void **state) {
    char err[512], val[32];
    ops_redis_link_t *l = link_new();
    int64_t killed_at, back_at = 0;
    int lost_rounds = 0, round = 0, dead;
    (void)state;
    snprintf(val, sizeof val, "r%d", round);
    assert_int_equal(round_all_slots(l, "SET", val, -1, err, sizeof err), 0);
    assert_int_equal(cluster_wait_settled(g_cl, 30000), 0); /* the replicas are in sync */
    dead = cluster_kill_primary_of_slot(g_cl, 100);
    assert_true(dead >= 0);
    killed_at = harness_now_ms();
    for (;;) {
        round++;
        snprintf(val, sizeof val, "r%d", round);
        if (round_all_slots(l, "SET", val, -1, err, sizeof err) == 0) {
            back_at = harness_now_ms();
            break;
        }
        lost_rounds++;
        if (harness_now_ms() - killed_at > 60000)
            fail_msg("no full round within 60 s of the kill: %s", err);
    }
    ops_redis_cluster_stats_t st = stats_of(l);
    fprintf(stderr,
            "failover: first full round %.1f s after the SIGKILL; %d rounds lost; %llu "
            "connections lost, %llu connects refused, %llu CLUSTERDOWN/TRYAGAIN retried, "
            "%llu map loads\n",
            (double)(back_at - killed_at) / 1000.0, lost_rounds, (unsigned long long)st.lost,
            (unsigned long long)st.unreachable, (unsigned long long)st.retried,
            (unsigned long long)st.refreshes);
    assert_int_equal(cluster_wait_failover(g_cl, 30000), 0);
    int owner = cluster_primary_of_slot(g_cl, 100);
    assert_true(owner >= 0 && owner != dead);
    redisReply *r = cluster_node_command(g_cl, owner, "GET %s", g_keys[100]);
    assert_non_null(r);
    assert_string_equal(r->str, val);
    freeReplyObject(r);
    ops_redis_link_destroy(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(router_slots_match_the_servers),
        cmocka_unit_test(pipelined_commands_reach_every_slot_in_order),
        cmocka_unit_test(counts_stay_exact_while_100_slots_are_resharded),
        cmocka_unit_test(ask_and_moved_are_followed_in_a_pipeline),
        cmocka_unit_test(the_acl_users_of_the_config_file_work_on_a_cluster),
        cmocka_unit_test(the_link_follows_a_promoted_replica),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
