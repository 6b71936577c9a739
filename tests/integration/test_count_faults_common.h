/*
 * What the opstream-count fault tests (test_count_faults.c,
 * test_count_faults_redis.c) share: their seed, a paced stream of events
 * that is modelled as it starts, and the conditions they wait on. Static
 * functions, on top of test_count_common.h's.
 */
#ifndef OPSTREAM_TEST_COUNT_FAULTS_COMMON_H
#define OPSTREAM_TEST_COUNT_FAULTS_COMMON_H

#include "test_count_common.h"

#define SEED 777ULL

typedef tc_stream_t stream_t;

/* Generates n events of op (times within the last two hours), models them
 * (m NULL: the caller models what was produced) and starts producing them. */
TC_HELPER void stream_start(stream_t *s, tc_model_t *m, const char *op, int n, int per_tick,
                            uint64_t seed) {
    int64_t now = tc_wall_ms();

    tc_stream_fill(s, op, n, per_tick, seed, now);
    for (int i = 0; m != NULL && i < n; i++)
        tc_model_event(m, &s->ev[i], now);
    tc_stream_run(s);
}

typedef struct progress {
    const char *group;
    int64_t since;
} progress_t;

TC_HELPER bool offsets_moved(void *arg) {
    const progress_t *p = arg;

    return tc_offsets_sum(p->group) > p->since;
}

TC_HELPER bool proc_says_assigned(void *arg) {
    return harness_proc_stderr_has(arg, "assigned");
}

#endif
