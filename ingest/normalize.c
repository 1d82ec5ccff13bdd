/* normalize.c - per-page text cleaning and line joining that keep, for every
 * output byte, the offset of the raw byte it came from (see normalize.h). */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void normalize_buf_free(normalize_buf *b) {
    if (!b) return;
    free(b->s);
    free(b->src);
    memset(b, 0, sizeof *b);
}

static int buf_reserve(normalize_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 4) return SD_ENOMEM;
        cap *= 2;
    }
    char *s = realloc(b->s, cap);
    if (!s) return SD_ENOMEM;
    b->s = s;
    uint32_t *src = realloc(b->src, cap * sizeof *src);
    if (!src) return SD_ENOMEM;
    b->src = src;
    b->cap = cap;
    return 0;
}

static int buf_put(normalize_buf *b, const char *p, size_t n, uint32_t src, int same_src) {
    if (buf_reserve(b, n)) return SD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        b->s[b->len] = p[i];
        b->src[b->len] = same_src ? src : src + (uint32_t)i;
        b->len++;
    }
    b->s[b->len] = 0;
    return 0;
}

size_t normalize_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp) {
    unsigned c = p[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = 0xFFFD; return 1; }
    if (len > n) { *cp = 0xFFFD; return 1; }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = 0xFFFD; return 1; }
    *cp = v;
    return len;
}

static int is_space_cp(uint32_t cp) {
    return cp == ' ' || cp == '\t' || cp == '\v' || (cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\f') ||
           cp == 0x7F || cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static const char *ligature(uint32_t cp) {
    switch (cp) {
    case 0xFB00: return "ff";
    case 0xFB01: return "fi";
    case 0xFB02: return "fl";
    case 0xFB03: return "ffi";
    case 0xFB04: return "ffl";
    case 0xFB05: return "st"; /* long s + t */
    case 0xFB06: return "st";
    }
    return NULL;
}

int normalize_clean(const char *raw, size_t n, normalize_buf *out, ingest_quality *q) {
    const unsigned char *p = (const unsigned char *)raw;
    int pending_space = 0, line_start = 1;
    uint32_t space_src = 0;
    if (buf_reserve(out, n)) return SD_ENOMEM;
    out->s[out->len] = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = normalize_utf8_decode(p + i, n - i, &cp);
        uint32_t at = (uint32_t)i;
        i += l;
        if (cp == 0) { q->nul_chars++; continue; }
        if (cp == '\r' || cp == '\n' || cp == '\f' || cp == 0x2028 || cp == 0x2029) {
            if (cp == '\r' && i < n && p[i] == '\n') i++;
            if (buf_put(out, "\n", 1, at, 1)) return SD_ENOMEM;
            pending_space = 0;
            line_start = 1;
            continue;
        }
        if (is_space_cp(cp)) {
            if (!line_start && !pending_space) { pending_space = 1; space_src = at; }
            continue;
        }
        if (cp == 0xAD) { q->soft_hyphens++; continue; }
        if (pending_space) {
            if (buf_put(out, " ", 1, space_src, 1)) return SD_ENOMEM;
            pending_space = 0;
        }
        line_start = 0;
        if (cp == 0x37E) cp = ';'; /* GREEK QUESTION MARK: canonically a semicolon (NFC maps it) */
        if (cp == ';') {
            if (buf_put(out, ";", 1, at, 1)) return SD_ENOMEM;
            continue;
        }
        const char *lig = ligature(cp);
        if (lig) {
            q->ligatures++;
            if (buf_put(out, lig, strlen(lig), at, 1)) return SD_ENOMEM;
            continue;
        }
        if (cp == 0xFFFD) {
            q->replacement_chars++;
            if (buf_put(out, "\xEF\xBF\xBD", 3, at, 1)) return SD_ENOMEM;
            continue;
        }
        if (buf_put(out, raw + at, l, at, 0)) return SD_ENOMEM;
    }
    return 0;
}

size_t normalize_count_lines(const normalize_buf *clean) {
    if (clean->len == 0) return 0;
    size_t k = 1;
    for (size_t i = 0; i < clean->len; i++)
        if (clean->s[i] == '\n') k++;
    return k;
}

int normalize_is_page_number(const char *line, size_t n) {
    size_t i = 0, e = n;
    /* strip decorations: spaces, dashes (ASCII and en/em dash), brackets */
    for (;;) {
        if (i < e && (line[i] == ' ' || line[i] == '-' || line[i] == '[' || line[i] == '(')) { i++; continue; }
        if (i + 3 <= e && (unsigned char)line[i] == 0xE2 && (unsigned char)line[i + 1] == 0x80 &&
            ((unsigned char)line[i + 2] == 0x93 || (unsigned char)line[i + 2] == 0x94)) { i += 3; continue; }
        break;
    }
    for (;;) {
        if (e > i && (line[e - 1] == ' ' || line[e - 1] == '-' || line[e - 1] == ']' || line[e - 1] == ')')) { e--; continue; }
        if (e >= i + 3 && (unsigned char)line[e - 3] == 0xE2 && (unsigned char)line[e - 2] == 0x80 &&
            ((unsigned char)line[e - 1] == 0x93 || (unsigned char)line[e - 1] == 0x94)) { e -= 3; continue; }
        break;
    }
    if (i >= e) return 0;
    const char *s = line + i;
    size_t m = e - i;
    if (m >= 5 && strncasecmp(s, "page ", 5) == 0) { s += 5; m -= 5; }
    else if (m >= 2 && (s[0] == 'p' || s[0] == 'P') && s[1] == '.') { s += 2; m -= 2; while (m && *s == ' ') { s++; m--; } }
    size_t d = 0;
    while (d < m && s[d] >= '0' && s[d] <= '9') d++;
    if (d == 0) {
        /* lower-case roman numerals alone */
        if (m == 0 || m > 7) return 0;
        for (size_t k = 0; k < m; k++)
            if (!strchr("ivxlc", s[k])) return 0;
        return s == line + i; /* not after "page " (would still be fine) */
    }
    if (d > 4) return 0;
    if (d == m) return 1;
    /* "3 of 10", "3/10" */
    const char *r = s + d;
    size_t rm = m - d;
    while (rm && *r == ' ') { r++; rm--; }
    if (rm >= 2 && strncasecmp(r, "of", 2) == 0) { r += 2; rm -= 2; }
    else if (rm >= 1 && *r == '/') { r++; rm--; }
    else return 0;
    while (rm && *r == ' ') { r++; rm--; }
    size_t d2 = 0;
    while (d2 < rm && r[d2] >= '0' && r[d2] <= '9') d2++;
    return d2 > 0 && d2 <= 5 && d2 == rm;
}

void normalize_line_key(const char *line, size_t n, char *key, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        char c = line[i];
        if (c >= '0' && c <= '9') {
            if (k && key[k - 1] == '#') continue;
            c = '#';
        }
        else if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        key[k++] = c;
    }
    if (cap) key[k] = 0;
}

