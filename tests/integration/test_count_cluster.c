/*
 * opstream-count on a real Redis Cluster (three primaries, three replicas:
 * cluster_harness.h) with dedupe off, under a steady load of
 * opstream-simulate processes (one per operation) through the
 * opstream-broker process, while the cluster changes under it: redis-cli
 * moves 100 slots (those of one operation among them) from one primary to
 * another, the primary that received them is SIGKILLed and its replica
 * promoted, and opstream-count itself is SIGKILLed and restarted again and
 * again in between. At the end every operation's totals, country hashes,
 * buckets and sets are exact (the model is built from the events
 * opstream-simulate prints for the same seed and base time), and
 * opstream-stats and plain `redis-cli -c` read the same values. Then
 * opstream-alert runs over the same topics on the cluster: each operation's
 * alert stream holds exactly the alerts published for it.
 */
#include "test_count_common.h"

#include "cluster_harness.h"
#include "opstream/counter.h"
#include "opstream/counter_redis.h"
#include "opstream/json.h"
#include "opstream/record.h"
#include "opstream/redis_cluster.h"

#define GROUP "opstream-count"
#define N_OPS 3
#define EVENTS_PER_OP 4000
/* 50 s of load: it outlasts the faults (about 30 s: each kill costs the
 * killed member's session timeout and the broker's rebalance wait, 5 s on
 * the embedded broker). The test fails when the last kill does not land
 * mid-stream, and says how far into the load the faults were over. */
#define RATE_PER_OP "80"

static harness_cluster_t *g_cl;

static int group_setup(void **state) {
    return cluster_group_setup(state, &g_cl);
}

static int group_teardown(void **state) {
    return cluster_group_teardown(state, &g_cl);
}

/* An operation code whose slot passes want(slot, arg). */
static void op_with_slot(char *op, size_t size, const char *prefix, bool (*want)(int, void *),
                         void *arg) {
    for (int i = 0; i < 1000000; i++) {
        snprintf(op, size, "%s-%d", prefix, i);
        if (want(ops_redis_cluster_key_slot(op, strlen(op)), arg))
            return;
    }
    fail_msg("no operation code for %s", prefix);
}

static bool slot_below_100(int slot, void *arg) {
    (void)arg;
    return slot < 100;
}

static bool slot_on_node(int slot, void *arg) {
    int node = *(int *)arg;
    return slot >= 100 && cluster_primary_of_slot(g_cl, slot) == node;
}

/* The node that holds a key now (its slot's primary), connected. */
static redisContext *owner_of(const char *key) {
    int i = cluster_primary_of_slot(g_cl, ops_redis_cluster_key_slot(key, strlen(key)));
    redisContext *c = cluster_node_connect(g_cl, i);
    assert_non_null(c);
    return c;
}

/* Sum of a group's stored next offsets (-1 while their primary cannot be
 * reached). */
static int64_t group_offsets_sum(const char *group) {
    char key[OPS_KEY_MAX];
    int64_t sum = 0;
    ops_key_offsets(group, key, sizeof key);
    int i = cluster_primary_of_slot(g_cl, ops_redis_cluster_key_slot(key, strlen(key)));
    redisContext *c = cluster_node_connect(g_cl, i);
    if (c == NULL)
        return -1;
    redisReply *r = redisCommand(c, "HVALS %s", key);
    for (size_t k = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++)
        sum += strtoll(r->element[k]->str, NULL, 10);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        sum = -1;
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return sum;
}

static int64_t offsets_sum(void) {
    return group_offsets_sum(GROUP);
}

typedef struct progress {
    int64_t since;
    harness_proc_t *count; /* its exit ends the wait too */
    harness_proc_t **sims; /* the load: once it is over, offsets stop moving */
} progress_t;

static bool load_over(const progress_t *p) {
    for (int i = 0; i < N_OPS; i++)
        if (harness_proc_running(p->sims[i]))
            return false;
    return true;
}

static bool offsets_moved(void *arg) {
    progress_t *p = arg;
    return offsets_sum() > p->since || !harness_proc_running(p->count) || load_over(p);
}

/* Waits until the stored offsets move past where they are now (the
 * counter is counting) or the load is over. A counter that exits fails the
 * test with its log. */
