/*
 * opstream health state: the loop's last beat (an atomic monotonic time)
 * and its readiness reason (a short string under a mutex, changed rarely),
 * read by the HTTP endpoint's thread for /healthz and /readyz.
 */
#include "opstream/health.h"
#include "opstream/clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ops_health {
    _Atomic int64_t last_beat_ms;
    int stall_ms;
    pthread_mutex_t lock;
    char reason[OPS_HEALTH_REASON_MAX]; /* "" = ready */
};

ops_health_t *ops_health_new(int stall_ms) {
    ops_health_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return NULL;
    }
    h->stall_ms = stall_ms != 0 ? stall_ms : OPS_HEALTH_DEFAULT_STALL_MS;
    atomic_init(&h->last_beat_ms, ops_clock_mono_ms());
    snprintf(h->reason, sizeof h->reason, "starting");
    return h;
}

void ops_health_destroy(ops_health_t *h) {
    if (!h)
        return;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void ops_health_beat(ops_health_t *h) {
    if (h)
        atomic_store_explicit(&h->last_beat_ms, ops_clock_mono_ms(), memory_order_relaxed);
}

void ops_health_set_ready(ops_health_t *h, const char *reason) {
    if (!h)
        return;
    if (!reason)
        reason = "";
    pthread_mutex_lock(&h->lock);
    if (strncmp(h->reason, reason, sizeof h->reason - 1) != 0)
        snprintf(h->reason, sizeof h->reason, "%s", reason);
    pthread_mutex_unlock(&h->lock);
}

bool ops_health_check_live(int64_t last_beat_ms, int64_t now, int stall_ms, char *reason,
                           size_t size) {
    int64_t age = now - last_beat_ms;
    if (stall_ms < 0 || age <= stall_ms)
        return true;
    if (reason && size)
        snprintf(reason, size, "the main loop has not run for %lld ms (limit %d ms)",
                 (long long)age, stall_ms);
    return false;
}

bool ops_health_live(ops_health_t *h, char *reason, size_t size) {
    if (!h)
        return true;
    return ops_health_check_live(atomic_load_explicit(&h->last_beat_ms, memory_order_relaxed),
                                 ops_clock_mono_ms(), h->stall_ms, reason, size);
}

bool ops_health_ready(ops_health_t *h, char *reason, size_t size) {
    bool ready;
    if (!h)
        return true;
    if (!ops_health_live(h, reason, size))
        return false;
    pthread_mutex_lock(&h->lock);
    ready = h->reason[0] == '\0';
    if (!ready && reason && size)
        snprintf(reason, size, "%s", h->reason);
    pthread_mutex_unlock(&h->lock);
    return ready;
}
