/*
 * opstream bench: what the bench needs from the machine: clocks, a process's
 * CPU time and peak memory from /proc, the CPU model and library versions,
 * and the statistics (median, percentiles) every figure goes through.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "bench.h"

int64_t bench_now_us(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Fields 14 and 15 of /proc/PID/stat (after the parenthesised name, which
 * may itself hold spaces), in clock ticks. */
int64_t bench_cpu_ms(pid_t pid) {
    char path[64], buf[1024];
    FILE *f;
    size_t n;
    unsigned long long ut = 0, st = 0;
    long hz = sysconf(_SC_CLK_TCK);

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (int64_t)((ut + st) * 1000 / (unsigned long long)(hz > 0 ? hz : 100));
}

int64_t bench_self_cpu_ms(void) {
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

int64_t bench_thread_cpu_ns(void) {
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

long bench_rss_kib(pid_t pid, bool peak) {
    char path[64], line[256];
    const char *want = peak ? "VmHWM:" : "VmRSS:";
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, want, strlen(want)) == 0)
            kib = strtol(line + strlen(want), NULL, 10);
    fclose(f);
    return kib;
}

void bench_machine(char *cpu, size_t cpusize, int *cores) {
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");

    snprintf(cpu, cpusize, "unknown");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c != NULL) {
            snprintf(cpu, cpusize, "%s", c + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    *cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
}

/* avro-c has no version call: the Debian package says it. */
void bench_lib_versions(char *buf, size_t size) {
    char avro[64] = "?";
    FILE *p = popen("dpkg-query -W -f '${Version}' libavro-dev 2>/dev/null", "r");

    if (p != NULL) {
        if (fgets(avro, sizeof avro, p) == NULL)
            snprintf(avro, sizeof avro, "?");
        pclose(p);
    }
    snprintf(buf, size, "librdkafka %s, avro-c %s, hiredis %d.%d.%d", rd_kafka_version_str(), avro,
             HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n) {
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_percentile(double *v, size_t n, double p) {
    size_t rank;

    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

void bench_log(const char *fmt, ...) {
    static int64_t start;
    va_list ap;

    if (start == 0)
        start = bench_now_us();
    fprintf(stderr, "bench: %6.1f s: ", (double)(bench_now_us() - start) / 1e6);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