static bool offsets_readable(void *arg) {
    (void)arg;
    return offsets_sum() >= 0;
}

static void wait_counting(progress_t *pr, harness_proc_t *count) {
    assert_int_equal(harness_wait_until(offsets_readable, NULL, 60000), 0);
    pr->since = offsets_sum();
    pr->count = count;
    int rc = harness_wait_until(offsets_moved, pr, 60000);
    if (!harness_proc_running(count)) {
        char *err = harness_proc_stderr(count);
        fail_msg("opstream-count exited %d:\n%s", harness_proc_exit_code(count), err);
    }
    assert_int_equal(rc, 0);
}

static bool offsets_reach(void *arg) {
    return offsets_sum() == *(int64_t *)arg;
}

static harness_proc_t *spawn_count(void) {
    const char *argv[] = {"opstream-count",
                          "-b",
                          g_broker->bootstrap,
                          "--redis",
                          g_cl->url,
                          "-g",
                          GROUP,
                          "--stats-interval",
                          "1",
                          "-v",
                          "--batch",
                          "200",
                          "-X",
                          "opstream.dedupe.window.s=0",
                          NULL};
    return harness_spawn(argv, NULL, 0);
}

/* Restarts are counted, and what the counter's status lines say: with
 * dedupe off, "N duplicates" are the events an applied-offset watermark
 * refused (counted by an earlier step, replayed after a kill or a lost
 * reply). */
typedef struct counter_proc {
    harness_proc_t *p;
    int kills;
    long long refused;     /* sum over the processes of their last "N duplicates" */
    long long not_applied; /* "batch not applied" lines */
} counter_proc_t;

static void tally(counter_proc_t *cp) {
    char *err = harness_proc_stderr(cp->p);
    const char *last = NULL;
    for (const char *at = err; at != NULL && (at = strstr(at, " duplicates,")) != NULL; at++)
        last = at;
    if (last != NULL) {
        const char *num = last;
        while (num > err && num[-1] >= '0' && num[-1] <= '9')
            num--;
        cp->refused += strtoll(num, NULL, 10);
    }
    for (const char *at = err; at != NULL && (at = strstr(at, "batch not applied")) != NULL; at++)
        cp->not_applied++;
    free(err);
}

static void kill_and_restart(counter_proc_t *cp) {
    tally(cp);
    assert_int_equal(harness_proc_kill(cp->p), 0);
    harness_proc_free(cp->p);
    cp->kills++;
    cp->p = spawn_count();
    assert_non_null(cp->p);
}

/* The events opstream-simulate produces for these arguments, modelled:
 * --print gives them as JSON lines, read back as opstream-produce would. */
static void model_simulated(tc_model_t *m, const char *op, const char *seed, const char *base,
                            int64_t now_ms) {
    char events[16];
    harness_proc_t *p;
    snprintf(events, sizeof events, "%d", EVENTS_PER_OP);
    const char *argv[] = {
        "opstream-simulate", "--print", "--operation", op,   "--seed", seed, "--events", events,
        "--base-time",       base,      "--countries", "12", "--rate", "0",  NULL};
    p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 60000), 0);
    assert_int_equal(harness_proc_exit_code(p), 0);
    char *out = harness_proc_stdout(p);
    ops_json_t *js = ops_json_new();
    int n = 0;
    assert_non_null(js);
    for (char *line = out, *nl; line != NULL && *line != '\0'; line = nl != NULL ? nl + 1 : NULL) {
        char err[256];
        ops_record_t rec;
        ops_event_t ev;
        ops_record_defaults_t d = {.kind = -1, .now_ms = now_ms};
        nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        ops_record_clear(&rec);
        if (ops_json_parse(js, line, len, err, sizeof err) != 0 ||
            ops_record_from_json(&rec, js, NULL, err, sizeof err) != 0 ||
            ops_record_build(&rec, &d, &ev, NULL, err, sizeof err) != 0)
            fail_msg("printed event %d of %s: %s", n + 1, op, err);
        tc_model_event(m, &ev, now_ms);
        n++;
    }
    assert_int_equal(n, EVENTS_PER_OP);
    ops_json_destroy(js);
    free(out);
    harness_proc_free(p);
}

