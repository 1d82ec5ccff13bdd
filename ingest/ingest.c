/* ingest.c - the ingest entry point: type detection, PDF or text extraction, then
 * normalisation, header/footer removal, page joining, segmentation and quality. */
#include "ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "normalize.h"
#include "pdf.h"
#include "quality.h"
#include "segment.h"
#include "text.h"

#define PAGE_SEP "\n\n"
#define PAGE_SEP_LEN 2
#define HF_LINES 2 /* header/footer candidates: this many non-blank lines at each end */

ingest_params ingest_params_default(void) {
    ingest_params p;
    memset(&p, 0, sizeof p);
    p.timeout_s = 60;
    p.max_mem_mb = 4096;
    p.isolate = 1;
    p.max_bytes = (size_t)512 << 20;
    return p;
}

void ingest_doc_free(ingest_doc *d) {
    if (!d) return;
    free(d->name);
    free(d->type);
    free(d->title);
    free(d->author);
    free(d->subject);
    free(d->creator);
    free(d->producer);
    free(d->text);
    for (int i = 0; i < d->n_pages; i++) {
        free(d->pages[i].label);
        free(d->pages[i].header);
        free(d->pages[i].footer);
        free(d->pages[i].src);
    }
    free(d->pages);
    for (int i = 0; i < d->n_sections; i++) {
        free(d->sections[i].number);
        free(d->sections[i].title);
    }
    free(d->sections);
    free(d->quality.no_text_pages);
    for (int i = 0; i < d->n_warnings; i++) free(d->warnings[i]);
    free(d->warnings);
    free(d);
}

void ingest_doc_warn(ingest_doc *d, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    d->warnings = xrealloc(d->warnings, (size_t)(d->n_warnings + 1) * sizeof *d->warnings);
    d->warnings[d->n_warnings++] = xstrdup(buf);
}

int ingest_doc_page_at(const ingest_doc *d, size_t off) {
    if (!d || d->n_pages <= 0 || off >= d->text_len) return 0;
    int lo = 0, hi = d->n_pages - 1;
    while (lo < hi) { /* last page whose start <= off */
        int mid = (lo + hi + 1) / 2;
        if (d->pages[mid].start <= off) lo = mid;
        else hi = mid - 1;
    }
    return lo + 1;
}

/* ---- header / footer detection ---- */

typedef struct hf_cand {
    char key[128];
    int page;
    int bottom; /* 0 header, 1 footer; +2: exact text rather than digit-insensitive key */
} hf_cand;

static int cand_cmp(const void *a, const void *b) {
    const hf_cand *x = a, *y = b;
    if (x->bottom != y->bottom) return x->bottom - y->bottom;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->page - y->page;
}

/* Line i of a cleaned page: sets [*s, *e). */
typedef struct line_idx { size_t *start, *end; size_t n; } line_idx;

static int index_lines(const normalize_buf *b, line_idx *li) {
    size_t n = normalize_count_lines(b);
    li->n = n;
    li->start = malloc((n ? n : 1) * sizeof *li->start);
    li->end = malloc((n ? n : 1) * sizeof *li->end);
    if (!li->start || !li->end) return SD_ENOMEM;
    size_t k = 0, s = 0;
    for (size_t i = 0; i <= b->len && k < n; i++) {
        if (i == b->len || b->s[i] == '\n') {
            li->start[k] = s;
            li->end[k] = i;
            k++;
            s = i + 1;
        }
    }
    return 0;
}

/* Adds a line as two candidates: digit-insensitive key (kind bottom) and exact
 * text (kind bottom + 2). */
static void add_cand(hf_cand *c, size_t *nc, const char *line, size_t n, int page, int bottom) {
    normalize_line_key(line, n, c[*nc].key, sizeof c[*nc].key);
    c[*nc].page = page;
    c[*nc].bottom = bottom;
    (*nc)++;
    snprintf(c[*nc].key, sizeof c[*nc].key, "%.*s", (int)n, line);
    c[*nc].page = page;
    c[*nc].bottom = bottom + 2;
    (*nc)++;
}

/* Is key among the frequent keys (sorted candidates, counted per distinct page)? */
static int is_frequent(const hf_cand *c, size_t nc, int bottom, const char *key, int min_pages) {
    /* binary search the first candidate with (bottom, key) */
    size_t lo = 0, hi = nc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = c[mid].bottom != bottom ? c[mid].bottom - bottom : strcmp(c[mid].key, key);
        if (cmp < 0) lo = mid + 1;
        else hi = mid;
    }
    int pages = 0, last = -1;
    for (size_t i = lo; i < nc && c[i].bottom == bottom && strcmp(c[i].key, key) == 0; i++)
        if (c[i].page != last) { pages++; last = c[i].page; }
    return pages >= min_pages;
}

/* Returns acc with the line added after (or before) the others, or NULL when out
 * of memory (acc is then untouched). */
