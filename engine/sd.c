/* sd.c - error strings, error detail formatting and aborting allocators. */
#include "sd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

const char *sd_strerror(int code) {
    switch (code) {
    case SD_OK: return "ok";
    case SD_ENOMEM: return "out of memory";
    case SD_EIO: return "I/O error";
    case SD_EFORMAT: return "malformed input";
    case SD_EINVAL: return "invalid argument";
    case SD_EPROTO: return "protocol error";
    case SD_EBACKEND: return "backend error";
    case SD_ENOTFOUND: return "not found";
    case SD_ERANGE: return "out of range";
    case SD_EPASSWORD: return "password required or wrong";
    case SD_EBUSY: return "busy";
    case SD_ECANCELED: return "canceled";
    case SD_ETIMEOUT: return "timed out";
    case SD_ESTORE: return "database error";
    case SD_EFULL: return "disk full";
    case SD_EREADONLY: return "read-only";
    case SD_ENOTSUP: return "not supported";
    }
    return "unknown error";
}

int sd_seterr(sd_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

static void oom(size_t n) {
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom(n * sz);
    return p;
}

void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) oom(n);
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

double sd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int sd_read_file(const char *path, size_t max, char **out, size_t *len, sd_err *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_seterr(err, errno == ENOENT ? SD_ENOTFOUND : SD_EIO,
                         "sd_read_file: cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) { rc = sd_seterr(err, SD_ENOMEM, "sd_read_file: %s: out of memory", path); goto fail; }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) { rc = sd_seterr(err, SD_ERANGE, "sd_read_file: %s is larger than %zu bytes", path, max); goto fail; }
        if (got == 0) {
            if (ferror(f)) { rc = sd_seterr(err, SD_EIO, "sd_read_file: read %s: %s", path, strerror(errno)); goto fail; }
            break;
        }
    }
    fclose(f);
    if (!buf) buf = xmalloc(1);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
fail:
    fclose(f);
    free(buf);
    return rc;
}

void *sd_map_huge(size_t len) {
    const size_t huge = (size_t)2 << 20;
    if (len == 0 || len > SIZE_MAX - huge) return NULL;
    uint8_t *p = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    size_t tail = (size_t)((p + len + huge) - (a + len));
    if (tail) munmap(a + len, tail);
    madvise(a, len, MADV_HUGEPAGE);
    return a;
}