static harness_proc_t *spawn_simulate(const char *op, const char *seed, const char *base) {
    char events[16];
    snprintf(events, sizeof events, "%d", EVENTS_PER_OP);
    const char *argv[] = {"opstream-simulate",
                          "-b",
                          g_broker->bootstrap,
                          "--operation",
                          op,
                          "--seed",
                          seed,
                          "--events",
                          events,
                          "--base-time",
                          base,
                          "--countries",
                          "12",
                          "--rate",
                          RATE_PER_OP,
                          NULL};
    return harness_spawn(argv, NULL, 0);
}

/* `redis-cli -c -p PORT HGET key field` through a node that may not hold
 * the key (it follows the redirection). */
static long long redis_cli_hget(int port, const char *key, const char *field) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *argv[] = {"redis-cli", "-c", "-p", p, "HGET", key, field, NULL};
    harness_proc_t *h = harness_spawn(argv, NULL, 0);
    assert_non_null(h);
    assert_int_equal(harness_proc_wait(h, 10000), 0);
    assert_int_equal(harness_proc_exit_code(h), 0);
    char *out = harness_proc_stdout(h);
    long long v = strtoll(out, NULL, 10);
    free(out);
    harness_proc_free(h);
    return v;
}

/* opstream-stats --json OP on the cluster: its "total" object. */
static void stats_json_has_totals(const tc_model_t *m) {
    const char *argv[] = {"opstream-stats", "--redis", g_cl->url, "--json", m->op, NULL};
    harness_proc_t *h = harness_spawn(argv, NULL, 0);
    char key[OPS_KEY_MAX], want[64];
    assert_non_null(h);
    assert_int_equal(harness_proc_wait(h, 20000), 0);
    char *out = harness_proc_stdout(h), *err = harness_proc_stderr(h);
    if (harness_proc_exit_code(h) != 0)
        fail_msg("opstream-stats %s: exit %d: %s", m->op, harness_proc_exit_code(h), err);
    ops_key_total(m->op, key, sizeof key);
    for (int k = 0; k < OPS_METRIC_COUNT; k++) {
        const char *name = ops_metric_name((ops_metric_t)k);
        snprintf(want, sizeof want, "\"%s\":%lld", name, tc_model_get(m, key, name));
        char *total = strstr(out, "\"total\"");
        assert_non_null(total);
        if (strstr(total, want) == NULL)
            fail_msg("opstream-stats %s: no %s in %s", m->op, want, out);
        /* plain redis-cli -c, asked through every live node (primary or
         * replica: it follows the redirection), reads the same */
        for (int i = 0; i < g_cl->n; i++)
            if (g_cl->node[i].proc != NULL)
                assert_int_equal(redis_cli_hget(g_cl->node[i].port, key, name),
                                 tc_model_get(m, key, name));
    }
    /* and every country's hash, as its table row */
    for (size_t c = 0; c < m->nmembers; c++) {
        char row[512];
        size_t o =
            (size_t)snprintf(row, sizeof row, "{\"country\":\"%s\",\"metrics\":{", m->members[c]);
        ops_key_country(m->op, m->members[c], key, sizeof key);
        for (int k = 0; k < OPS_METRIC_COUNT; k++)
            o += (size_t)snprintf(row + o, sizeof row - o, "%s\"%s\":%lld", k ? "," : "",
                                  ops_metric_name((ops_metric_t)k),
                                  tc_model_get(m, key, ops_metric_name((ops_metric_t)k)));
        snprintf(row + o, sizeof row - o, "}}");
        if (strstr(out, row) == NULL)
            fail_msg("opstream-stats %s: no %s in %s", m->op, row, out);
    }
    free(out);
    free(err);
    harness_proc_free(h);
}

static bool alert_consumed_all(void *arg) {
    return group_offsets_sum("opstream-alert") == *(int64_t *)arg;
}

/* opstream-alert with config/alerts.conf over the same topics: its offsets
 * (their own compare-and-set) and its mirror (an EVAL in each operation's
 * slot) work on the cluster, and each operation's alert stream holds
 * exactly the alerts published on the topic for it (the simulated traffic
 * has raids). */
