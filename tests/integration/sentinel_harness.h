/*
 * A Redis Sentinel deployment for integration tests: a primary, a replica
 * and three sentinels (redis-sentinel) on free 127.0.0.1 ports in the
 * harness's temp dir, with a short down-after time so that a failover takes
 * seconds. The replica reaches its primary through a small TCP relay owned
 * by the test, which can hold the primary's replication stream: the replica
 * then misses the primary's last writes, the way asynchronous replication
 * loses them when a primary dies under load. Static functions, included by
 * each test that needs them.
 */
#ifndef OPSTREAM_SENTINEL_HARNESS_H
#define OPSTREAM_SENTINEL_HARNESS_H

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "relay.h"

#define SH_HELPER __attribute__((unused)) static
#define SH_MASTER "opsmaster"
#define SH_SENTINELS 3

/* ---- the deployment ------------------------------------------------------- */

typedef struct sh_deployment {
    harness_redis_t *node[2]; /* node[0] starts as the primary */
    relay_t *relay;           /* node[1] replicates from node[0] through it */
    harness_proc_t *sentinel[SH_SENTINELS];
    int sentinel_port[SH_SENTINELS];
    char url[256]; /* redis-sentinel://127.0.0.1:P1,...#opsmaster */
} sh_deployment_t;

