/*
 * opstream Redis link: one logical connection to a Redis deployment, used by
 * every program that writes or reads the query contract's keys.
 *
 *   redis://, unix://, redis+unix://   a single server
 *   redis-sentinel://...#MASTER        the primary the sentinels name
 *   redis-cluster://seed[,seed...]     a Redis Cluster, commands routed by slot
 *
 * Commands are pipelined: append any number, then read their replies in the
 * order they were appended. Each command names the key that routes it (its
 * hash slot in a cluster; ignored by a single server). A script's keys must
 * all share the routing key's slot ("{OP}" hash tags make that so for the
 * keys of one operation).
 *
 * Connection is lazy: the first append connects. After an I/O error every
 * reply not yet read is lost (its command may or may not have run) and the
 * link drops its connections; the next append reconnects (through the
 * sentinels again, or with a fresh slot map). Error replies are returned as
 * replies; replies that say the server is no longer the place to write
 * (READONLY, LOADING, MASTERDOWN) also make the next append reconnect.
 */
#ifndef OPSTREAM_REDIS_LINK_H
#define OPSTREAM_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ops_redis_link ops_redis_link_t;

/* Checks the URL (nothing is connected yet). timeout_ms bounds each connect
 * and each reply (<= 0: the default). password_file as for ops_redis_connect.
 * NULL with errstr on a bad URL or out of memory. */
ops_redis_link_t *ops_redis_link_new(const char *url, const char *password_file, int timeout_ms,
                                     char *errstr, size_t errstr_size);
void ops_redis_link_destroy(ops_redis_link_t *l); /* accepts NULL */

/* Queues one command, routed by route_key (NULL: any node; a single server
 * ignores it). Connects first when needed. Returns 0, or -1 with errstr (the
 * deployment cannot be reached; nothing was queued). */
int ops_redis_link_append(ops_redis_link_t *l, const char *route_key, int argc, const char **argv,
                          const size_t *argvlen, char *errstr, size_t errstr_size);

/* Sends what was queued so far without waiting for a reply, so that the
 * server starts on it while more is queued (a single server; a cluster's
 * commands go out at the first reply). Returns 0, or -1 with errstr: the
 * connection failed, the replies pending on it are lost, and nothing more
 * may be queued for them (the next append would start a new connection). */
int ops_redis_link_flush(ops_redis_link_t *l, char *errstr, size_t errstr_size);

/* The reply of the oldest command not yet answered; the caller frees it
 * (freeReplyObject). Cluster redirections (MOVED, ASK) are followed inside.
 * NULL with errstr on an I/O error (see above) or when nothing is pending. */
redisReply *ops_redis_link_reply(ops_redis_link_t *l, char *errstr, size_t errstr_size);

/* append + reply, for a single command. Only when nothing else is pending. */
redisReply *ops_redis_link_command(ops_redis_link_t *l, const char *route_key, int argc,
                                   const char **argv, const size_t *argvlen, char *errstr,
                                   size_t errstr_size);

/* ops_redis_link_command for a command that may run twice (it changes
 * nothing the second time): when the connection turns out gone at this use
 * (a Redis restart, a failover since the last command), the command is sent
 * once more on the connection the link makes afresh, so that an outage
 * already over is not reported. */
redisReply *ops_redis_link_command_again(ops_redis_link_t *l, const char *route_key, int argc,
                                         const char **argv, const size_t *argvlen, char *errstr,
                                         size_t errstr_size);

/* Commands appended whose replies were not read yet. */
size_t ops_redis_link_pending(const ops_redis_link_t *l);

/* Drops every connection (pending replies are lost); the next append
 * connects afresh. */
void ops_redis_link_reset(ops_redis_link_t *l);

/* "host:port" of the server the link is connected to now ("" when it is
 * not): for redis-sentinel://, the primary it found, so that a program can
 * say when a failover moved it. */
void ops_redis_link_where(const ops_redis_link_t *l, char *buf, size_t size);

/* Connects when needed and checks with ROLE that the server is a primary
 * (ops_redis_check_primary): 0, or -1 with errstr. Nothing may be pending.
 * A cluster link answers 0 at once (it routes to primaries only). */
int ops_redis_link_check_primary(ops_redis_link_t *l, char *errstr, size_t errstr_size);

/* True for a redis-cluster:// link. */
bool ops_redis_link_is_cluster(const ops_redis_link_t *l);

/* The slot router behind a redis-cluster:// link (its redirection counts,
 * its map), NULL otherwise. Owned by the link. */
struct ops_redis_cluster;
struct ops_redis_cluster *ops_redis_link_cluster(ops_redis_link_t *l);

#ifdef __cplusplus
}
#endif
#endif