static void alerts_are_mirrored_once_into_each_operation_slot(char ops[][32], int64_t total) {
    char rules[HARNESS_PATH_MAX], key[OPS_KEY_MAX];
    snprintf(rules, sizeof rules, "%s/config/alerts.conf", harness_src_dir());
    const char *argv[] = {
        "opstream-alert", "-b", g_broker->bootstrap, "--redis", g_cl->url, "--rules", rules, NULL};
    harness_proc_t *al = harness_spawn(argv, NULL, 0);
    assert_non_null(al);
    if (harness_wait_until(alert_consumed_all, &total, 120000) != 0) {
        char *err = harness_proc_stderr(al);
        fail_msg("opstream-alert stored %lld of %lld offsets:\n%s",
                 (long long)group_offsets_sum("opstream-alert"), (long long)total, err);
    }
    tc_stop(al);
    harness_msgs_t msgs = {0};
    assert_int_equal(harness_consume_all(g_broker->bootstrap, "opstream.alerts", 500, 30000, &msgs),
                     0);
    size_t all = 0;
    for (int i = 0; i < N_OPS; i++) {
        long long published = 0;
        for (size_t k = 0; k < msgs.n; k++)
            published += msgs.v[k].key_len == strlen(ops[i]) &&
                         memcmp(msgs.v[k].key, ops[i], msgs.v[k].key_len) == 0;
        ops_key_alerts(ops[i], key, sizeof key);
        redisContext *c = owner_of(key);
        redisReply *r = redisCommand(c, "XLEN %s", key);
        assert_non_null(r);
        if (r->integer != published)
            fail_msg("%s: %lld alerts in the stream, %lld on the topic", key, r->integer,
                     published);
        freeReplyObject(r);
        redisFree(c);
        all += (size_t)published;
    }
    fprintf(stderr, "opstream-alert: %zu alerts published and mirrored\n", all);
    assert_true(all > 0);
    harness_msgs_free(&msgs);
}

