/*
 * opstream produce path, shared by opstream-produce and opstream-simulate:
 * encodes validated events, produces them to their kind's topic keyed by
 * country (idempotent producer, acks=all), and accounts for every record by
 * its delivery report, with a bounded number in flight so memory stays
 * constant. A record counts as delivered only when its report says so.
 */
#ifndef OPSTREAM_PRODUCE_H
#define OPSTREAM_PRODUCE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "opstream/config.h"
#include "opstream/event.h"
#include "opstream/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ops_produce ops_produce_t;

/* A record in flight keeps its encoded frame for a re-send: frames of up to
 * this many bytes inside its slot, larger ones in a heap buffer the slot
 * keeps (and reuses) until the producer is destroyed. */
#define OPS_PRODUCE_INLINE_FRAME_MAX 192

typedef struct ops_produce_options {
    /* Records in flight at most (0: 16384, 4 MiB of slots; with
     * linger.ms=5 the window bounds the rate: about window / (linger +
     * round trip) records/s); ops_produce_send waits for delivery reports
     * while the limit is reached. */
    size_t max_in_flight;
    /* How often a producer that failed fatally (idempotence broken) is
     * recreated, re-sending what it had not confirmed (0: 3; -1: never,
     * such records are reported failed instead). */
    int max_recreate;
    /* When *abort becomes non-zero, waits (for room, for a flush) return
     * early. May be NULL. Typically set by a program's second signal. */
    const volatile sig_atomic_t *abort;
    /* When *stop becomes non-zero (a program's first signal), a send waiting
     * for room gives up at once (the record is reported failed) and
     * ops_produce_finish waits only its grace period. May be NULL. */
    const volatile sig_atomic_t *stop;
    /* Called from the delivery path with the record and where it came from.
     * ev and file are only valid during the call. All may be NULL. ev is
     * the record decoded back from the frame that was sent (a slot keeps the
     * frame, not the event). A failure before a record got its slot (an
     * event a reader would refuse is one) gives the caller's event. */
    void (*on_delivered)(void *opaque, const ops_event_t *ev);
    void (*on_failed)(void *opaque, const ops_event_t *ev, const char *file, long line,
                      const char *reason);
    /* Notices worth telling a user ("producer failed fatally: ...;
     * recreating it"). May be NULL. */
    void (*on_notice)(void *opaque, const char *msg);
    /* librdkafka's own log lines (level as syslog: 3 error ... 7 debug),
     * called from librdkafka's threads. NULL: dropped; the client-level
     * errors stay available through ops_produce_last_error(). */
    void (*on_log)(void *opaque, int level, const char *facility, const char *msg);
    void *opaque;
    /* Counts every record's outcome in opstream_produced_total{result}
     * (delivered, failed). Borrowed; may be NULL. */
    ops_metrics_t *metrics;
} ops_produce_options_t;

typedef struct ops_produce_stats {
    uint64_t sent;      /* handed to Kafka */
    uint64_t delivered; /* confirmed by a delivery report */
    uint64_t failed;    /* reported through on_failed */
    uint64_t in_flight; /* sent, not yet confirmed or failed */
    int recreated;      /* producers recreated after fatal errors */
} ops_produce_stats_t;

/* Creates the producer from cfg (brokers, -X properties, topic prefix).
 * cfg is only read during the call. NULL with errstr on failure (no
 * brokers configured, a bad property). Free with ops_produce_destroy(). */
ops_produce_t *ops_produce_new(const ops_config_t *cfg, const ops_produce_options_t *opts,
                               char *errstr, size_t errstr_size);

/* Abandons whatever is still in flight (reported failed) and frees p.
 * Accepts NULL. */
void ops_produce_destroy(ops_produce_t *p);

/* Encodes ev and hands it to Kafka, to be reported by on_delivered or
 * on_failed later. file (a string that must outlive p's use of the record,
 * i.e. until it is reported) and line say where the record came from. Waits
 * (serving delivery reports) while max_in_flight records are in flight.
 * Returns 0 when sent; -1 when the record could not be sent (an unknown
 * kind, a count, minors or referred outside 0..OPS_COUNT_MAX that a reader
 * would refuse, encoding failed, a non-retriable produce error, or *abort
 * while waiting): it has
 * then already been reported through on_failed and errstr says why. */
int ops_produce_send(ops_produce_t *p, const ops_event_t *ev, const char *file, long line,
                     char *errstr, size_t errstr_size);

/* Serves delivery reports for up to timeout_ms. */
void ops_produce_poll(ops_produce_t *p, int timeout_ms);

/* Waits up to timeout_ms (-1: until done, bounded by message.timeout.ms)
 * for every record in flight to be reported. Returns 0 when nothing is in
 * flight any more, -1 on timeout or *abort. */
int ops_produce_flush(ops_produce_t *p, int timeout_ms);

/* The final flush: waits for every record in flight to be reported. Once
 * *stop is set (before or during the wait) it waits at most grace_ms more;
 * *abort ends it at once. What is unconfirmed then is reported failed
 * ("interrupted before delivery was confirmed"). tick (may be NULL) gets the
 * options' opaque about every 100 ms, e.g. for a progress line. Returns 0
 * when every record was settled by its delivery report, 1 when the rest was
 * abandoned. */
int ops_produce_finish(ops_produce_t *p, int grace_ms, void (*tick)(void *opaque));

/* Whether no broker answered within opstream.connect.timeout.s (default
 * 10 s) of ops_produce_new: the producer then said so once through
 * on_notice, reported what it held as failed, and fails every later send at
 * once ("not sent: brokers B not reachable"). */
int ops_produce_unreachable(const ops_produce_t *p);

/* Gives up on every record still in flight: each is reported failed with
 * reason (e.g. "interrupted before delivery was confirmed"). */
void ops_produce_abandon(ops_produce_t *p, const char *reason);

void ops_produce_stats(const ops_produce_t *p, ops_produce_stats_t *st);

/* The last client-level error seen (e.g. "127.0.0.1:9092/bootstrap:
 * Connect to ipv4#127.0.0.1:9092 failed: Connection refused"), "" when
 * none. Valid until the next call on p. */
const char *ops_produce_last_error(const ops_produce_t *p);

/* Whether any broker connection ever came up. */
int ops_produce_reached_broker(const ops_produce_t *p);

#ifdef __cplusplus
}
#endif
#endif