static int is_lower_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z');
}

int normalize_join(const normalize_buf *clean, const unsigned char *drop, normalize_buf *out,
                   ingest_quality *q) {
    size_t line = 0, pos = 0;
    int blank_run = 0;    /* blank lines seen since the last kept text line */
    int have_text = 0;    /* any text line emitted yet */
    if (buf_reserve(out, clean->len)) return SD_ENOMEM;
    out->s[out->len] = 0;
    size_t start_len = out->len;
    while (pos <= clean->len && clean->len > 0) {
        size_t e = pos;
        while (e < clean->len && clean->s[e] != '\n') e++;
        int dropped = drop && drop[line];
        if (!dropped) {
            if (e == pos) {
                blank_run++;
            } else {
                if (have_text) {
                    size_t L = out->len;
                    /* hyphenated word at the end of the previous line? */
                    if (!blank_run && L - start_len >= 2 && out->s[L - 1] == '-' &&
                        is_lower_byte((unsigned char)out->s[L - 2]) && is_lower_byte((unsigned char)clean->s[pos])) {
                        out->len--;
                        out->s[out->len] = 0;
                        q->hyphen_joins++;
                    } else if (blank_run) {
                        if (buf_put(out, "\n\n", 2, clean->src[pos], 1)) return SD_ENOMEM;
                    } else {
                        if (buf_put(out, "\n", 1, pos > 0 ? clean->src[pos - 1] : 0, 1)) return SD_ENOMEM;
                    }
                }
                if (buf_reserve(out, e - pos)) return SD_ENOMEM;
                memcpy(out->s + out->len, clean->s + pos, e - pos);
                memcpy(out->src + out->len, clean->src + pos, (e - pos) * sizeof *out->src);
                out->len += e - pos;
                out->s[out->len] = 0;
                have_text = 1;
                blank_run = 0;
            }
        }
        line++;
        if (e >= clean->len) break;
        pos = e + 1;
    }
    return 0;
}
