/*
 * opstream integration tests: a real Redis Cluster of Debian redis-server
 * processes (cluster-enabled, three primaries and three replicas on free
 * ports in the harness's temp dir), created with `redis-cli --cluster
 * create`, and the faults the tests inflict on it: resharding slots with
 * `redis-cli --cluster reshard`, moving one slot by hand (so that ASK is
 * answered), SIGKILLing a primary and waiting for its replica's promotion.
 * Header-only (static functions) on top of harness.h; every node is a
 * harness child, so it dies with the test binary and its dir goes with the
 * temp dir.
 *
 *   harness_cluster_t *cl = cluster_start(3, 1, 1000);
 *   ... "--redis", cl->url ...
 *   cluster_reshard(cl, 0, 1, 100);
 *   int dead = cluster_kill_primary_of_slot(cl, slot);
 *   cluster_wait_failover(cl, dead, 30000);
 *   cluster_free(cl);
 */
#ifndef OPSTREAM_CLUSTER_HARNESS_H
#define OPSTREAM_CLUSTER_HARNESS_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"

#define CLUSTER_MAX_NODES 12

typedef struct cluster_node {
    harness_proc_t *proc; /* NULL once killed */
    int port, bus_port;
    char dir[HARNESS_PATH_MAX];
    char id[64]; /* CLUSTER MYID */
} cluster_node_t;

typedef struct harness_cluster {
    cluster_node_t node[CLUSTER_MAX_NODES];
    int n;
    int node_timeout_ms;
    char url[512]; /* "redis-cluster://127.0.0.1:p1,127.0.0.1:p2,..." (the primaries) */
} harness_cluster_t;

