/* pdf.c - poppler-glib extraction, optionally isolated in a forked child that
 * sends its result back over a pipe (length-prefixed records, checked on read). */
#include "pdf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <poppler.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define PDF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PDF_ASAN 1
#endif
#endif

/* valgrind needs more address space than the child's limit allows: skip the limit there */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define PDF_UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef PDF_UNDER_VALGRIND
#define PDF_UNDER_VALGRIND() 0
#endif

#define PDF_MAGIC 0x58504453u /* "SDPX" */
#define PDF_MAX_OUTPUT ((size_t)1 << 30)

void pdf_result_free(pdf_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_pages; i++) {
        if (r->text) free(r->text[i]);
        if (r->label) free(r->label[i]);
    }
    free(r->text);
    free(r->text_len);
    free(r->label);
    free(r->has_text);
    free(r->title);
    free(r->author);
    free(r->subject);
    free(r->creator);
    free(r->producer);
    free(r);
}

static char *dup_gstr(gchar *g) {
    if (!g) return NULL;
    char *s = NULL;
    if (*g) s = strdup(g);
    g_free(g);
    return s;
}

static int64_t gdt_unix(GDateTime *t) {
    if (!t) return 0;
    int64_t v = g_date_time_to_unix(t);
    g_date_time_unref(t);
    return v;
}