static void counts_stay_exact_through_reshard_failover_and_kill9(void **state) {
    tc_model_t m[N_OPS] = {{0}};
    char ops[N_OPS][32], base[32], seeds[N_OPS][16];
    harness_proc_t *sim[N_OPS];
    int prim[3];
    counter_proc_t cp = {0};
    (void)state;

    g_broker = harness_broker_start(NULL);
    assert_non_null(g_broker);
    assert_int_equal(cluster_primaries(g_cl, prim, 3), 3);
    /* ops[0]: in the 100 slots that move from prim[0] to prim[1];
     * ops[1]: on prim[1], the primary that is killed; ops[2]: on prim[2] */
    op_with_slot(ops[0], sizeof ops[0], "CL-MOVED", slot_below_100, NULL);
    assert_int_equal(
        cluster_primary_of_slot(g_cl, ops_redis_cluster_key_slot(ops[0], strlen(ops[0]))), prim[0]);
    op_with_slot(ops[1], sizeof ops[1], "CL-FAILOVER", slot_on_node, &prim[1]);
    op_with_slot(ops[2], sizeof ops[2], "CL-CALM", slot_on_node, &prim[2]);
    int64_t now = tc_wall_ms();
    snprintf(base, sizeof base, "%lld", (long long)now);
    for (int i = 0; i < N_OPS; i++) {
        snprintf(seeds[i], sizeof seeds[i], "%d", 71 + i);
        model_simulated(&m[i], ops[i], seeds[i], base, now);
    }

    cp.p = spawn_count();
    assert_non_null(cp.p);
    for (int i = 0; i < N_OPS; i++) {
        sim[i] = spawn_simulate(ops[i], seeds[i], base);
        assert_non_null(sim[i]);
    }
    int64_t load_at = harness_now_ms();
    /* counting, then two kills */
    progress_t pr = {.sims = sim};
    for (int k = 0; k < 2; k++) {
        wait_counting(&pr, cp.p);
        kill_and_restart(&cp);
    }
    /* 100 slots move (ops[0]'s among them) while counting; a kill meanwhile */
    harness_proc_t *rs = cluster_reshard_start(g_cl, prim[0], prim[1], 100);
    assert_non_null(rs);
    wait_counting(&pr, cp.p);
    kill_and_restart(&cp);
    assert_int_equal(harness_proc_wait(rs, 120000), 0);
    assert_int_equal(harness_proc_exit_code(rs), 0);
    harness_proc_free(rs);
    assert_int_equal(
        cluster_primary_of_slot(g_cl, ops_redis_cluster_key_slot(ops[0], strlen(ops[0]))), prim[1]);
    wait_counting(&pr, cp.p);
    kill_and_restart(&cp);

    /* the primary of ops[0] and ops[1] dies; its replica takes over */
    assert_int_equal(cluster_wait_settled(g_cl, 30000), 0);
    wait_counting(&pr, cp.p);
    for (int i = 0; i < N_OPS; i++)
        assert_true(harness_proc_running(sim[i])); /* the faults land mid-stream */
    cluster_kill(g_cl, prim[1]);
    int64_t killed_at = harness_now_ms();
    assert_int_equal(cluster_wait_failover(g_cl, 60000), 0);
    int64_t promoted_at = harness_now_ms();
    wait_counting(&pr, cp.p);
    int64_t counting_at = harness_now_ms();
    fprintf(stderr,
            "failover: replica promoted %.1f s after the SIGKILL, counting again %.1f s after "
            "it\n",
            (double)(promoted_at - killed_at) / 1000.0, (double)(counting_at - killed_at) / 1000.0);
    kill_and_restart(&cp);
    wait_counting(&pr, cp.p);
    /* the last kill lands mid-stream too */
    bool loaded = !load_over(&pr);
    fprintf(stderr, "faults over %.1f s into the %d s load%s\n",
            (double)(harness_now_ms() - load_at) / 1000.0, EVENTS_PER_OP / atoi(RATE_PER_OP),
            loaded ? "" : ", after it ended");
    assert_true(loaded);
    kill_and_restart(&cp);

    /* the load ends; everything produced gets counted */
    for (int i = 0; i < N_OPS; i++) {
        assert_int_equal(harness_proc_wait(sim[i], 180000), 0);
        char *err = harness_proc_stderr(sim[i]);
        char want[64];
        snprintf(want, sizeof want, "generated %d, delivered %d, failed 0", EVENTS_PER_OP,
                 EVENTS_PER_OP);
        if (strstr(err, want) == NULL)
            fail_msg("opstream-simulate %s: %s", ops[i], err);
        free(err);
        harness_proc_free(sim[i]);
    }
    int64_t total = tc_topic_messages();
    assert_int_equal(total, (int64_t)N_OPS * EVENTS_PER_OP);
    if (harness_wait_until(offsets_reach, &total, 120000) != 0) {
        char *err = harness_proc_stderr(cp.p);
        fail_msg("stored offsets %lld of %lld; opstream-count says:\n%s", (long long)offsets_sum(),
                 (long long)total, err);
    }
    tally(&cp);
    tc_stop(cp.p);
    fprintf(stderr,
            "opstream-count: %d SIGKILLs and restarts; %lld replayed events refused by the "
            "watermarks; %lld batches not applied (retried)\n",
            cp.kills, cp.refused, cp.not_applied);

    /* exact, on the primaries that serve the keys now */
    char key[OPS_KEY_MAX];
    ops_key_operations(key, sizeof key);
    redisContext *ops_c = owner_of(key);
    for (int i = 0; i < N_OPS; i++) {
        ops_key_total(ops[i], key, sizeof key);
        redisContext *c = owner_of(key);
        assert_int_equal(tc_model_compare_on(&m[i], true, c, ops_c), 0);
        redisFree(c);
        stats_json_has_totals(&m[i]);
        tc_model_free(&m[i]);
    }
    redisFree(ops_c);
    /* opstream-stats --list reads opstream:operations (its own slot) */
    const char *list[] = {"opstream-stats", "--redis", g_cl->url, "--list", NULL};
    harness_proc_t *h = harness_spawn(list, NULL, 0);
    assert_non_null(h);
    assert_int_equal(harness_proc_wait(h, 20000), 0);
    assert_int_equal(harness_proc_exit_code(h), 0);
    char *listed = harness_proc_stdout(h);
    for (int i = 0; i < N_OPS; i++) {
        char line[40];
        snprintf(line, sizeof line, "%.31s\n", ops[i]);
        if (strstr(listed, line) == NULL)
            fail_msg("opstream-stats --list: no %s in:\n%s", ops[i], listed);
    }
    free(listed);
    harness_proc_free(h);
    alerts_are_mirrored_once_into_each_operation_slot(ops, total);
    harness_broker_free(g_broker);
    g_broker = NULL;
}