static char *add_line(char *acc, const char *s, size_t n, int before) {
    size_t old = acc ? strlen(acc) : 0;
    char *r = malloc(old + n + 2);
    if (!r) return NULL;
    if (before) {
        memcpy(r, s, n);
        if (old) { r[n] = '\n'; memcpy(r + n + 1, acc, old + 1); }
        else r[n] = 0;
    } else {
        if (old) { memcpy(r, acc, old); r[old++] = '\n'; }
        memcpy(r + old, s, n);
        r[old + n] = 0;
    }
    free(acc);
    return r;
}

int ingest_doc_build(ingest_doc *d, int n_pages, char *const *raw, const size_t *raw_len,
                     char *const *labels, const int *has_text, sd_err *err) {
    int rc = 0;
    normalize_buf *clean = NULL, *body = NULL;
    line_idx *li = NULL;
    unsigned char **drop = NULL;
    hf_cand *cand = NULL;
    size_t nc = 0;
    if (n_pages <= 0) return sd_seterr(err, SD_EFORMAT, "ingest: document has no pages");
    clean = calloc((size_t)n_pages, sizeof *clean);
    body = calloc((size_t)n_pages, sizeof *body);
    li = calloc((size_t)n_pages, sizeof *li);
    drop = calloc((size_t)n_pages, sizeof *drop);
    d->pages = calloc((size_t)n_pages, sizeof *d->pages);
    if (!clean || !body || !li || !drop || !d->pages) goto oom;
    d->n_pages = n_pages;
    for (int p = 0; p < n_pages; p++) {
        ingest_page *pg = &d->pages[p];
        pg->number = p + 1;
        pg->raw_len = raw_len[p];
        pg->has_text = has_text ? has_text[p] : 1;
        if (labels && labels[p] && !(pg->label = strdup(labels[p]))) goto oom;
        if (normalize_clean(raw[p], raw_len[p], &clean[p], &d->quality)) goto oom;
        if (index_lines(&clean[p], &li[p])) goto oom;
        drop[p] = calloc(li[p].n ? li[p].n : 1, 1);
        if (!drop[p]) goto oom;
        if (!has_text) {
            size_t k = 0;
            while (k < clean[p].len && (clean[p].s[k] == '\n' || clean[p].s[k] == ' ')) k++;
            pg->has_text = k < clean[p].len;
        }
    }
    /* candidates: the first and last HF_LINES non-blank lines of every page */
    if (n_pages >= 5) {
        cand = calloc((size_t)n_pages * 4 * HF_LINES, sizeof *cand);
        if (!cand) goto oom;
        for (int p = 0; p < n_pages; p++) {
            int got = 0;
            for (size_t l = 0; l < li[p].n && got < HF_LINES; l++) {
                if (li[p].end[l] == li[p].start[l]) continue;
                add_cand(cand, &nc, clean[p].s + li[p].start[l], li[p].end[l] - li[p].start[l], p, 0);
                got++;
            }
            got = 0;
            for (size_t l = li[p].n; l-- > 0 && got < HF_LINES;) {
                if (li[p].end[l] == li[p].start[l]) continue;
                add_cand(cand, &nc, clean[p].s + li[p].start[l], li[p].end[l] - li[p].start[l], p, 1);
                got++;
            }
        }
        qsort(cand, nc, sizeof *cand, cand_cmp);
    }
    int min_pages = n_pages / 2 + 1 > 3 ? n_pages / 2 + 1 : 3;
    for (int p = 0; p < n_pages; p++) {
        ingest_page *pg = &d->pages[p];
        char key[128];
        for (int bottom = 0; bottom <= 1; bottom++) {
            int looked = 0;
            for (size_t k = 0; k < li[p].n && looked < HF_LINES; k++) {
                size_t l = bottom ? li[p].n - 1 - k : k;
                size_t s = li[p].start[l], e = li[p].end[l];
                if (s == e || drop[p][l]) continue;
                looked++;
                int hit = n_pages >= 2 && normalize_is_page_number(clean[p].s + s, e - s);
                if (!hit && cand) {
                    /* the outermost line may vary in its numbers ("Page 3", dates);
                     * the next one in must repeat exactly */
                    if (looked == 1) normalize_line_key(clean[p].s + s, e - s, key, sizeof key);
                    else snprintf(key, sizeof key, "%.*s", (int)(e - s), clean[p].s + s);
                    hit = is_frequent(cand, nc, bottom + 2 * (looked > 1), key, min_pages);
                }
                if (!hit) break;
                drop[p][l] = 1;
                char **dst = bottom ? &pg->footer : &pg->header;
                char *nd = add_line(*dst, clean[p].s + s, e - s, bottom);
                if (!nd) goto oom;
                *dst = nd;
            }
        }
        if (normalize_join(&clean[p], drop[p], &body[p], &d->quality)) goto oom;
    }
    /* concatenate the pages */
    size_t total = 0;
    for (int p = 0; p < n_pages; p++) total += body[p].len + PAGE_SEP_LEN;
    d->text = malloc(total + 1);
    if (!d->text) goto oom;
    size_t off = 0;
    for (int p = 0; p < n_pages; p++) {
        ingest_page *pg = &d->pages[p];
        if (p > 0) {
            memcpy(d->text + off, PAGE_SEP, PAGE_SEP_LEN);
            off += PAGE_SEP_LEN;
        }
        pg->start = off;
        memcpy(d->text + off, body[p].s ? body[p].s : "", body[p].len);
        off += body[p].len;
        pg->end = off;
        pg->src = malloc((body[p].len ? body[p].len : 1) * sizeof *pg->src);
        if (!pg->src) goto oom;
        if (body[p].len) memcpy(pg->src, body[p].src, body[p].len * sizeof *pg->src);
        if (!pg->has_text) ingest_doc_warn(d, "page %d has no text layer; OCR needed", p + 1);
    }
    d->text[off] = 0;
    d->text_len = off;
    if ((rc = segment_find(d, err))) goto done;
    if ((rc = quality_measure(d, err))) goto done;
    if (d->quality.replacement_chars)
        ingest_doc_warn(d, "%zu U+FFFD replacement characters in the extracted text (unmapped glyphs?)",
                        d->quality.replacement_chars);
    if (d->quality.nul_chars) ingest_doc_warn(d, "%zu U+0000 characters removed", d->quality.nul_chars);
    goto done;
oom:
    rc = sd_seterr(err, SD_ENOMEM, "ingest: out of memory");
done:
    for (int p = 0; p < n_pages; p++) {
        if (clean) normalize_buf_free(&clean[p]);
        if (body) normalize_buf_free(&body[p]);
        if (li) { free(li[p].start); free(li[p].end); }
        if (drop) free(drop[p]);
    }
    free(clean);
    free(body);
    free(li);
    free(drop);
    free(cand);
    return rc;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    return n > e && strcasecmp(name + n - e, ext) == 0;
}

