/*
 * opstream process metrics: the process_* series every Prometheus client
 * exports (CPU time, start time, memory, open descriptors), read from
 * /proc/self when a scrape renders them, and opstream_build_info. The
 * /proc parsers are pure and unit-tested on fixed text.
 */
#include "opstream/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err_priv.h"

int ops_metrics_parse_proc_stat(const char *stat, long ticks_per_s, int64_t boot_time_s,
                                double *cpu_seconds, double *start_time_seconds, char *errstr,
                                size_t errstr_size) {
    /* The command name is "(...)" and may itself hold ") ": the fields
     * start after the last ')'. */
    const char *p = stat ? strrchr(stat, ')') : NULL;
    unsigned long long utime = 0, stime = 0, start = 0;
    if (!p || ticks_per_s <= 0) {
        ops_err_format(errstr, errstr_size, "/proc/self/stat: no command name in parentheses");
        return -1;
    }
    p++;
    /* Field 3 (state) is the first after ')'; utime is 14, stime 15,
     * starttime 22 (proc(5)). */
    for (int field = 3; field <= 22; field++) {
        char *end;
        while (*p == ' ')
            p++;
        if (!*p) {
            ops_err_format(errstr, errstr_size, "/proc/self/stat: ends before field %d", field);
            return -1;
        }
        if (field == 14 || field == 15 || field == 22) {
            errno = 0;
            unsigned long long v = strtoull(p, &end, 10);
            if (errno || end == p || (*end != ' ' && *end != '\n' && *end != '\0')) {
                ops_err_format(errstr, errstr_size, "/proc/self/stat: field %d is not a number",
                               field);
                return -1;
            }
            if (field == 14)
                utime = v;
            else if (field == 15)
                stime = v;
            else
                start = v;
            p = end;
        } else {
            while (*p && *p != ' ')
                p++;
        }
    }
    *cpu_seconds = (double)(utime + stime) / (double)ticks_per_s;
    *start_time_seconds = (double)boot_time_s + (double)start / (double)ticks_per_s;
    return 0;
}

int ops_metrics_parse_proc_statm(const char *statm, long page_size, double *virtual_bytes,
                                 double *resident_bytes, char *errstr, size_t errstr_size) {
    unsigned long long size, resident;
    if (!statm || page_size <= 0 || sscanf(statm, "%llu %llu", &size, &resident) != 2) {
        ops_err_format(errstr, errstr_size, "/proc/self/statm: expected 'size resident ...'");
        return -1;
    }
    *virtual_bytes = (double)size * (double)page_size;
    *resident_bytes = (double)resident * (double)page_size;
    return 0;
}

int ops_metrics_parse_boot_time(const char *proc_stat, int64_t *boot_time_s, char *errstr,
                                size_t errstr_size) {
    for (const char *p = proc_stat; p && *p;) {
        long long v;
        if (strncmp(p, "btime ", 6) == 0 && sscanf(p + 6, "%lld", &v) == 1 && v > 0) {
            *boot_time_s = (int64_t)v;
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    ops_err_format(errstr, errstr_size, "/proc/stat: no btime line");
    return -1;
}

/* Reads a small /proc file whole into buf. 0, or -1. */
static int read_small(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    if (fd < 0)
        return -1;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return len > 0 ? 0 : -1;
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

typedef struct proc_collector {
    ops_metrics_series_t *cpu, *start, *rss, *vsz, *fds;
    long ticks, page;
    int64_t boot;
} proc_collector_t;

static void collect_process(void *opaque) {
    proc_collector_t *pc = opaque;
    char buf[4096];
    double cpu, start, vsz, rss;
    if (read_small("/proc/self/stat", buf, sizeof buf) == 0 &&
        ops_metrics_parse_proc_stat(buf, pc->ticks, pc->boot, &cpu, &start, NULL, 0) == 0) {
        ops_metrics_set(pc->cpu, cpu);
        ops_metrics_set(pc->start, start);
    }
    if (read_small("/proc/self/statm", buf, sizeof buf) == 0 &&
        ops_metrics_parse_proc_statm(buf, pc->page, &vsz, &rss, NULL, 0) == 0) {
        ops_metrics_set(pc->rss, rss);
        ops_metrics_set(pc->vsz, vsz);
    }
    int fds = count_fds();
    if (fds >= 0)
        ops_metrics_set(pc->fds, fds);
}

static ops_metrics_series_t *proc_series(ops_metrics_t *reg, ops_metrics_type_t type,
                                         const char *name, const char *help, char *errstr,
                                         size_t errstr_size) {
    ops_metrics_family_t *f =
        ops_metrics_family(reg, type, name, help, NULL, 1, NULL, 0, errstr, errstr_size);
    return f ? ops_metrics_series(f, NULL, errstr, errstr_size) : NULL;
}

/* The names and help texts are those of the Prometheus client libraries,
 * so that the usual dashboards and rules find them. */
int ops_metrics_add_process(ops_metrics_t *reg, char *errstr, size_t errstr_size) {
    char buf[8192];
    proc_collector_t *pc = calloc(1, sizeof(*pc));

    if (!pc) {
        ops_err_format(errstr, errstr_size, "out of memory");
        return -1;
    }
    pc->ticks = sysconf(_SC_CLK_TCK);
    pc->page = sysconf(_SC_PAGESIZE);
    if (pc->ticks <= 0 || pc->page <= 0) {
        ops_err_format(errstr, errstr_size, "sysconf: no clock tick or page size");
        goto fail;
    }
    if (read_small("/proc/stat", buf, sizeof buf) != 0) {
        ops_err_format(errstr, errstr_size, "/proc/stat: cannot read it");
        goto fail;
    }
    if (ops_metrics_parse_boot_time(buf, &pc->boot, errstr, errstr_size) != 0)
        goto fail;
    if (!(pc->cpu = proc_series(reg, OPS_METRICS_COUNTER, "process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds.", errstr,
                                errstr_size)) ||
        !(pc->start = proc_series(reg, OPS_METRICS_GAUGE, "process_start_time_seconds",
                                  "Start time of the process since unix epoch in seconds.", errstr,
                                  errstr_size)) ||
        !(pc->rss = proc_series(reg, OPS_METRICS_GAUGE, "process_resident_memory_bytes",
                                "Resident memory size in bytes.", errstr, errstr_size)) ||
        !(pc->vsz = proc_series(reg, OPS_METRICS_GAUGE, "process_virtual_memory_bytes",
                                "Virtual memory size in bytes.", errstr, errstr_size)) ||
        !(pc->fds = proc_series(reg, OPS_METRICS_GAUGE, "process_open_fds",
                                "Number of open file descriptors.", errstr, errstr_size)))
        goto fail;
    /* now owned by reg, also on failure */
    return ops_metrics_add_collector(reg, collect_process, pc, free, errstr, errstr_size);
fail:
    free(pc);
    return -1;
}

int ops_metrics_add_build_info(ops_metrics_t *reg, const char *version, char *errstr,
                               size_t errstr_size) {
    static const char *const labels[] = {"version", NULL};
    const char *values[] = {version ? version : "unknown"};
    ops_metrics_family_t *f =
        ops_metrics_family(reg, OPS_METRICS_GAUGE, "opstream_build_info",
                           "opstream version this program was built from (always 1).", labels, 1,
                           NULL, 0, errstr, errstr_size);
    ops_metrics_series_t *m = f ? ops_metrics_series(f, values, errstr, errstr_size) : NULL;
    if (!m)
        return -1;
    ops_metrics_set(m, 1.0);
    return 0;
}
