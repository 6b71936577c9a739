/*
 * opstream counter batch: the pure half of the exactly-once counter. It keeps
 * the consumed positions of the assigned partitions, collects one batch of
 * decoded events (dropping in-batch duplicates), aggregates them per Redis
 * key and builds the argument vector of the atomic Redis step (see
 * counter_redis.h). No I/O, so every rule is unit-tested without servers.
 */
#ifndef OPSTREAM_COUNTER_H
#define OPSTREAM_COUNTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opstream/event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_COUNTER_DEFAULT_MAX_EVENTS 5000
#define OPS_COUNTER_TOPIC_MAX 249                  /* Kafka's limit on topic names */
#define OPS_COUNTER_DEFAULT_DEDUPE_WINDOW_S 604800 /* 7 days */
#define OPS_COUNTER_DEDUPE_DEFAULT (-1)            /* dedupe_window_s: the default window */

typedef struct ops_counter_options {
    const char *group;       /* consumer group: names opstream:offsets:{GROUP}; required */
    size_t max_events;       /* messages that make a batch full; 0: 5000 */
    int64_t dedupe_window_s; /* seconds an event_id is remembered; negative
                              * (OPS_COUNTER_DEDUPE_DEFAULT): 604800 (7 days);
                              * 0: dedupe off, every message counts (a
                              * repeated id too), only the offsets keep
                              * the counts exact */
    int64_t minute_ttl_s;    /* 0: 172800 (48 h) */
    int64_t hour_ttl_s;      /* 0: 3024000 (35 days) */
} ops_counter_options_t;

typedef struct ops_counter ops_counter_t;

/* Creates an empty counter (no partitions, empty batch). The group string is
 * copied. NULL with errstr on a bad option or out of memory. */
ops_counter_t *ops_counter_new(const ops_counter_options_t *opts, char *errstr, size_t errstr_size);
void ops_counter_destroy(ops_counter_t *c); /* accepts NULL */

/* ---- partitions ---------------------------------------------------------
 * For each assigned partition the counter knows the value the offsets hash
 * holds for it ("stored": the next offset to consume, or -1 when the hash has
 * no field for it). The atomic step only writes when Redis still holds
 * exactly that value (compare-and-set), so a consumer that lost a partition
 * can never apply a stale batch. */

/* Adds (or updates) an assigned partition with its stored offset (-1: none;
 * consumption then starts at the beginning of the partition). Messages of
 * this partition already in the batch are dropped from it. -1 on a topic name
 * too long or out of memory. */
int ops_counter_assign(ops_counter_t *c, const char *topic, int32_t partition, int64_t stored,
                       char *errstr, size_t errstr_size);
/* Forgets every partition and drops the pending batch. */
void ops_counter_unassign_all(ops_counter_t *c);
/* Makes dst's partitions those of src, each at the offset it will hold once
 * src's batch is applied (its next offset where the batch has messages of
 * it, else its stored one), and empties dst's batch: dst then collects the
 * batch that follows src's while src's step runs. -1 with errstr when out
 * of memory (dst then has no partitions). */
int ops_counter_follow(ops_counter_t *dst, const ops_counter_t *src, char *errstr,
                       size_t errstr_size);
/* Number of assigned partitions, and the i-th one (0 <= i < n). */
size_t ops_counter_partitions(const ops_counter_t *c);
void ops_counter_partition(const ops_counter_t *c, size_t i, const char **topicp,
                           int32_t *partitionp, int64_t *storedp);

/* ---- the batch ----------------------------------------------------------- */

typedef enum ops_counter_add_result {
    OPS_COUNTER_ADDED = 0,    /* will be counted (and its offset passed) */
    OPS_COUNTER_DUPLICATE,    /* same event_id as an event already in the batch:
                               * its offset is passed, it is not counted */
    OPS_COUNTER_SKIPPED,      /* ops_counter_add_skip: offset passed, not counted */
    OPS_COUNTER_NOT_ASSIGNED, /* partition not assigned: ignored */
    OPS_COUNTER_STALE,        /* offset at or before one already consumed: ignored */
    OPS_COUNTER_NO_MEMORY
} ops_counter_add_result_t;

/* Adds a decoded event consumed at (topic, partition, offset). The event is
 * copied (only what counting needs). */
ops_counter_add_result_t ops_counter_add_event(ops_counter_t *c, const char *topic,
                                               int32_t partition, int64_t offset,
                                               const ops_event_t *ev);
/* Adds a message that is not counted (sent to the DLQ) so that its offset is
 * passed with the batch. */
ops_counter_add_result_t ops_counter_add_skip(ops_counter_t *c, const char *topic,
                                              int32_t partition, int64_t offset);

