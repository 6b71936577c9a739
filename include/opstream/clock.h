/*
 * opstream clocks: milliseconds (and microseconds) on the monotonic clock
 * for deadlines and intervals, and on the wall clock for event and record
 * times. One place, so every deadline in every program reads the same clock.
 */
#ifndef OPSTREAM_CLOCK_H
#define OPSTREAM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t ops_clock_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t ops_clock_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t ops_clock_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
