/*
 * opstream Redis Cluster router: a slot router over hiredis 0.14 (which has
 * no cluster support) following the Redis Cluster specification. Keys map
 * to one of 16384 hash slots (CRC16 of the key's hash tag); CLUSTER SLOTS
 * says which primary serves each slot; MOVED and ASK redirections, TRYAGAIN
 * and CLUSTERDOWN are followed inside. The Redis link (redis_link.h) uses
 * it for redis-cluster:// URLs; the pure parts are exposed for tests.
 */
#ifndef OPSTREAM_REDIS_CLUSTER_H
#define OPSTREAM_REDIS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_REDIS_CLUSTER_SLOTS 16384
#define OPS_REDIS_CLUSTER_MAX_SEEDS 16

/* ---- pure parts ------------------------------------------------------------ */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the cluster's key
 * hash: "123456789" gives 0x31C3. */
uint16_t ops_redis_cluster_crc16(const char *buf, size_t len);

/* The hash slot of a key: CRC16 mod 16384 of the hash tag when the key has
 * one (the bytes between its first '{' and the next '}', when not empty),
 * of the whole key otherwise. */
int ops_redis_cluster_key_slot(const char *key, size_t len);

/* True when url starts with redis-cluster:// (any case). */
bool ops_redis_cluster_url_is(const char *url);

typedef struct ops_redis_cluster_seed {
    char host[256];
    int port; /* default 6379 */
} ops_redis_cluster_seed_t;

typedef struct ops_redis_cluster_url {
    char user[128];     /* empty: no ACL user */
    char password[256]; /* empty: no AUTH */
    size_t n_seeds;
    ops_redis_cluster_seed_t seeds[OPS_REDIS_CLUSTER_MAX_SEEDS];
} ops_redis_cluster_url_t;

/* Parses redis-cluster://[user:password@]host[:port][,host[:port]...][/0]
 * [?user=U&password=P]. IPv6 hosts go in brackets. Returns 0, or -1 with
 * errstr naming what is wrong (never the password). */
int ops_redis_cluster_url_parse(const char *url, ops_redis_cluster_url_t *out, char *errstr,
                                size_t errstr_size);

/* One line of CLUSTER SLOTS: slots start..end (inclusive) served by the
 * primary at host:port. */
typedef struct ops_redis_cluster_range {
    int start, end;
    char host[256];
    int port;
} ops_redis_cluster_range_t;

/* Reads a CLUSTER SLOTS reply. An empty primary host ("" or "?": the node
 * does not know its own address) means queried_host. *ranges is malloc'd
 * (free it); 0, or -1 with errstr on a reply of another shape. */
int ops_redis_cluster_slots_parse(const redisReply *r, const char *queried_host,
                                  ops_redis_cluster_range_t **ranges, size_t *n, char *errstr,
                                  size_t errstr_size);

typedef enum ops_redis_cluster_redirect {
    OPS_REDIS_CLUSTER_NO_REDIRECT = 0,
    OPS_REDIS_CLUSTER_MOVED,
    OPS_REDIS_CLUSTER_ASK,
} ops_redis_cluster_redirect_t;

/* Reads "MOVED 3999 127.0.0.1:6381" or "ASK 3999 [::1]:6381" (an error
 * reply's text). An empty host (":6381") means current_host. Anything else,
 * or a malformed redirection, is OPS_REDIS_CLUSTER_NO_REDIRECT. */
ops_redis_cluster_redirect_t ops_redis_cluster_redirect_parse(const char *err,
                                                              const char *current_host, int *slot,
                                                              char *host, size_t host_size,
                                                              int *port);

/* ---- the router ------------------------------------------------------------ */

typedef struct ops_redis_cluster ops_redis_cluster_t;

/* Checks the URL; nothing is connected yet. timeout_ms bounds each connect,
 * each reply, and the retries of one command (TRYAGAIN, CLUSTERDOWN, a
 * primary that cannot be reached while its replica is promoted); <= 0: 5 s.
 * password_file (may be NULL or empty) overrides the URL's password. */
ops_redis_cluster_t *ops_redis_cluster_new(const char *url, const char *password_file,
                                           int timeout_ms, char *errstr, size_t errstr_size);
void ops_redis_cluster_destroy(ops_redis_cluster_t *c); /* accepts NULL */

/* The link's contract (redis_link.h): queue a command routed by the slot of
 * route_key (NULL: any node), read the replies in append order. A MOVED or
 * ASK reply makes the router send the command again where it is told (each
 * pending command's bytes are kept until its reply is read) and return the
 * final reply in its place. After an I/O error every reply not yet read is
 * lost and every connection is dropped; the next append refreshes the map. */
int ops_redis_cluster_append(ops_redis_cluster_t *c, const char *route_key, int argc,
                             const char **argv, const size_t *argvlen, char *errstr,
                             size_t errstr_size);
redisReply *ops_redis_cluster_reply(ops_redis_cluster_t *c, char *errstr, size_t errstr_size);
size_t ops_redis_cluster_pending(const ops_redis_cluster_t *c);
void ops_redis_cluster_reset(ops_redis_cluster_t *c);

/* What the router did since it was made, for logs and tests. */
typedef struct ops_redis_cluster_stats {
    uint64_t moved;       /* MOVED replies followed */
    uint64_t ask;         /* ASK replies followed */
    uint64_t retried;     /* TRYAGAIN / CLUSTERDOWN replies retried */
    uint64_t refreshes;   /* CLUSTER SLOTS maps loaded */
    uint64_t lost;        /* connections lost (pending replies dropped) */
    uint64_t unreachable; /* connects that failed (a primary down) */
} ops_redis_cluster_stats_t;

void ops_redis_cluster_get_stats(const ops_redis_cluster_t *c, ops_redis_cluster_stats_t *out);

/* "host:port" of the primary serving slot in the current map ("" when the
 * map is not loaded or the slot is not served). */
const char *ops_redis_cluster_slot_addr(const ops_redis_cluster_t *c, int slot, char *buf,
                                        size_t size);

#ifdef __cplusplus
}
#endif
#endif
