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

#define SH_HELPER __attribute__((unused)) static
#define SH_MASTER "opsmaster"
#define SH_SENTINELS 3

/* ---- the replication relay --------------------------------------------- */

typedef struct sh_relay {
    int listen_fd;
    int port;        /* where the replica connects */
    int target_port; /* the primary */
    int down_fd, up_fd; /* replica side, primary side; -1 when none */
    volatile int hold;  /* 1: the primary's bytes are not passed on */
    volatile int drop;  /* 1: close both sides, held bytes lost */
    volatile int stop;
    pthread_t thread;
} sh_relay_t;

static void sh_relay_close(sh_relay_t *r) {
    if (r->down_fd >= 0)
        close(r->down_fd);
    if (r->up_fd >= 0)
        close(r->up_fd);
    r->down_fd = r->up_fd = -1;
}

/* Copies what fd `from` has to fd `to`; false when either side is done. */
static bool sh_relay_pass(int from, int to) {
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);

    if (n <= 0)
        return false;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

static void *sh_relay_main(void *arg) {
    sh_relay_t *r = arg;

    while (!r->stop) {
        struct pollfd p[3];
        int n = 0;

        if (r->drop) {
            sh_relay_close(r);
            r->drop = 0;
        }
        p[n++] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
        if (r->down_fd >= 0)
            p[n++] = (struct pollfd){.fd = r->down_fd, .events = POLLIN};
        if (r->up_fd >= 0 && !r->hold)
            p[n++] = (struct pollfd){.fd = r->up_fd, .events = POLLIN};
        if (poll(p, (nfds_t)n, 20) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (p[i].revents == 0)
                continue;
            if (p[i].fd == r->listen_fd) {
                int fd = accept(r->listen_fd, NULL, NULL);
                if (fd < 0)
                    continue;
                struct sockaddr_in a = {.sin_family = AF_INET,
                                        .sin_port = htons((uint16_t)r->target_port),
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (r->down_fd >= 0 || r->drop || up < 0 ||
                    connect(up, (struct sockaddr *)&a, sizeof a) != 0) {
                    close(fd); /* one link at a time; a dead primary refuses */
                    if (up >= 0)
                        close(up);
                    continue;
                }
                r->down_fd = fd;
                r->up_fd = up;
            } else if (p[i].fd == r->down_fd && r->down_fd >= 0) {
                if (!sh_relay_pass(r->down_fd, r->up_fd))
                    sh_relay_close(r);
            } else if (p[i].fd == r->up_fd && r->up_fd >= 0 && !r->hold) {
                if (!sh_relay_pass(r->up_fd, r->down_fd))
                    sh_relay_close(r);
            }
        }
    }
    sh_relay_close(r);
    return NULL;
}

SH_HELPER int sh_relay_start(sh_relay_t *r, int target_port) {
    memset(r, 0, sizeof(*r));
    r->down_fd = r->up_fd = -1;
    r->target_port = target_port;
    r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (r->listen_fd < 0 || bind(r->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(r->listen_fd, 4) != 0 ||
        getsockname(r->listen_fd, (struct sockaddr *)&a, &alen) != 0) {
        fprintf(stderr, "harness: relay failed: %s\n", strerror(errno));
        return -1;
    }
    r->port = ntohs(a.sin_port);
    return pthread_create(&r->thread, NULL, sh_relay_main, r) == 0 ? 0 : -1;
}

SH_HELPER void sh_relay_stop(sh_relay_t *r) {
    if (r->listen_fd <= 0)
        return;
    r->stop = 1;
    pthread_join(r->thread, NULL);
    close(r->listen_fd);
    r->listen_fd = -1;
}

/* ---- the deployment ------------------------------------------------------- */

typedef struct sh_deployment {
    harness_redis_t *node[2]; /* node[0] starts as the primary */
    sh_relay_t relay;         /* node[1] replicates from node[0] through it */
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
    d->relay.listen_fd = -1;
    d->node[0] = harness_redis_start(true);
    d->node[1] = harness_redis_start(true);
    if (d->node[0] == NULL || d->node[1] == NULL || sh_relay_start(&d->relay, d->node[0]->port))
        return -1;
    /* no 5 s wait before the first full sync */
    r = harness_redis_command(d->node[0], "CONFIG SET repl-diskless-sync-delay 0");
    if (r != NULL)
        freeReplyObject(r);
    r = harness_redis_command(d->node[1], "REPLICAOF 127.0.0.1 %d", d->relay.port);
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
    sh_relay_stop(&d->relay);
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