size_t ops_counter_pending(const ops_counter_t *c);        /* messages in the batch */
size_t ops_counter_pending_events(const ops_counter_t *c); /* events that will count */
size_t ops_counter_pending_skips(const ops_counter_t *c);  /* DLQ'd messages in it */
size_t ops_counter_dupes(const ops_counter_t *c); /* duplicates not counted since creation */
/* Times a partition's first message in a batch came after its stored
 * offset: offsets were skipped (retention removed them before they were
 * counted, or the topic is compacted). Informational; nothing is counted
 * twice, but what was skipped was never counted. */
size_t ops_counter_gaps(const ops_counter_t *c);

/* One such gap in the pending batch: offsets from..to (inclusive) of the
 * partition were passed without ever being counted. topic is owned by the
 * counter and valid while the partition stays assigned. */
typedef struct ops_counter_gap {
    const char *topic;
    int32_t partition;
    int64_t from, to;
} ops_counter_gap_t;

/* The gaps the pending batch would pass: partitions whose first message in
 * the batch comes after their stored offset. Fills up to max entries of out
 * (may be NULL with max 0) and returns how many there are. */
size_t ops_counter_pending_gaps(const ops_counter_t *c, ops_counter_gap_t *out, size_t max);
bool ops_counter_full(const ops_counter_t *c);

/* Removes from the batch the event with this (operation, event_id), because
 * Redis reports it as already counted; its offset is still passed. Returns 1
 * when one was removed, 0 when none matched. */
int ops_counter_drop_seen(ops_counter_t *c, const char *operation, const char *event_id);
/* Removes from the batch the events of operation from the partition named by
 * field ("topic:partition") whose offset is below watermark, because Redis
 * reports that an earlier step of that operation already covered them (an
 * APPLIED reply); their offsets are still passed. Returns how many.
 * Events a step of this batch applied, sent again after a failure, are
 * dropped without counting as duplicates (ops_counter_dupes). */
size_t ops_counter_drop_applied(ops_counter_t *c, const char *operation, const char *field,
                                int64_t watermark);
/* The step of a's operation call o (built from c) was applied: its events
 * are left out of the steps built from now on (they still count as pending
 * events until the batch is applied or dropped). */
struct ops_counter_args;
void ops_counter_op_applied(ops_counter_t *c, const struct ops_counter_args *a, size_t o);
/* The reply to a's operation call o (built from c) was lost with its
 * connection: the step may have been applied. Its events dropped later
 * below an applied watermark (ops_counter_drop_applied) are taken as
 * applied by that step, not as duplicates. */
void ops_counter_op_in_doubt(ops_counter_t *c, const struct ops_counter_args *a, size_t o);
/* The reply to the batch's offsets write was lost with its connection: the
 * batch may have been applied. Said until the batch is applied or dropped. */
void ops_counter_offsets_in_doubt(ops_counter_t *c);
bool ops_counter_offsets_doubted(const ops_counter_t *c);
/* The step failed before the offsets were written: every event of the
 * batch goes into the next build again, also those of operations whose
 * step was applied and those dropped as already counted (the drops are
 * taken back from the counts of duplicates). The node that applied a step
 * may lose it in a failover before its replica has it; sent again, a step
 * still held answers APPLIED (or SEEN) as before and nothing is counted
 * twice, a lost one is applied again. */
void ops_counter_ops_retry(ops_counter_t *c);
/* Operations with events in the pending batch (counted, dropped or
 * applied), and the i-th one's name (0 <= i < n; owned by c). */
size_t ops_counter_operations(const ops_counter_t *c);
const char *ops_counter_operation(const ops_counter_t *c, size_t i);
/* How many events of a kind ops_counter_drop_seen dropped since c was
 * created (for the metrics' duplicate count per topic). */
uint64_t ops_counter_seen_of_kind(const ops_counter_t *c, ops_kind_t kind);

/* The batch was applied: each partition's stored offset becomes the batch's
 * next offset, and the batch is emptied. */
void ops_counter_applied(ops_counter_t *c);
/* The batch is dropped unapplied (fenced, or its DLQ messages could not be
 * confirmed); positions stay as stored. */
void ops_counter_discard(ops_counter_t *c);

