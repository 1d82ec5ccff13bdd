/* sd.h - project-wide error codes, error detail struct and small helpers.
 * Every module returns 0 or a negative SD_E* code; details go into sd_err. */
#ifndef SD_H
#define SD_H

#include <stddef.h>
#include <stdint.h>

enum {
    SD_OK = 0,
    SD_ENOMEM = -1,   /* out of memory */
    SD_EIO = -2,      /* file or system I/O failed */
    SD_EFORMAT = -3,  /* malformed input file or data */
    SD_EINVAL = -4,   /* bad argument or configuration value */
    SD_EPROTO = -5,   /* protocol violation */
    SD_EBACKEND = -6, /* compute backend (CUDA, cuBLAS) failed */
    SD_ENOTFOUND = -7,/* missing file, tensor, document */
    SD_ERANGE = -8,   /* value or size out of range / limit exceeded */
    SD_EPASSWORD = -9,/* encrypted input needs a (different) password */
    SD_EBUSY = -10,   /* queue full or resource busy */
    SD_ECANCELED = -11,
    SD_ETIMEOUT = -12,
    SD_ESTORE = -13,  /* database error */
    SD_EFULL = -14,   /* disk full */
    SD_EREADONLY = -15,
    SD_ENOTSUP = -16, /* not supported by this build or input */
};

/* Caller-supplied error detail: the message names the function and the cause. */
typedef struct sd_err {
    int code;
    char msg[512];
} sd_err;

/* Static description of an SD_E* code; never NULL. */
const char *sd_strerror(int code);

/* Sets err (may be NULL) with a printf-style message and returns code. */
int sd_seterr(sd_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Aborting allocators for small internal allocations (not input-sized). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* a*b into *out; returns 0, or -1 on overflow. */
static inline int sd_mul_overflow(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* Anonymous memory of len bytes starting on a 2 MiB boundary, with transparent
 * huge pages requested (streaming weights through 4 KiB pages costs TLB misses;
 * an unaligned mapping got no huge pages at all on the development VM). NULL on
 * failure. Release with munmap(p, len). */
void *sd_map_huge(size_t len);

/* Monotonic clock in seconds. */
double sd_now(void);

/* Reads a whole file into a malloc'd buffer (NUL-terminated, *len excludes it).
 * Returns 0, SD_ENOTFOUND, SD_EIO, SD_ENOMEM or SD_ERANGE (larger than max). */
int sd_read_file(const char *path, size_t max, char **out, size_t *len, sd_err *err);

#endif