static inline void cluster_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void cluster_say(const char *fmt, ...) {
    va_list ap;
    fputs("cluster harness: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static inline void cluster_sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline redisContext *cluster_node_connect(const harness_cluster_t *cl, int i) {
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *c;
    if (i < 0 || i >= cl->n || cl->node[i].proc == NULL)
        return NULL;
    c = redisConnectWithTimeout("127.0.0.1", cl->node[i].port, tv);
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* One command on node i (a fresh connection); NULL when it cannot be
 * reached. The caller frees the reply. */
static inline redisReply *cluster_node_command(const harness_cluster_t *cl, int i, const char *fmt,
                                               ...) {
    redisContext *c = cluster_node_connect(cl, i);
    redisReply *r;
    va_list ap;
    if (c == NULL)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* The node listening on port, or -1. */
static inline int cluster_node_by_port(const harness_cluster_t *cl, int port) {
    for (int i = 0; i < cl->n; i++)
        if (cl->node[i].port == port)
            return i;
    return -1;
}

static inline int cluster_launch(harness_cluster_t *cl, int i) {
    cluster_node_t *nd = &cl->node[i];
    char port[16], bus[16], timeout[16], logfile[HARNESS_PATH_MAX + 16],
        conf[HARNESS_PATH_MAX + 16];
    const char *argv[] = {"redis-server",
                          "--port",
                          port,
                          "--cluster-port",
                          bus,
                          "--bind",
                          "127.0.0.1",
                          "--dir",
                          nd->dir,
                          "--save",
                          "",
                          "--appendonly",
                          "no",
                          "--daemonize",
                          "no",
                          "--logfile",
                          logfile,
                          "--cluster-enabled",
                          "yes",
                          "--cluster-config-file",
                          conf,
                          "--cluster-node-timeout",
                          timeout,
                          "--repl-diskless-sync-delay",
                          "0",
                          NULL};
    int64_t deadline = harness_now_ms() + 10000;

    snprintf(port, sizeof port, "%d", nd->port);
    snprintf(bus, sizeof bus, "%d", nd->bus_port);
    snprintf(timeout, sizeof timeout, "%d", cl->node_timeout_ms);
    snprintf(logfile, sizeof logfile, "%s/redis.log", nd->dir);
    snprintf(conf, sizeof conf, "%s/nodes.conf", nd->dir);
    nd->proc = harness_spawn(argv, NULL, 0);
    if (nd->proc == NULL)
        return -1;
    for (;;) {
        redisReply *r = cluster_node_command(cl, i, "CLUSTER MYID");
        bool ok = r != NULL && r->type == REDIS_REPLY_STRING;
        if (ok)
            snprintf(nd->id, sizeof nd->id, "%s", r->str);
        if (r != NULL)
            freeReplyObject(r);
        if (ok)
            return 0;
        if (!harness_proc_running(nd->proc) || harness_now_ms() >= deadline) {
            char *log = harness_read_file(logfile, NULL);
            cluster_say("redis-server on port %d did not start; log:\n%s", nd->port,
                        log != NULL ? log : "(none)");
            free(log);
            harness_proc_free(nd->proc);
            nd->proc = NULL;
            return -1;
        }
        cluster_sleep_ms(20);
    }
}

/* Runs a redis-cli command to its end (up to timeout_ms); 0 when it exits 0.
 * Its output is printed when it fails. */
static inline int cluster_cli(const char *const argv[], int timeout_ms) {
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    int rc;
    if (p == NULL)
        return -1;
    if (harness_proc_wait(p, timeout_ms) != 0) {
        cluster_say("%s %s did not end within %d ms", argv[0], argv[2], timeout_ms);
        harness_proc_free(p);
        return -1;
    }
    rc = harness_proc_exit_code(p);
    if (rc != 0) {
        char *out = harness_proc_stdout(p), *err = harness_proc_stderr(p);
        cluster_say("%s %s exited %d:\n%s\n%s", argv[0], argv[2], rc, out ? out : "",
                    err ? err : "");
        free(out);
        free(err);
    }
    harness_proc_free(p);
    return rc == 0 ? 0 : -1;
}

/* True when node i says cluster_state:ok. */
static inline bool cluster_node_ok(const harness_cluster_t *cl, int i) {
    redisReply *r = cluster_node_command(cl, i, "CLUSTER INFO");
    bool ok = r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

/* The node serving slot as a primary according to node `ask` (-1: any
 * live node), or -1. */
static inline int cluster_primary_of_slot_by(const harness_cluster_t *cl, int ask, int slot) {
    int found = -1;
    for (int i = 0; i < cl->n && found < 0; i++) {
        if ((ask >= 0 && i != ask) || cl->node[i].proc == NULL)
            continue;
        redisReply *r = cluster_node_command(cl, i, "CLUSTER SLOTS");
        for (size_t k = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
            redisReply *e = r->element[k];
            if (e->elements >= 3 && e->element[0]->integer <= slot &&
                slot <= e->element[1]->integer)
                found = cluster_node_by_port(cl, (int)e->element[2]->element[1]->integer);
        }
        if (r != NULL)
            freeReplyObject(r);
        if (r != NULL)
            break;
    }
    return found;
}

static inline int cluster_primary_of_slot(const harness_cluster_t *cl, int slot) {
    return cluster_primary_of_slot_by(cl, -1, slot);
}

/* True when node i is a primary, or a replica whose link to its primary is
 * up (synced: it may take over). */
static inline bool cluster_node_synced(const harness_cluster_t *cl, int i) {
    redisReply *r = cluster_node_command(cl, i, "INFO replication");
    bool ok =
        r != NULL && r->type == REDIS_REPLY_STRING &&
        (strstr(r->str, "role:master") != NULL || strstr(r->str, "master_link_status:up") != NULL);
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

/* True when every live node says cluster_state:ok, every replica is synced
 * and they all agree that every slot is served by a live node. */
static inline bool cluster_settled(void *arg) {
    const harness_cluster_t *cl = arg;
    static const int probes[] = {0, 1, 2000, 5460, 5461, 8000, 10922, 10923, 16383};
    for (int i = 0; i < cl->n; i++) {
        if (cl->node[i].proc == NULL)
            continue;
        if (!cluster_node_ok(cl, i) || !cluster_node_synced(cl, i))
            return false;
        for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
            int owner = cluster_primary_of_slot_by(cl, i, probes[p]);
            if (owner < 0 || cl->node[owner].proc == NULL)
                return false;
        }
    }
    return true;
}

static inline int cluster_wait_settled(harness_cluster_t *cl, int timeout_ms) {
    return harness_wait_until(cluster_settled, cl, timeout_ms);
}

static inline void cluster_free(harness_cluster_t *cl) {
    if (cl == NULL)
        return;
    for (int i = 0; i < cl->n; i++) {
        if (cl->node[i].proc != NULL)
            harness_proc_kill(cl->node[i].proc);
        harness_proc_free(cl->node[i].proc);
        cl->node[i].proc = NULL;
    }
    free(cl);
}

/* Starts primaries * (1 + replicas_each) nodes and joins them with
 * redis-cli --cluster create; returns once every node says cluster_state:ok. */
static inline harness_cluster_t *cluster_start(int primaries, int replicas_each,
                                               int node_timeout_ms) {
    harness_cluster_t *cl = calloc(1, sizeof *cl);
    const char *argv[CLUSTER_MAX_NODES + 8];
    char addr[CLUSTER_MAX_NODES][32], replicas[8];
    int argc = 0;
    size_t o;

    if (cl == NULL || harness_init() != 0)
        goto fail;
    cl->n = primaries * (1 + replicas_each);
    cl->node_timeout_ms = node_timeout_ms;
    if (cl->n > CLUSTER_MAX_NODES)
        goto fail;
    for (int i = 0; i < cl->n; i++) {
        cluster_node_t *nd = &cl->node[i];
        int attempt = 0;
        do {
            nd->port = harness_free_port();
            do
                nd->bus_port = harness_free_port();
            while (nd->bus_port == nd->port);
            snprintf(nd->dir, sizeof nd->dir, "%s/cluster-%d", harness_tmpdir(), nd->port);
            if (mkdir(nd->dir, 0755) != 0 && errno != EEXIST) {
                cluster_say("mkdir %s: %s", nd->dir, strerror(errno));
                goto fail;
            }
        } while (cluster_launch(cl, i) != 0 && ++attempt < 3);
        if (nd->proc == NULL)
            goto fail;
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", nd->port);
    }
    argv[argc++] = "redis-cli";
    argv[argc++] = "--cluster";
    argv[argc++] = "create";
    for (int i = 0; i < cl->n; i++)
        argv[argc++] = addr[i];
    snprintf(replicas, sizeof replicas, "%d", replicas_each);
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = replicas;
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;
    if (cluster_cli(argv, 60000) != 0 || cluster_wait_settled(cl, 30000) != 0)
        goto fail;
    o = (size_t)snprintf(cl->url, sizeof cl->url, "redis-cluster://");
    for (int i = 0, k = 0; i < cl->n; i++) {
        redisReply *r = cluster_node_command(cl, i, "ROLE");
        bool primary = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                       strcmp(r->element[0]->str, "master") == 0;
        if (r != NULL)
            freeReplyObject(r);
        if (primary)
            o += (size_t)snprintf(cl->url + o, sizeof cl->url - o, "%s127.0.0.1:%d", k++ ? "," : "",
                                  cl->node[i].port);
    }
    return cl;
fail:
    cluster_say("cluster start failed");
    cluster_free(cl);
    return NULL;
}

/* Node i's role: true for a primary that serves slots. */
static inline bool cluster_is_primary(const harness_cluster_t *cl, int i) {
    redisReply *r = cluster_node_command(cl, i, "ROLE");
    bool primary = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                   strcmp(r->element[0]->str, "master") == 0;
    if (r != NULL)
        freeReplyObject(r);
    return primary;
}

/* The live primaries, in node order (up to max). */
static inline int cluster_primaries(const harness_cluster_t *cl, int *out, int max) {
    int n = 0;
    for (int i = 0; i < cl->n && n < max; i++)
        if (cl->node[i].proc != NULL && cluster_is_primary(cl, i))
            out[n++] = i;
    return n;
}

/* The argv of `redis-cli --cluster reshard` moving nslots from node `from`
 * to node `to` (buffers in *bufs). */
typedef struct cluster_reshard_args {
    char at[32], from[64], to[64], slots[16];
    const char *argv[16];
} cluster_reshard_args_t;

static inline void cluster_reshard_argv(const harness_cluster_t *cl, int from, int to, int nslots,
                                        cluster_reshard_args_t *a) {
    int k = 0;
    snprintf(a->at, sizeof a->at, "127.0.0.1:%d", cl->node[to].port);
    snprintf(a->from, sizeof a->from, "%s", cl->node[from].id);
    snprintf(a->to, sizeof a->to, "%s", cl->node[to].id);
    snprintf(a->slots, sizeof a->slots, "%d", nslots);
    a->argv[k++] = "redis-cli";
    a->argv[k++] = "--cluster";
    a->argv[k++] = "reshard";
    a->argv[k++] = a->at;
    a->argv[k++] = "--cluster-from";
    a->argv[k++] = a->from;
    a->argv[k++] = "--cluster-to";
    a->argv[k++] = a->to;
    a->argv[k++] = "--cluster-slots";
    a->argv[k++] = a->slots;
    a->argv[k++] = "--cluster-yes";
    a->argv[k++] = "--cluster-pipeline";
    a->argv[k++] = "1"; /* one key per MIGRATE: a slot stays half-moved longer */
    a->argv[k] = NULL;
}

/* Starts a reshard in the background (the caller waits for and frees the
 * proc: harness_proc_wait, exit code 0). */
static inline harness_proc_t *cluster_reshard_start(const harness_cluster_t *cl, int from, int to,
                                                    int nslots) {
    cluster_reshard_args_t a;
    cluster_reshard_argv(cl, from, to, nslots, &a);
    return harness_spawn(a.argv, NULL, 0);
}

static inline int cluster_reshard(const harness_cluster_t *cl, int from, int to, int nslots) {
    cluster_reshard_args_t a;
    cluster_reshard_argv(cl, from, to, nslots, &a);
    return cluster_cli(a.argv, 120000);
}

/* Sets slot `slot` migrating from node `from` to node `to` (both sides) and
 * migrates the keys given (NULL-terminated) only: the slot is left half
 * moved, so that the source answers ASK for those keys. */
static inline int cluster_slot_half_move(const harness_cluster_t *cl, int slot, int from, int to,
                                         const char *const keys[]) {
    redisReply *r;
    int rc = 0;
    r = cluster_node_command(cl, to, "CLUSTER SETSLOT %d IMPORTING %s", slot, cl->node[from].id);
    rc |= r == NULL || r->type == REDIS_REPLY_ERROR;
    if (r != NULL)
        freeReplyObject(r);
    r = cluster_node_command(cl, from, "CLUSTER SETSLOT %d MIGRATING %s", slot, cl->node[to].id);
    rc |= r == NULL || r->type == REDIS_REPLY_ERROR;
    if (r != NULL)
        freeReplyObject(r);
    for (size_t k = 0; keys != NULL && keys[k] != NULL; k++) {
        r = cluster_node_command(cl, from, "MIGRATE 127.0.0.1 %d %s 0 5000", cl->node[to].port,
                                 keys[k]);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            cluster_say("MIGRATE %s: %s", keys[k], r != NULL ? r->str : "no reply");
        rc |= r == NULL || r->type == REDIS_REPLY_ERROR;
        if (r != NULL)
            freeReplyObject(r);
    }
    return rc ? -1 : 0;
}

/* Ends a half move: the slot belongs to `to` on every primary. */
static inline int cluster_slot_finish_move(const harness_cluster_t *cl, int slot, int from,
                                           int to) {
    int rc = 0;
    redisReply *r;
    /* the keys still at the source go first */
    for (;;) {
        r = cluster_node_command(cl, from, "CLUSTER GETKEYSINSLOT %d 100", slot);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            if (r != NULL)
                freeReplyObject(r);
            break;
        }
        for (size_t k = 0; k < r->elements; k++) {
            redisReply *m = cluster_node_command(cl, from, "MIGRATE 127.0.0.1 %d %s 0 5000",
                                                 cl->node[to].port, r->element[k]->str);
            rc |= m == NULL || m->type == REDIS_REPLY_ERROR;
            if (m != NULL)
                freeReplyObject(m);
        }
        freeReplyObject(r);
        if (rc)
            return -1;
    }
    for (int i = 0; i < cl->n; i++) {
        if (cl->node[i].proc == NULL || !cluster_is_primary(cl, i))
            continue;
        r = cluster_node_command(cl, i, "CLUSTER SETSLOT %d NODE %s", slot, cl->node[to].id);
        rc |= r == NULL || r->type == REDIS_REPLY_ERROR;
        if (r != NULL)
            freeReplyObject(r);
    }
    return rc ? -1 : 0;
}

/* cmocka group setup / teardown of a binary that needs one cluster (three
 * primaries, three replicas, cluster-node-timeout 1000 ms) in *cl. */
static inline int cluster_group_setup(void **state, harness_cluster_t **cl) {
    if (harness_group_setup(state) != 0)
        return -1;
    *cl = cluster_start(3, 1, 1000);
    return *cl != NULL ? 0 : -1;
}

static inline int cluster_group_teardown(void **state, harness_cluster_t **cl) {
    cluster_free(*cl);
    *cl = NULL;
    return harness_group_teardown(state);
}

/* SIGKILLs node i (no shutdown, no last writes). */
static inline void cluster_kill(harness_cluster_t *cl, int i) {
    if (cl->node[i].proc != NULL) {
        harness_proc_kill(cl->node[i].proc);
        harness_proc_free(cl->node[i].proc);
        cl->node[i].proc = NULL;
    }
}

/* SIGKILLs the primary serving slot; returns its index (-1: none found). */
static inline int cluster_kill_primary_of_slot(harness_cluster_t *cl, int slot) {
    int i = cluster_primary_of_slot(cl, slot);
    if (i >= 0)
        cluster_kill(cl, i);
    return i;
}

/* Waits until a replica took over the dead node's slots and the cluster is
 * ok again on every live node. */
static inline int cluster_wait_failover(harness_cluster_t *cl, int timeout_ms) {
    return cluster_wait_settled(cl, timeout_ms);
}

#endif