static int has_nonspace(const char *s) {
    for (; s && *s; s++)
        if (!(*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t' || *s == '\f')) return 1;
    return 0;
}

/* Opens the PDF from an anonymous memory file. On a poppler error returns NULL
 * with *ge set and *rc 0; on a system error returns NULL with *rc set. */
static PopplerDocument *open_memfd(const void *data, size_t len, const char *password, GError **ge, sd_err *err,
                                   int *rc) {
    *rc = 0;
    int fd = memfd_create("smoldoc-pdf", MFD_CLOEXEC);
    if (fd < 0) {
        *rc = sd_seterr(err, SD_EIO, "pdf_extract: memfd_create: %s", strerror(errno));
        return NULL;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            *rc = sd_seterr(err, errno == ENOSPC || errno == ENOMEM ? SD_ENOMEM : SD_EIO, "pdf_extract: memfd write: %s",
                            strerror(errno));
            close(fd);
            return NULL;
        }
        p += w;
        left -= (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        *rc = sd_seterr(err, SD_EIO, "pdf_extract: lseek: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    /* Opened by name through /proc: poppler 22.12 frees the stream and then reads
     * it again when a password is wrong for new_from_bytes (a crash) and
     * new_from_fd (a use-after-free valgrind shows); by file name it reopens the
     * file instead. Without /proc, fall back to the fd (poppler owns it then). */
    char uri[64];
    snprintf(uri, sizeof uri, "file:///proc/self/fd/%d", fd);
    if (access(uri + 7, R_OK) == 0) {
        PopplerDocument *doc = poppler_document_new_from_file(uri, password, ge);
        close(fd);
        return doc;
    }
    return poppler_document_new_from_fd(fd, password, ge);
}

/* poppler-glib's page text drops the space between words that sit apart on one
 * line without a space glyph (table cells, tab stops): "1 10 MBPD" becomes
 * "110MBPD". The text layout gives one rectangle per character; where two
 * characters on one line are separated by a gap wider than a fifth of the line
 * height, or sit on different lines and do not overlap horizontally either (so
 * not rotated text, whose characters stack in one column), a space is put back. Returns a malloc'd copy (NULL when out of memory). */
static char *add_gap_spaces(PopplerPage *pg, const char *t) {
    PopplerRectangle *rects = NULL;
    guint nr = 0;
    size_t len = strlen(t), nchars = 0;
    for (size_t i = 0; i < len; i++) nchars += ((unsigned char)t[i] & 0xC0) != 0x80;
    if (!poppler_page_get_text_layout(pg, &rects, &nr) || nr != nchars) {
        g_free(rects);
        return strdup(t);
    }
    char *out = malloc(2 * len + 1);
    if (!out) { g_free(rects); return NULL; }
    size_t k = 0, ci = 0;
    for (size_t i = 0; i < len; ci++) {
        size_t l = 1;
        while (i + l < len && ((unsigned char)t[i + l] & 0xC0) == 0x80) l++;
        if (ci > 0 && i > 0) {
            unsigned char prev = (unsigned char)t[i - 1], cur = (unsigned char)t[i];
            const PopplerRectangle *a = &rects[ci - 1], *b = &rects[ci];
            double ha = a->y2 - a->y1, hb = b->y2 - b->y1, h = ha > hb ? ha : hb;
            int same_line = b->y1 < a->y2 && a->y1 < b->y2;
            if (prev != ' ' && prev != '\n' && cur != ' ' && cur != '\n' && h > 0 &&
                (same_line ? b->x1 - a->x2 > 0.2 * h : (b->x2 <= a->x1 || b->x1 >= a->x2)))
                out[k++] = ' ';
        }
        memcpy(out + k, t + i, l);
        k += l;
        i += l;
    }
    out[k] = 0;
    g_free(rects);
    return out;
}

/* Extraction in this process. */
static int extract_inproc(const void *data, size_t len, const char *password, pdf_result **out, sd_err *err) {
    PopplerDocument *doc = NULL;
    GError *ge = NULL;
    pdf_result *r = NULL;
    int rc = 0;
    *out = NULL;
    if (len > (size_t)INT32_MAX) return sd_seterr(err, SD_ERANGE, "pdf_extract: PDF of %zu bytes is too large", len);
    /* the bytes go into a memfd that poppler opens by name (see open_memfd) */
    doc = open_memfd(data, len, password, &ge, err, &rc);
    if (!doc && rc == 0 && password && *password) {
        /* a wrong password reads as "damaged": is it encrypted without one? */
        GError *ge2 = NULL;
        PopplerDocument *d2 = open_memfd(data, len, NULL, &ge2, err, &rc);
        int encrypted = !d2 && ge2 && ge2->domain == POPPLER_ERROR && ge2->code == POPPLER_ERROR_ENCRYPTED;
        if (d2) g_object_unref(d2);
        if (ge2) g_error_free(ge2);
        if (encrypted) {
            rc = sd_seterr(err, SD_EPASSWORD, "pdf_extract: wrong password for this encrypted PDF");
            goto done;
        }
    }
    if (rc) goto done;
    if (!doc) {
        if (ge && ge->domain == POPPLER_ERROR && ge->code == POPPLER_ERROR_ENCRYPTED) {
            if (password && *password)
                rc = sd_seterr(err, SD_EPASSWORD, "pdf_extract: wrong password for this encrypted PDF");
            else
                rc = sd_seterr(err, SD_EPASSWORD, "pdf_extract: the PDF is encrypted; a password is needed");
        } else {
            rc = sd_seterr(err, SD_EFORMAT, "pdf_extract: poppler cannot open the PDF: %s",
                           ge && ge->message ? ge->message : "unknown error");
        }
        goto done;
    }
    int n = poppler_document_get_n_pages(doc);
    if (n <= 0) {
        rc = sd_seterr(err, SD_EFORMAT, "pdf_extract: the PDF has no readable pages");
        goto done;
    }
    r = calloc(1, sizeof *r);
    if (!r) { rc = SD_ENOMEM; goto oom; }
    r->text = calloc((size_t)n, sizeof *r->text);
    r->text_len = calloc((size_t)n, sizeof *r->text_len);
    r->label = calloc((size_t)n, sizeof *r->label);
    r->has_text = calloc((size_t)n, sizeof *r->has_text);
    if (!r->text || !r->text_len || !r->label || !r->has_text) { rc = SD_ENOMEM; goto oom; }
    r->n_pages = n;
    r->title = dup_gstr(poppler_document_get_title(doc));
    r->author = dup_gstr(poppler_document_get_author(doc));
    r->subject = dup_gstr(poppler_document_get_subject(doc));
    r->creator = dup_gstr(poppler_document_get_creator(doc));
    r->producer = dup_gstr(poppler_document_get_producer(doc));
    r->created = gdt_unix(poppler_document_get_creation_date_time(doc));
    r->modified = gdt_unix(poppler_document_get_modification_date_time(doc));
    for (int i = 0; i < n; i++) {
        PopplerPage *pg = poppler_document_get_page(doc, i);
        gchar *t = pg ? poppler_page_get_text(pg) : NULL;
        r->text[i] = t ? add_gap_spaces(pg, t) : strdup("");
        g_free(t);
        if (!r->text[i]) { if (pg) g_object_unref(pg); rc = SD_ENOMEM; goto oom; }
        r->text_len[i] = strlen(r->text[i]);
        r->has_text[i] = has_nonspace(r->text[i]);
        if (pg) {
            gchar *lab = poppler_page_get_label(pg);
            char num[16];
            snprintf(num, sizeof num, "%d", i + 1);
            if (lab && *lab && strcmp(lab, num) != 0) r->label[i] = strdup(lab);
            g_free(lab);
            g_object_unref(pg);
        }
    }
    *out = r;
    r = NULL;
    goto done;
oom:
    rc = sd_seterr(err, SD_ENOMEM, "pdf_extract: out of memory");
done:
    pdf_result_free(r);
    if (ge) g_error_free(ge);
    if (doc) g_object_unref(doc);
    return rc;
}

/* ---- serialisation between child and parent ---- */

typedef struct wbuf { char *p; size_t len, cap; int oom; } wbuf;

static void w_bytes(wbuf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}
static void w_u32(wbuf *b, uint32_t v) { w_bytes(b, &v, 4); }
static void w_i64(wbuf *b, int64_t v) { w_bytes(b, &v, 8); }
static void w_str(wbuf *b, const char *s, size_t n) {
    if (!s) { w_u32(b, UINT32_MAX); return; }
    if (n >= UINT32_MAX) n = UINT32_MAX - 1;
    w_u32(b, (uint32_t)n);
    w_bytes(b, s, n);
}
static void w_cstr(wbuf *b, const char *s) { w_str(b, s, s ? strlen(s) : 0); }

typedef struct rbuf { const char *p; size_t len, pos; int bad; } rbuf;

static void r_bytes(rbuf *b, void *out, size_t n) {
    if (b->bad || n > b->len - b->pos) { b->bad = 1; memset(out, 0, n); return; }
    memcpy(out, b->p + b->pos, n);
    b->pos += n;
}
static uint32_t r_u32(rbuf *b) { uint32_t v; r_bytes(b, &v, 4); return v; }
static int64_t r_i64(rbuf *b) { int64_t v; r_bytes(b, &v, 8); return v; }
/* Returns a malloc'd NUL-terminated copy, NULL for a NULL string or on error (b->bad). */
static char *r_str(rbuf *b, size_t *n_out) {
    uint32_t n = r_u32(b);
    if (n_out) *n_out = 0;
    if (b->bad || n == UINT32_MAX) return NULL;
    if (n > b->len - b->pos) { b->bad = 1; return NULL; }
    char *s = malloc((size_t)n + 1);
    if (!s) { b->bad = 2; return NULL; }
    memcpy(s, b->p + b->pos, n);
    s[n] = 0;
    b->pos += n;
    if (n_out) *n_out = n;
    return s;
}

static void serialize(wbuf *b, int rc, const char *msg, const pdf_result *r) {
    w_u32(b, PDF_MAGIC);
    w_u32(b, (uint32_t)rc);
    w_cstr(b, msg);
    if (rc) return;
    w_u32(b, (uint32_t)r->n_pages);
    w_cstr(b, r->title);
    w_cstr(b, r->author);
    w_cstr(b, r->subject);
    w_cstr(b, r->creator);
    w_cstr(b, r->producer);
    w_i64(b, r->created);
    w_i64(b, r->modified);
    for (int i = 0; i < r->n_pages; i++) {
        w_cstr(b, r->label[i]);
        w_u32(b, (uint32_t)r->has_text[i]);
        w_str(b, r->text[i], r->text_len[i]);
    }
}

static int deserialize(const char *p, size_t len, pdf_result **out, sd_err *err) {
    rbuf b = {p, len, 0, 0};
    pdf_result *r = NULL;
    int rc;
    if (r_u32(&b) != PDF_MAGIC) return sd_seterr(err, SD_EFORMAT, "pdf_extract: extraction child sent no result");
    int crc = (int)r_u32(&b);
    char *msg = r_str(&b, NULL);
    if (b.bad) { free(msg); return sd_seterr(err, SD_EFORMAT, "pdf_extract: truncated result from child"); }
    if (crc) {
        if (crc > 0 || crc < SD_ENOTSUP) crc = SD_EFORMAT;
        rc = sd_seterr(err, crc, "%s", msg ? msg : "pdf_extract: extraction failed");
        free(msg);
        return rc;
    }
    free(msg);
    uint32_t n = r_u32(&b);
    /* each page needs at least 12 bytes of record: bounds n by the data itself */
    if (b.bad || n == 0 || n > (len - b.pos) / 12) return sd_seterr(err, SD_EFORMAT, "pdf_extract: bad page count from child");
    r = calloc(1, sizeof *r);
    if (!r) goto oom;
    r->text = calloc(n, sizeof *r->text);
    r->text_len = calloc(n, sizeof *r->text_len);
    r->label = calloc(n, sizeof *r->label);
    r->has_text = calloc(n, sizeof *r->has_text);
    if (!r->text || !r->text_len || !r->label || !r->has_text) goto oom;
    r->n_pages = (int)n;
    r->title = r_str(&b, NULL);
    r->author = r_str(&b, NULL);
    r->subject = r_str(&b, NULL);
    r->creator = r_str(&b, NULL);
    r->producer = r_str(&b, NULL);
    r->created = r_i64(&b);
    r->modified = r_i64(&b);
    for (uint32_t i = 0; i < n && !b.bad; i++) {
        r->label[i] = r_str(&b, NULL);
        r->has_text[i] = r_u32(&b) ? 1 : 0;
        r->text[i] = r_str(&b, &r->text_len[i]);
        if (!r->text[i] && !b.bad) b.bad = 1;
    }
    if (b.bad == 2) goto oom;
    if (b.bad || b.pos != len) {
        pdf_result_free(r);
        return sd_seterr(err, SD_EFORMAT, "pdf_extract: malformed result from child");
    }
    *out = r;
    return 0;
oom:
    pdf_result_free(r);
    return sd_seterr(err, SD_ENOMEM, "pdf_extract: out of memory reading the result");
}

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void child_main(int fd, const void *data, size_t len, const ingest_params *p) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (devnull > 2) close(devnull);
    }
#ifndef PDF_ASAN
    if (p->max_mem_mb && !PDF_UNDER_VALGRIND()) {
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = (rlim_t)p->max_mem_mb << 20;
        setrlimit(RLIMIT_AS, &rl);
    }
#endif
    if (p->timeout_s > 0) {
        struct rlimit cpu;
        cpu.rlim_cur = cpu.rlim_max = (rlim_t)p->timeout_s + 2;
        setrlimit(RLIMIT_CPU, &cpu);
        alarm((unsigned)p->timeout_s + 2);
    }
    sd_err e = {0};
    pdf_result *r = NULL;
    int rc = extract_inproc(data, len, p->password, &r, &e);
    wbuf b = {0};
    serialize(&b, rc, rc ? e.msg : NULL, r);
    if (b.oom) _exit(3);
    write_all(fd, b.p, b.len);
    close(fd);
    _exit(0);
}

int pdf_extract(const void *data, size_t len, const ingest_params *p, pdf_result **out, sd_err *err) {
    *out = NULL;
    if (!p->isolate) return extract_inproc(data, len, p->password, out, err);

    int fds[2];
    if (pipe(fds) < 0) return sd_seterr(err, SD_EIO, "pdf_extract: pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return sd_seterr(err, SD_EIO, "pdf_extract: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* The child must not outlive the caller, nor keep its descriptors
         * (e.g. a daemon's lock file or sockets) open after the caller dies. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(5);
        if (dup2(fds[1], 3) < 0) _exit(5);
        close_range(4, ~0U, 0);
        fds[1] = 3;
        child_main(fds[1], data, len, p);
        _exit(4);
    }
    close(fds[1]);
    int fd = fds[0];
    char *buf = NULL;
    size_t blen = 0, bcap = 0;
    int rc = 0, killed = 0;
    double deadline = p->timeout_s > 0 ? sd_now() + p->timeout_s : 0;
    for (;;) {
        int ms = -1;
        if (deadline) {
            double left = deadline - sd_now();
            if (left <= 0) {
                kill(pid, SIGKILL);
                killed = 1;
                rc = sd_seterr(err, SD_ETIMEOUT, "pdf_extract: extraction took longer than %.0f s; stopped",
                               p->timeout_s);
                break;
            }
            ms = (int)(left * 1000) + 1;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, ms);
        if (pr < 0) {
            if (errno == EINTR) continue;
            kill(pid, SIGKILL);
            killed = 1;
            rc = sd_seterr(err, SD_EIO, "pdf_extract: poll: %s", strerror(errno));
            break;
        }
        if (pr == 0) continue;
        if (blen + 65536 > bcap) {
            size_t cap = bcap ? bcap * 2 : 262144;
            if (cap > PDF_MAX_OUTPUT) {
                kill(pid, SIGKILL);
                killed = 1;
                rc = sd_seterr(err, SD_ERANGE, "pdf_extract: extracted text exceeds %zu bytes", PDF_MAX_OUTPUT);
                break;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                kill(pid, SIGKILL);
                killed = 1;
                rc = sd_seterr(err, SD_ENOMEM, "pdf_extract: out of memory");
                break;
            }
            buf = nb;
            bcap = cap;
        }
        ssize_t n = read(fd, buf + blen, bcap - blen);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            kill(pid, SIGKILL);
            killed = 1;
            rc = sd_seterr(err, SD_EIO, "pdf_extract: read: %s", strerror(errno));
            break;
        }
        if (n == 0) break;
        blen += (size_t)n;
    }
    close(fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!rc && !killed) {
        if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            if (sig == SIGALRM || sig == SIGXCPU)
                rc = sd_seterr(err, SD_ETIMEOUT, "pdf_extract: extraction ran past its time limit (signal %d)", sig);
            else if (sig == SIGABRT || sig == SIGTRAP)
                rc = sd_seterr(err, SD_ERANGE,
                               "pdf_extract: extraction aborted (signal %d), probably out of memory under the %zu MiB limit",
                               sig, p->max_mem_mb);
            else
                rc = sd_seterr(err, SD_EFORMAT, "pdf_extract: poppler crashed on this PDF (signal %d)", sig);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            rc = sd_seterr(err, WEXITSTATUS(status) == 3 ? SD_ENOMEM : SD_EFORMAT,
                           "pdf_extract: extraction child failed (exit %d)", WEXITSTATUS(status));
        } else {
            rc = deserialize(buf, blen, out, err);
        }
    }
    free(buf);
    return rc;
}
