/* log.c - leveled log lines to stderr or a reopenable file. The file handle
 * and level are the only process-wide state outside the daemon struct: every
 * thread logs, and a line must be written whole. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

volatile int log_level_current = LOG_INFO;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;          /* NULL = stderr */
static char log_path[4096];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, level_names[i])) return i;
    return -1;
}

int log_open(const char *path, log_level level) {
    int rc = 0;
    pthread_mutex_lock(&log_mu);
    log_level_current = (int)level;
    if (log_fp) fclose(log_fp);
    log_fp = NULL;
    log_path[0] = 0;
    if (path && *path && strcmp(path, "-")) {
        snprintf(log_path, sizeof log_path, "%s", path);
        log_fp = fopen(log_path, "a");
        if (!log_fp) rc = -1;
        else setvbuf(log_fp, NULL, _IOLBF, 0);
    }
    pthread_mutex_unlock(&log_mu);
    return rc;
}

int log_reopen(void) {
    int rc = 0;
    pthread_mutex_lock(&log_mu);
    if (log_path[0]) {
        FILE *f = fopen(log_path, "a");
        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            if (log_fp) fclose(log_fp);
            log_fp = f;
        } else {
            rc = -1;
        }
    }
    pthread_mutex_unlock(&log_mu);
    return rc;
}

void log_close(void) {
    pthread_mutex_lock(&log_mu);
    if (log_fp) fclose(log_fp);
    log_fp = NULL;
    log_path[0] = 0;
    pthread_mutex_unlock(&log_mu);
}

void log_write(log_level level, const char *fmt, ...) {
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s [%ld] ", ts.tv_nsec / 1000000L,
                  level_names[level < 0 ? 0 : level > 3 ? 3 : level], (long)syscall(SYS_gettid));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    /* One line per call: control characters from outside input are flattened. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20) line[i] = ' ';
    line[len++] = '\n';
    pthread_mutex_lock(&log_mu);
    FILE *f = log_fp ? log_fp : stderr;
    fwrite(line, 1, len, f);
    fflush(f);
    pthread_mutex_unlock(&log_mu);
}
