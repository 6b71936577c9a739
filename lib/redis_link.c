/*
 * opstream Redis link (redis_link.h): a pipelined connection to one server,
 * found by ops_redis_connect (which also resolves the deployment's primary),
 * or the slot router of redis_cluster.h for a redis-cluster:// URL.
 */
#include "opstream/redis_link.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "opstream/redis.h"
#include "opstream/redis_cluster.h"
#include "err_priv.h"

struct ops_redis_link {
    char *url;
    char *password_file;
    int timeout_ms;
    redisContext *ctx;
    ops_redis_cluster_t *cluster; /* a redis-cluster:// URL: everything goes here */
    size_t pending;
    bool stale; /* a reply said this is not the primary: reconnect once drained */
};

ops_redis_link_t *ops_redis_link_new(const char *url, const char *password_file, int timeout_ms,
                                     char *errstr, size_t errstr_size) {
    ops_redis_url_t parsed;
    ops_redis_link_t *l = NULL;

    if (url == NULL) {
        ops_err_format(errstr, errstr_size, "no Redis URL");
        return NULL;
    }
    if (ops_redis_cluster_url_is(url)) {
        l = calloc(1, sizeof(*l));
        if (l == NULL) {
            ops_err_format(errstr, errstr_size, "redis: out of memory");
            return NULL;
        }
        l->cluster = ops_redis_cluster_new(url, password_file, timeout_ms, errstr, errstr_size);
        if (l->cluster == NULL) {
            free(l);
            return NULL;
        }
        return l;
    }
    if (ops_redis_url_parse(url, &parsed, errstr, errstr_size) != 0)
        return NULL;
    memset(&parsed, 0, sizeof(parsed)); /* may hold a password */
    l = calloc(1, sizeof(*l));
    if (l == NULL || (l->url = strdup(url)) == NULL ||
        (l->password_file = strdup(password_file ? password_file : "")) == NULL) {
        ops_err_format(errstr, errstr_size, "redis: out of memory");
        ops_redis_link_destroy(l);
        return NULL;
    }
    l->timeout_ms = timeout_ms;
    return l;
}

void ops_redis_link_reset(ops_redis_link_t *l) {
    if (l == NULL)
        return;
    ops_redis_cluster_reset(l->cluster);
    if (l->ctx != NULL)
        redisFree(l->ctx);
    l->ctx = NULL;
    l->pending = 0;
    l->stale = false;
}

void ops_redis_link_destroy(ops_redis_link_t *l) {
    if (l == NULL)
        return;
    ops_redis_link_reset(l);
    ops_redis_cluster_destroy(l->cluster);
    free(l->url);
    free(l->password_file);
    free(l);
}

int ops_redis_link_append(ops_redis_link_t *l, const char *route_key, int argc, const char **argv,
                          const size_t *argvlen, char *errstr, size_t errstr_size) {
    if (l->cluster != NULL)
        return ops_redis_cluster_append(l->cluster, route_key, argc, argv, argvlen, errstr,
                                        errstr_size);
    (void)route_key;
    if (l->ctx != NULL && (l->ctx->err != 0 || (l->stale && l->pending == 0)))
        ops_redis_link_reset(l);
    if (l->ctx == NULL) {
        l->ctx = ops_redis_connect(l->url, l->password_file, l->timeout_ms, errstr, errstr_size);
        if (l->ctx == NULL)
            return -1;
    }
    if (redisAppendCommandArgv(l->ctx, argc, argv, argvlen) != REDIS_OK) {
        ops_err_format(errstr, errstr_size, "redis: %s", l->ctx->errstr);
        ops_redis_link_reset(l);
        return -1;
    }
    l->pending++;
    return 0;
}

int ops_redis_link_flush(ops_redis_link_t *l, char *errstr, size_t errstr_size) {
    int done = 0;

    if (l->cluster != NULL || l->ctx == NULL)
        return 0;
    if (redisBufferWrite(l->ctx, &done) != REDIS_OK) {
        ops_err_format(errstr, errstr_size, "redis: %s",
                       l->ctx->err ? l->ctx->errstr : "connection lost");
        return -1;
    }
    return 0;
}

/* Replies that say this server is not (or no longer) where writes go. */
static bool wants_reconnect(const redisReply *r) {
    return ops_redis_reply_wants_reconnect(r); /* also when a script quotes them */
}

redisReply *ops_redis_link_reply(ops_redis_link_t *l, char *errstr, size_t errstr_size) {
    void *reply = NULL;

    if (l->cluster != NULL)
        return ops_redis_cluster_reply(l->cluster, errstr, errstr_size);
    if (l->ctx == NULL || l->pending == 0) {
        ops_err_format(errstr, errstr_size, "redis: no reply is pending");
        return NULL;
    }
    if (redisGetReply(l->ctx, &reply) != REDIS_OK || reply == NULL) {
        ops_err_format(errstr, errstr_size, "redis: %s",
                       l->ctx->err ? l->ctx->errstr : "connection lost");
        ops_redis_link_reset(l);
        return NULL;
    }
    l->pending--;
    if (wants_reconnect(reply))
        l->stale = true; /* the next append, once drained, reconnects */
    return reply;
}

redisReply *ops_redis_link_command(ops_redis_link_t *l, const char *route_key, int argc,
                                   const char **argv, const size_t *argvlen, char *errstr,
                                   size_t errstr_size) {
    if (ops_redis_link_pending(l) != 0) {
        ops_err_format(errstr, errstr_size, "redis: replies are still pending");
        return NULL;
    }
    if (ops_redis_link_append(l, route_key, argc, argv, argvlen, errstr, errstr_size) != 0)
        return NULL;
    return ops_redis_link_reply(l, errstr, errstr_size);
}

redisReply *ops_redis_link_command_again(ops_redis_link_t *l, const char *route_key, int argc,
                                         const char **argv, const size_t *argvlen, char *errstr,
                                         size_t errstr_size) {
    redisReply *r = ops_redis_link_command(l, route_key, argc, argv, argvlen, errstr, errstr_size);
    if (r == NULL && ops_redis_link_pending(l) == 0)
        r = ops_redis_link_command(l, route_key, argc, argv, argvlen, errstr, errstr_size);
    return r;
}

size_t ops_redis_link_pending(const ops_redis_link_t *l) {
    if (l != NULL && l->cluster != NULL)
        return ops_redis_cluster_pending(l->cluster);
    return l != NULL ? l->pending : 0;
}

bool ops_redis_link_is_cluster(const ops_redis_link_t *l) {
    return l != NULL && l->cluster != NULL;
}

ops_redis_cluster_t *ops_redis_link_cluster(ops_redis_link_t *l) {
    return l != NULL ? l->cluster : NULL;
}

void ops_redis_link_where(const ops_redis_link_t *l, char *buf, size_t size) {
    ops_redis_where(l != NULL && l->ctx != NULL && l->ctx->err == 0 ? l->ctx : NULL, buf, size);
}

int ops_redis_link_check_primary(ops_redis_link_t *l, char *errstr, size_t errstr_size) {
    const char *ping[] = {"PING"};
    redisReply *r;

    if (l->cluster != NULL)
        return 0; /* the slot map names primaries only; a demoted one answers MOVED */
    r = ops_redis_link_command(l, NULL, 1, ping, NULL, errstr, errstr_size); /* connected */
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return ops_redis_check_primary(l->ctx, errstr, errstr_size);
}