static redisReply *sh_command_port(int port, const char *fmt, ...) {
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *reply = NULL;
    va_list ap;

    if (c == NULL || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return reply;
}

/* The primary's port as sentinel i names it, or -1. */
SH_HELPER int sh_sentinel_says(const sh_deployment_t *d, int i) {
    redisReply *r = sh_command_port(d->sentinel_port[i], "SENTINEL get-master-addr-by-name %s",
                                    SH_MASTER);
    int port = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        port = atoi(r->element[1]->str);
    if (r != NULL)
        freeReplyObject(r);
    return port;
}

/* The node listening on port, or NULL. */
SH_HELPER harness_redis_t *sh_node(const sh_deployment_t *d, int port) {
    for (int i = 0; i < 2; i++)
        if (d->node[i] != NULL && d->node[i]->port == port)
            return d->node[i];
    return NULL;
}

/* Whether node's ROLE is master. */
SH_HELPER bool sh_is_primary(const harness_redis_t *node) {
    redisReply *r = harness_redis_command(node, "ROLE");
    bool yes = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
               strcmp(r->element[0]->str, "master") == 0;

    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

static int sh_count_entries(int port, const char *sub) {
    redisReply *r = sh_command_port(port, "SENTINEL %s %s", sub, SH_MASTER);
    int n = r != NULL && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : -1;

    if (r != NULL)
        freeReplyObject(r);
    return n;
}

/* Ready for a failover: the replica is in sync and every sentinel knows it
 * and the two other sentinels. */
static bool sh_ready(void *arg) {
    sh_deployment_t *d = arg;
    redisReply *r = harness_redis_command(d->node[1], "INFO replication");
    bool synced = r != NULL && r->type == REDIS_REPLY_STRING &&
                  strstr(r->str, "master_link_status:up") != NULL;

    if (r != NULL)
        freeReplyObject(r);
    for (int i = 0; synced && i < SH_SENTINELS; i++)
        synced = sh_count_entries(d->sentinel_port[i], "replicas") == 1 &&
                 sh_count_entries(d->sentinel_port[i], "sentinels") == SH_SENTINELS - 1;
    return synced;
}

static bool sh_pongs(void *arg) {
    redisReply *r = sh_command_port(*(int *)arg, "PING");
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;

    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

/* One sentinel on a free port, watching the primary: down after 1 s, a
 * failover may take 30 s (also how long a replica may replicate from
 * another address, the relay, before a sentinel "fixes" it). */
static int sh_sentinel_start(sh_deployment_t *d, int i) {
    for (int attempt = 0; attempt < 3; attempt++) {
        char dir[HARNESS_PATH_MAX], conf[HARNESS_PATH_MAX + 32], text[HARNESS_PATH_MAX * 2 + 512];
        int port = harness_free_port();

        snprintf(dir, sizeof dir, "%s/sentinel-%d", harness_tmpdir(), port);
        snprintf(conf, sizeof conf, "%s/sentinel.conf", dir);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        snprintf(text, sizeof text,
                 "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s/sentinel.log\n"
                 "sentinel monitor %s 127.0.0.1 %d 2\n"
                 "sentinel down-after-milliseconds %s 1000\n"
                 "sentinel failover-timeout %s 30000\n",
                 port, dir, dir, SH_MASTER, d->node[0]->port, SH_MASTER, SH_MASTER);
        if (harness_write_file(conf, text, (size_t)-1) != 0)
            return -1;
        const char *argv[] = {"redis-sentinel", conf, NULL};
        d->sentinel[i] = harness_spawn(argv, NULL, 0);
        d->sentinel_port[i] = port;
        if (d->sentinel[i] != NULL && harness_wait_until(sh_pongs, &d->sentinel_port[i], 5000) == 0)
            return 0;
        harness_proc_free(d->sentinel[i]);
        d->sentinel[i] = NULL;
    }
    return -1;
}

/* Starts the primary, the replica (through the relay) and the sentinels,
 * and waits until a failover could happen. */
SH_HELPER int sh_start(sh_deployment_t *d) {
    redisReply *r;
    size_t off;

    memset(d, 0, sizeof(*d));
    d->node[0] = harness_redis_start(true);
    d->node[1] = harness_redis_start(true);
    if (d->node[0] == NULL || d->node[1] == NULL ||
        (d->relay = relay_start(d->node[0]->port)) == NULL)
        return -1;
    /* no 5 s wait before the first full sync */
    r = harness_redis_command(d->node[0], "CONFIG SET repl-diskless-sync-delay 0");
    if (r != NULL)
        freeReplyObject(r);
    r = harness_redis_command(d->node[1], "REPLICAOF 127.0.0.1 %d", d->relay->port);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "harness: REPLICAOF failed: %s\n", r ? r->str : "no reply");
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    off = (size_t)snprintf(d->url, sizeof d->url, "redis-sentinel://");
    for (int i = 0; i < SH_SENTINELS; i++) {
        if (sh_sentinel_start(d, i) != 0)
            return -1;
        off += (size_t)snprintf(d->url + off, sizeof d->url - off, "%s127.0.0.1:%d",
                                i ? "," : "", d->sentinel_port[i]);
    }
    snprintf(d->url + off, sizeof d->url - off, "#%s", SH_MASTER);
    return harness_wait_until(sh_ready, d, 30000);
}

SH_HELPER void sh_free(sh_deployment_t *d) {
    for (int i = 0; i < SH_SENTINELS; i++) {
        harness_proc_free(d->sentinel[i]);
        d->sentinel[i] = NULL;
    }
    relay_free(d->relay);
    d->relay = NULL;
    for (int i = 0; i < 2; i++) {
        harness_redis_free(d->node[i]);
        d->node[i] = NULL;
    }
}

typedef struct sh_promotion {
    sh_deployment_t *d;
    int old_port;
    harness_redis_t *now; /* set once every sentinel names it and it is a master */
} sh_promotion_t;

static bool sh_promoted(void *arg) {
    sh_promotion_t *p = arg;
    int port = -1;

    for (int i = 0; i < SH_SENTINELS; i++) {
        int says = sh_sentinel_says(p->d, i);
        if (says <= 0 || says == p->old_port || (port > 0 && says != port))
            return false;
        port = says;
    }
    p->now = sh_node(p->d, port);
    return p->now != NULL && sh_is_primary(p->now);
}

/* Waits until the sentinels agree on a primary other than old_port and it
 * says it is one. Returns it, or NULL after timeout_ms. */
SH_HELPER harness_redis_t *sh_wait_promotion(sh_deployment_t *d, int old_port, int timeout_ms) {
    sh_promotion_t p = {d, old_port, NULL};

    return harness_wait_until(sh_promoted, &p, timeout_ms) == 0 ? p.now : NULL;
}

#endif