/* ---- WAIT per node ----------------------------------------------------- */

#define WAIT_GROUP "g-wait"

static bool slot_off_node(int slot, void *arg) {
    return cluster_primary_of_slot(g_cl, slot) != *(int *)arg;
}

/* The live replica of primary p (-1: none). */
static int replica_of(int p) {
    for (int i = 0; i < g_cl->n; i++) {
        if (i == p || g_cl->node[i].proc == NULL)
            continue;
        redisReply *r = cluster_node_command(g_cl, i, "ROLE");
        bool of_p = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
                    strcmp(r->element[0]->str, "slave") == 0 &&
                    r->element[2]->type == REDIS_REPLY_INTEGER &&
                    r->element[2]->integer == g_cl->node[p].port;
        if (r != NULL)
            freeReplyObject(r);
        if (of_p)
            return i;
    }
    return -1;
}

static long long node_hget(const char *key, const char *field) {
    redisContext *c = owner_of(key);
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    long long v = r != NULL && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return v;
}

static void add_rescue(ops_counter_t *c, const char *op, int64_t offset) {
    ops_event_t ev;
    ops_event_init(&ev);
    ev.kind = OPS_KIND_RESCUE;
    snprintf(ev.operation, sizeof ev.operation, "%s", op);
    snprintf(ev.country, sizeof ev.country, "BR");
    snprintf(ev.event_id, sizeof ev.event_id, "00000000-0000-4000-8000-%012lld", (long long)offset);
    ev.count = 2;
    ev.occurred_at = tc_wall_ms() - 60000;
    assert_int_equal(ops_counter_add_event(c, "opstream.rescues", 0, offset, &ev),
                     OPS_COUNTER_ADDED);
}

/* Mean ms of n one-event steps of op with the given WAIT setting. */
static double step_ms(ops_counter_t *c, ops_counter_redis_t *cr, const char *op, int64_t *next,
                      int n) {
    char err[256];
    int64_t t0 = harness_now_ms();
    for (int i = 0; i < n; i++) {
        add_rescue(c, op, (*next)++);
        ops_counter_step_t st = ops_counter_redis_apply(cr, c, tc_wall_ms(), NULL, err, sizeof err);
        if (st != OPS_COUNTER_STEP_APPLIED)
            fail_msg("step %d: %d: %s", i, (int)st, err);
    }
    return (double)(harness_now_ms() - t0) / n;
}

/*
 * On a cluster the group's offsets live on another primary than the
 * operation's keys. With opstream.redis.wait.replicas=1, a step its
 * primary's replica has not acknowledged (the replica stopped: SIGSTOP)
 * holds the offsets where they were: the step is FAILED, "not yet on 1
 * replica", however often it is retried, so a failover of that primary
 * could only lose a step the offsets would replay. Once the replica
 * follows again the same batch goes through (its events answer APPLIED
 * from the watermark: counted once) and the offsets pass it. The step's
 * cost with and without WAIT is printed.
 */