static int is_pdf(const unsigned char *p, size_t len) {
    size_t n = len < 1024 ? len : 1024;
    for (size_t i = 0; i + 5 <= n; i++)
        if (memcmp(p + i, "%PDF-", 5) == 0) return 1;
    return 0;
}

int ingest_bytes(const void *data, size_t len, const char *name, const ingest_params *p, ingest_doc **out,
                 sd_err *err) {
    ingest_params defp = ingest_params_default();
    ingest_doc *d = NULL;
    pdf_result *r = NULL;
    int rc = 0;
    if (!p) p = &defp;
    *out = NULL;
    if (!data && len) return sd_seterr(err, SD_EINVAL, "ingest_bytes: NULL data");
    if (len > p->max_bytes)
        return sd_seterr(err, SD_ERANGE, "ingest_bytes: %zu bytes is over the %zu-byte limit", len, p->max_bytes);
    d = calloc(1, sizeof *d);
    if (!d) return sd_seterr(err, SD_ENOMEM, "ingest_bytes: out of memory");
    d->name = strdup(name ? name : "");
    d->quality.first_invalid_utf8 = -1;
    d->bytes = len;
    if (!d->name) goto oom;
    const char *nm = d->name;
    if (len && is_pdf(data, len)) {
        if (!(d->type = strdup("pdf"))) goto oom;
        if ((rc = pdf_extract(data, len, p, &r, err))) goto fail;
        d->title = r->title; r->title = NULL;
        d->author = r->author; r->author = NULL;
        d->subject = r->subject; r->subject = NULL;
        d->creator = r->creator; r->creator = NULL;
        d->producer = r->producer; r->producer = NULL;
        d->created = r->created;
        d->modified = r->modified;
        if ((rc = ingest_doc_build(d, r->n_pages, r->text, r->text_len, r->label, r->has_text, err))) goto fail;
    } else if (has_ext(nm, ".pdf")) {
        rc = sd_seterr(err, SD_EFORMAT, "ingest_bytes: %s has no %%PDF- header; not a PDF", nm);
        goto fail;
    } else if (has_ext(nm, ".md") || has_ext(nm, ".markdown") || has_ext(nm, ".txt") || has_ext(nm, ".text") ||
               !strchr(base_name(nm), '.') || text_looks_like_text(data, len)) {
        if (!(d->type = strdup(has_ext(nm, ".md") || has_ext(nm, ".markdown") ? "markdown" : "text"))) goto oom;
        if ((rc = text_ingest(data, len, d, err))) goto fail;
    } else {
        rc = sd_seterr(err, SD_ENOTSUP, "ingest_bytes: %s is neither a PDF nor UTF-8 text", nm);
        goto fail;
    }
    pdf_result_free(r);
    *out = d;
    return 0;
oom:
    rc = sd_seterr(err, SD_ENOMEM, "ingest_bytes: out of memory");
fail:
    pdf_result_free(r);
    ingest_doc_free(d);
    return rc;
}

int ingest_file(const char *path, const ingest_params *p, ingest_doc **out, sd_err *err) {
    ingest_params defp = ingest_params_default();
    char *buf = NULL;
    size_t len = 0;
    if (!p) p = &defp;
    *out = NULL;
    int rc = sd_read_file(path, p->max_bytes, &buf, &len, err);
    if (rc) return rc;
    rc = ingest_bytes(buf, len, base_name(path), p, out, err);
    free(buf);
    return rc;
}
