/*
 * opstream Redis adapter: parses redis:// URLs and connects with hiredis
 * (AUTH with optional user, SELECT db). hiredis 0.14 has no TLS: protect the
 * link with a local socket or a tunnel.
 */
#ifndef OPSTREAM_REDIS_H
#define OPSTREAM_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ops_redis_url {
    char host[256];   /* empty when unix_path is set */
    int port;         /* default 6379 */
    char unix_path[256]; /* redis+unix:///path/to.sock or unix:///path */
    char user[128];   /* empty: no ACL user (AUTH password only) */
    char password[256];
    int db;           /* default 0 */
} ops_redis_url_t;

/* Parses redis://[user:pass@]host[:port][/db], redis://[:pass@]host...,
 * unix:///path[?db=N]. Percent-escapes in user and password are decoded.
 * Returns 0, or -1 with errstr naming what is wrong. */
int ops_redis_url_parse(const char *url, ops_redis_url_t *out, char *errstr, size_t errstr_size);

/* Connects, authenticates and selects the db. password_file (may be NULL or
 * empty) overrides the URL's password with the file's first line, so that
 * secrets stay out of the process list. timeout_ms bounds connect and each
 * command. NULL with errstr on failure ("redis 127.0.0.1:6379: Connection
 * refused"). */
redisContext *ops_redis_connect(const char *url, const char *password_file, int timeout_ms,
                                char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