static void offsets_wait_until_the_operations_replica_has_the_step(void **state) {
    char okey[OPS_KEY_MAX], op[32], tkey[OPS_KEY_MAX], wkey[OPS_KEY_MAX], err[512];
    (void)state;
    assert_int_equal(cluster_wait_settled(g_cl, 60000), 0);
    ops_key_offsets(WAIT_GROUP, okey, sizeof okey);
    int onode = cluster_primary_of_slot(g_cl, ops_redis_cluster_key_slot(okey, strlen(okey)));
    assert_true(onode >= 0);
    op_with_slot(op, sizeof op, "WAITOP", slot_off_node, &onode);
    int pnode = cluster_primary_of_slot(g_cl, ops_redis_cluster_key_slot(op, strlen(op)));
    int rnode = replica_of(pnode);
    assert_true(pnode >= 0 && pnode != onode && rnode >= 0);
    snprintf(tkey, sizeof tkey, "opstream:{%s}:total", op);
    snprintf(wkey, sizeof wkey, "opstream:{%s}:applied:%s", op, WAIT_GROUP);

    ops_counter_options_t o = {.group = WAIT_GROUP, .dedupe_window_s = 0};
    ops_counter_t *c = ops_counter_new(&o, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(ops_counter_assign(c, "opstream.rescues", 0, -1, err, sizeof err), 0);
    ops_counter_redis_t *cr = ops_counter_redis_new(g_cl->url, NULL, 5000, err, sizeof err);
    assert_non_null(cr);

    /* the cost of a step (one operation, one event) without and with WAIT */
    int64_t next = 0;
    double plain = step_ms(c, cr, op, &next, 200);
    ops_counter_redis_set_wait(cr, 1, 500);
    double waited = step_ms(c, cr, op, &next, 200);
    assert_true(ops_counter_redis_wait_acked(cr) >= 1);
    assert_int_equal(node_hget(okey, "opstream.rescues:0"), next);
    fprintf(stderr,
            "step latency on the cluster: %.2f ms without WAIT, %.2f ms with "
            "opstream.redis.wait.replicas=1 (mean of 200 one-event steps)\n",
            plain, waited);

    /* the replica stops following: the step is applied on the primary,
     * the offsets do not pass it */
    int64_t held = next;
    pid_t rpid = g_cl->node[rnode].proc->pid;
    assert_int_equal(kill(rpid, SIGSTOP), 0);
    for (int i = 0; i < 5; i++)
        add_rescue(c, op, next++);
    for (int attempt = 0; attempt < 3; attempt++) {
        ops_counter_step_t st = ops_counter_redis_apply(cr, c, tc_wall_ms(), NULL, err, sizeof err);
        if (st != OPS_COUNTER_STEP_FAILED) {
            kill(rpid, SIGCONT);
            fail_msg("attempt %d: step %d, the offsets passed a step its replica lacks", attempt,
                     (int)st);
        }
        assert_non_null(strstr(err, "not yet on 1 replica"));
        assert_int_equal(node_hget(okey, "opstream.rescues:0"), held);
        assert_int_equal(node_hget(wkey, "opstream.rescues:0"), next); /* applied there */
        assert_int_equal(node_hget(tkey, "events"), next);
    }
    assert_int_equal(kill(rpid, SIGCONT), 0);

    /* it follows again: the same batch passes, counted once */
    ops_counter_step_t st = OPS_COUNTER_STEP_FAILED;
    size_t seen = 0;
    for (int i = 0; i < 100 && st == OPS_COUNTER_STEP_FAILED; i++) {
        st = ops_counter_redis_apply(cr, c, tc_wall_ms(), &seen, err, sizeof err);
        if (st == OPS_COUNTER_STEP_FAILED)
            cluster_sleep_ms(100);
    }
    assert_int_equal(st, OPS_COUNTER_STEP_APPLIED);
    /* dropped (the watermark holds them), and not duplicates: this batch's
     * own earlier attempt counted them */
    assert_int_equal(seen, 0);
    assert_int_equal(node_hget(tkey, "events"), next);
    assert_int_equal(node_hget(okey, "opstream.rescues:0"), next);
    add_rescue(c, op, next++);
    assert_int_equal(ops_counter_redis_apply(cr, c, tc_wall_ms(), NULL, err, sizeof err),
                     OPS_COUNTER_STEP_APPLIED);
    assert_int_equal(node_hget(okey, "opstream.rescues:0"), next);
    assert_int_equal(node_hget(tkey, "events"), next);
    assert_int_equal(node_hget(tkey, "victims"), 2 * next);
    ops_counter_redis_destroy(cr);
    ops_counter_destroy(c);
    assert_int_equal(cluster_wait_settled(g_cl, 60000), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offsets_wait_until_the_operations_replica_has_the_step),
        cmocka_unit_test(counts_stay_exact_through_reshard_failover_and_kill9),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
