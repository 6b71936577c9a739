/*
 * opstream Redis adapter: parses redis:// URLs and connects with hiredis
 * (AUTH with optional user, SELECT db). hiredis 0.14 has no TLS: protect the
 * link with a local socket or a tunnel.
 */
#ifndef OPSTREAM_REDIS_H
#define OPSTREAM_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_REDIS_MAX_SENTINELS 16

typedef struct ops_redis_url {
    char host[256];   /* empty when unix_path is set */
    int port;         /* default 6379 */
    char unix_path[256]; /* redis+unix:///path/to.sock or unix:///path */
    char user[128];   /* empty: no ACL user (AUTH password only) */
    char password[256];
    int db;           /* default 0 */

    /* redis-sentinel:// only (sentinel is false otherwise) */
    bool sentinel;
    char master[128]; /* the name after '#': the sentinels' monitored master */
    size_t nsentinels;
    struct {
        char host[256];
        int port; /* default 26379 */
    } sentinels[OPS_REDIS_MAX_SENTINELS];
    char sentinel_user[128];          /* ?sentinel_user=: AUTH to the sentinels */
    char sentinel_password_file[256]; /* ?sentinel_password_file=: its password */
} ops_redis_url_t;

/* Parses redis://[user:pass@]host[:port][/db], redis://[:pass@]host...,
 * unix:///path[?db=N] and
 * redis-sentinel://[user:pass@]host[:port][,host[:port]...][/db]#MASTER
 * (sentinel port 26379 by default; user and password are the data nodes';
 * ?sentinel_user=NAME&sentinel_password_file=PATH authenticate to sentinels
 * that require it). Percent-escapes in user, password, host and master are
 * decoded. Returns 0, or -1 with errstr naming what is wrong (never the
 * password). */
int ops_redis_url_parse(const char *url, ops_redis_url_t *out, char *errstr, size_t errstr_size);

/* Connects, authenticates and selects the db. password_file (may be NULL or
 * empty) overrides the URL's password with the file's first line, so that
 * secrets stay out of the process list. timeout_ms bounds connect and each
 * command. NULL with errstr on failure ("redis 127.0.0.1:6379: Connection
 * refused").
 *
 * A redis-sentinel:// URL asks each sentinel in turn for the master's
 * address (SENTINEL get-master-addr-by-name), connects there and checks
 * with ROLE that it is the primary; a stale answer during a failover makes
 * it try the next sentinel, in rounds, for up to timeout_ms. The error then
 * names every sentinel tried and why it did not lead to a primary. The
 * address reached: ops_redis_where. */
redisContext *ops_redis_connect(const char *url, const char *password_file, int timeout_ms,
                                char *errstr, size_t errstr_size);

/* "host:port" (or the socket path) of a connected context, into buf. */
void ops_redis_where(const redisContext *c, char *buf, size_t size);

/* True for an error reply that says the server is not (or no longer) the
 * place to write: READONLY (a replica, e.g. a demoted primary), LOADING,
 * MASTERDOWN. Whoever holds the connection drops it and connects again (a
 * redis-sentinel:// URL then finds the current primary). */
bool ops_redis_reply_wants_reconnect(const redisReply *r);

/* The same for an error message that quotes such a reply. */
bool ops_redis_error_wants_reconnect(const char *text);

/* ROLE on c: 0 when the server is a primary, -1 with errstr ("WHERE is a
 * replica now") otherwise or when ROLE fails. For long-lived readers of a
 * redis-sentinel:// deployment, whose reads a demoted primary would still
 * answer. */
int ops_redis_check_primary(redisContext *c, char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