/* ---- the argument vectors of the step ------------------------------------
 * The step is one script call per operation of the batch (every key in the
 * operation's {OP} slot, declared in KEYS), then one compare-and-set script on
 * the group's offsets key. ops_counter_build lays them out in one argument
 * vector; every value is a decimal string but the event ids.
 *
 * One operation's call, argv[first .. first + argc):
 *   EVALSHA  <sha: "" here, the caller puts its script's SHA1 in>  numkeys
 *   KEYS:  applied-key  countries-key  [seen-now  seen-before]  H hash keys
 *   ARGV:  now-s  window-s  nd  mark-expireat
 *          P  { field("topic:partition")  lowest-offset  next } x P
 *          N  { event_id (its 16 UUID bytes) } x N
 *          M  { metric name } x M  (every metric, in ops_metric_t order)
 *          { expireat(0 = none)  F  { field } x F  { delta } x F } x H  (KEYS order;
 *            the i-th delta is the i-th field's)
 *          C  { country } x C
 *
 * applied-key is opstream:{OP}:applied:{GROUP} (field -> the next offset
 * after the last step of the operation that covered the partition: the
 * watermark). The P partitions are those the operation has events from in
 * the step, with the lowest offset of its events there and the batch's next
 * offset. nd is 2 when dedupe is on (the generation hashes
 * opstream:{OP}:seen:<start-s> of the current and the previous window-wide
 * generation, event_id's 16 bytes -> seconds from the generation's start to
 * when it was counted; an id counts as seen when its time is within the
 * window; marks go to the current one, which expires two
 * windows after its start) and 0 when it is off (N = 0 then). Hashes: every
 * record lists only its non-zero deltas (`events` is never zero). The totals
 * and per-country hashes (expireat 0) keep all M metrics: when one of the
 * listed fields is missing (a new hash), the script creates the unlisted
 * metrics the hash lacks at 0; bucket hashes carry the non-zero `metric` and
 * `CC:metric` fields, with EXPIREAT bucket start + TTL; a bucket
 * already past its TTL is left out, so a very late event counts in the
 * totals but does not recreate an expired bucket. C: members of
 * opstream:{OP}:countries. The operation's name (for SADD
 * opstream:operations) is argv[name].
 *
 * The offsets call, argv[cas_first .. cas_first + cas_argc):
 *   EVALSHA  ""  1  offsets-key  { field  expected(stored, "" = none)  next } x P
 * over every partition the batch passes. */
typedef struct ops_counter_op_args {
    size_t opi;   /* the operation's number in the batch (ops_counter_op_applied) */
    size_t name;  /* argv index of the operation's name */
    size_t first; /* argv index of "EVALSHA" */
    size_t argc;  /* arguments of the call, EVALSHA included */
    size_t ev_from, ev_n; /* its events: order[ev_from .. ev_from + ev_n) */
} ops_counter_op_args_t;

typedef struct ops_counter_args {
    size_t argc;
    const char **argv; /* argv[i] points into the args' own storage; the
                        * caller may repoint the SHA slots */
    size_t *argvlen;
    size_t nops;               /* operations with events to count */
    ops_counter_op_args_t *ops;
    size_t cas_first, cas_argc; /* the offsets compare-and-set call */
    /* internal */
    char *buf;
    size_t buf_len, buf_cap;
    size_t *off;
    size_t cap, ops_cap;
    size_t *order; /* scratch: events by operation */
    size_t order_cap;
    size_t argv_cap;
} ops_counter_args_t;

/* Builds the arguments for the current batch at wall-clock now_ms. args must
 * be zeroed or previously built (it is reused). Returns 0, or -1 with errstr
 * (out of memory, a key that does not fit). */
int ops_counter_build(const ops_counter_t *c, int64_t now_ms, ops_counter_args_t *args,
                      char *errstr, size_t errstr_size);

/* The same, handing each call to emit as soon as it is built, so that a
 * caller can send an operation's script while the next one is built: first
 * the offsets call (call == OPS_COUNTER_CALL_OFFSETS; only when some
 * operation has events to count), then each operation's (call = its index
 * in args->ops). Within emit, args->argv is valid for that call's
 * arguments (and the offsets call's) only: the storage may move while the
 * next call is built; every argv entry is valid once this returns 0.
 * emit returns 0 to go on, anything else to stop the build. Returns 0, 1
 * when emit stopped it, or -1 with errstr. */
#define OPS_COUNTER_CALL_OFFSETS ((size_t)-1)
typedef int (*ops_counter_emit_fn)(void *opaque, ops_counter_args_t *args, size_t call);
int ops_counter_build_each(const ops_counter_t *c, int64_t now_ms, ops_counter_args_t *args,
                           ops_counter_emit_fn emit, void *opaque, char *errstr,
                           size_t errstr_size);
void ops_counter_args_free(ops_counter_args_t *args); /* accepts NULL; leaves it zeroed */

/* Start (epoch s) of the dedupe generation holding now_s: generations are
 * window_s wide; an id is checked in the current and the previous one, so it
 * is remembered for exactly the window. */
int64_t ops_counter_seen_generation(int64_t now_s, int64_t dedupe_window_s);

#ifdef __cplusplus
}
#endif
#endif
