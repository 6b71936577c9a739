/*
 * opstream counter, Redis half: applies a counter batch (counter.h) to Redis
 * in one atomic step, a Lua script loaded with SCRIPT LOAD and run with
 * EVALSHA (reloaded after NOSCRIPT), and reads the stored offsets back on
 * partition assignment. One round trip per batch in the common case.
 */
#ifndef OPSTREAM_COUNTER_REDIS_H
#define OPSTREAM_COUNTER_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "opstream/counter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ops_counter_redis ops_counter_redis_t;

/* Keeps the URL and password file (copied) and connects lazily: a Redis
 * that is down is not an error here. timeout_ms bounds connect and each
 * command (0: 5000). NULL with errstr on a bad URL or out of memory. */
ops_counter_redis_t *ops_counter_redis_new(const char *url, const char *password_file,
                                           int timeout_ms, char *errstr, size_t errstr_size);
void ops_counter_redis_destroy(ops_counter_redis_t *cr); /* accepts NULL */

typedef enum ops_counter_step {
    OPS_COUNTER_STEP_APPLIED = 0, /* counters, dedupe marks and next offsets written
                                   * together; the batch is emptied */
    OPS_COUNTER_STEP_FENCED,      /* Redis holds other offsets for a partition of the
                                   * batch (another consumer moved on, or a batch
                                   * of an earlier run applied before its reply was
                                   * lost; this batch's own lost offsets write is
                                   * APPLIED, not FENCED): NOTHING
                                   * was written, the batch is dropped; reload the
                                   * offsets and seek to them */
    OPS_COUNTER_STEP_FAILED,      /* Redis unreachable or an error: the batch is kept
                                   * untouched; retry later */
    OPS_COUNTER_STEP_REFUSED      /* a key the step would write cannot take the write
                                   * (another type, e.g. a string where a counter
                                   * hash lives; a counter field that is not an
                                   * integer or would leave int64; an expiry Redis
                                   * refuses): NOTHING was written, offsets did not
                                   * move, errstr names the key; the batch is kept
                                   * untouched, retry with backoff (an operator
                                   * must fix the key) */
} ops_counter_step_t;

/* Applies the batch of c at wall-clock now_ms. Events Redis reports as
 * already counted (dedupe window) are dropped from the batch and the step
 * is re-run without them; *seenp (may be NULL) gets how many. An empty batch
 * is APPLIED without a round trip. A connection lost with the step's
 * commands sent on it is replaced and the step sent again at once, once
 * (ops_counter_redis_resends): a step applied before the loss is found
 * applied (its events are not duplicates, its offsets not a fence). errstr
 * says why on FENCED, FAILED and REFUSED. */
ops_counter_step_t ops_counter_redis_apply(ops_counter_redis_t *cr, ops_counter_t *c,
                                           int64_t now_ms, size_t *seenp, char *errstr,
                                           size_t errstr_size);

/* After each step's offsets write, WAIT for replicas replicas (at most
 * timeout_ms) on the same link; replicas 0 (the default): no WAIT. Fewer
 * replicas acknowledging is not an error: ops_counter_redis_wait_acked says
 * how many did, for the program to log. */
void ops_counter_redis_set_wait(ops_counter_redis_t *cr, int replicas, int timeout_ms);
/* Replicas the last step's WAIT reported; -1 when the last step sent none. */
long long ops_counter_redis_wait_acked(const ops_counter_redis_t *cr);
/* Steps sent a second time at once because a connection was lost with the
 * step's commands sent on it (see ops_counter_redis_apply), since cr was
 * made. */
unsigned long long ops_counter_redis_resends(const ops_counter_redis_t *cr);

/* Reads opstream:offsets:{GROUP} for every partition assigned in c and sets
 * each one's stored offset (ops_counter_assign). 0, or -1 with errstr when
 * Redis is unreachable (c unchanged). */
int ops_counter_redis_load_offsets(ops_counter_redis_t *cr, ops_counter_t *c, const char *group,
                                   char *errstr, size_t errstr_size);

/* Records a gap (ops_counter_pending_gaps) in the hash opstream:gaps:GROUP:
 * field "TOPIC:PARTITION:FROM-TO" (offsets never counted, inclusive), value
 * the wall-clock ms it was found. Done before the batch that passes the gap
 * is applied, so no offset moves past lost messages without a record.
 * Returns 1 when the gap is newly recorded, 0 when it was already there,
 * -1 with errstr when Redis is unreachable or refuses. An HSET whose reply
 * was lost with its connection is sent again at once, and its "already
 * there" then counts as new (1): a gap is never left unreported. */
int ops_counter_redis_record_gap(ops_counter_redis_t *cr, const char *group,
                                 const ops_counter_gap_t *gap, int64_t now_ms, char *errstr,
                                 size_t errstr_size);

/* "host:port" of the server the store is connected to ("" when it is not):
 * for a redis-sentinel:// URL, the primary it found, so that a program can
 * say when that changes. */
void ops_counter_redis_where(const ops_counter_redis_t *cr, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
