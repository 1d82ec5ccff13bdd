/* text.c - .txt/.md input: repairs invalid UTF-8 (reporting where), drops a BOM,
 * splits pages at form feeds and hands the pages to ingest_doc_build. */
#include "text.h"

#include <stdlib.h>
#include <string.h>

#include "normalize.h"

int text_looks_like_text(const void *data, size_t len) {
    const unsigned char *p = data;
    size_t n = len < 4096 ? len : 4096, bad = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (p[i] == 0) return 0;
        size_t l = normalize_utf8_decode(p + i, n - i, &cp);
        if (cp == 0xFFFD && l == 1 && i + 4 < n) bad++;
        i += l;
    }
    return bad * 10 <= n / 8 + 1;
}

int text_ingest(const void *data, size_t len, ingest_doc *d, sd_err *err) {
    const unsigned char *p = data;
    char *clean = NULL;
    char **pages = NULL;
    size_t *plen = NULL;
    int rc = 0, n_pages = 0;
    size_t nul = 0;
    if (len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) { p += 3; len -= 3; }
    for (size_t i = 0; i < len && i < 4096; i++) nul += p[i] == 0;
    if (nul > 16) return sd_seterr(err, SD_EFORMAT, "text_ingest: %s looks binary (NUL bytes), not text", d->name);
    size_t cap;
    if (sd_mul_overflow(len, 3, &cap) || cap > SIZE_MAX - 1)
        return sd_seterr(err, SD_ERANGE, "text_ingest: input too large");
    clean = malloc(cap + 1);
    if (!clean) return sd_seterr(err, SD_ENOMEM, "text_ingest: out of memory");
    size_t k = 0;
    d->quality.first_invalid_utf8 = -1;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = normalize_utf8_decode(p + i, len - i, &cp);
        int bad = cp == 0xFFFD && !(l == 3 && p[i] == 0xEF && p[i + 1] == 0xBF && p[i + 2] == 0xBD);
        if (bad) {
            if (d->quality.first_invalid_utf8 < 0) d->quality.first_invalid_utf8 = (long)(p + i - (const unsigned char *)data);
            d->quality.invalid_utf8++;
            memcpy(clean + k, "\xEF\xBF\xBD", 3);
            k += 3;
        } else {
            memcpy(clean + k, p + i, l);
            k += l;
        }
        i += l;
    }
    clean[k] = 0;
    if (d->quality.invalid_utf8)
        ingest_doc_warn(d, "invalid UTF-8: %zu bad sequence(s), first at byte %ld; replaced by U+FFFD",
                        d->quality.invalid_utf8, d->quality.first_invalid_utf8);
    /* split at form feeds */
    int cap_pages = 1;
    for (size_t i = 0; i < k; i++) cap_pages += clean[i] == '\f';
    pages = calloc((size_t)cap_pages, sizeof *pages);
    plen = calloc((size_t)cap_pages, sizeof *plen);
    if (!pages || !plen) { rc = sd_seterr(err, SD_ENOMEM, "text_ingest: out of memory"); goto done; }
    size_t s = 0;
    for (size_t i = 0; i <= k; i++) {
        if (i == k || clean[i] == '\f') {
            pages[n_pages] = clean + s;
            plen[n_pages] = i - s;
            n_pages++;
            s = i + 1;
        }
    }
    /* a trailing form feed does not open an empty last page */
    if (n_pages > 1 && plen[n_pages - 1] == 0) n_pages--;
    rc = ingest_doc_build(d, n_pages, pages, plen, NULL, NULL, err);
done:
    free(pages);
    free(plen);
    free(clean);
    return rc;
}
