/* segment.c - line-based heading recognition (keywords, clause numbers, all-caps
 * lines, Markdown) and section spans over the body text. */
#include "segment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_roman(const char *s, size_t n) {
    if (n == 0 || n > 7) return 0;
    int up = is_upper((unsigned char)s[0]);
    for (size_t i = 0; i < n; i++)
        if (!strchr(up ? "IVXLCDM" : "ivxlcdm", s[i])) return 0;
    return 1;
}

/* A title may start with an upper-case letter, a digit, a quote or a bracket
 * (also any non-ASCII byte: accented capitals, curly quotes). */
static int title_start_ok(unsigned char c) {
    return is_upper(c) || is_digit(c) || c == '"' || c == '\'' || c == '(' || c == '[' || c >= 0x80;
}

/* Parses a clause number "1", "1.2", "1.2.", "12.3(a)", "3(b)(ii)" at s[0..n).
 * Returns bytes used (0 if none) and sets *depth and *dotted (ends in '.' or has
 * an inner dot or a parenthetical). */
static size_t parse_number(const char *s, size_t n, int *depth, int *dotted) {
    size_t i = 0;
    int d = 0, dot = 0;
    for (;;) {
        size_t k = 0;
        while (i + k < n && is_digit((unsigned char)s[i + k])) k++;
        if (k == 0 || k > 3) return d ? i : 0;
        i += k;
        d++;
        if (i < n && s[i] == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1])) { i++; dot = 1; continue; }
        break;
    }
    if (i < n && s[i] == '.') { i++; dot = 1; }
    while (i < n && s[i] == '(') {
        size_t k = 1;
        while (i + k < n && k <= 5 && (is_lower((unsigned char)s[i + k]) || is_digit((unsigned char)s[i + k]) ||
                                        is_upper((unsigned char)s[i + k])))
            k++;
        if (k == 1 || i + k >= n || s[i + k] != ')') break;
        i += k + 1;
        d++;
        dot = 1;
    }
    *depth = d;
    *dotted = dot;
    return i;
}

static const struct { const char *kw; int section; } keywords[] = {
    {"ARTICLE", 0}, {"Article", 0}, {"PART", 0}, {"Part", 0}, {"SCHEDULE", 0}, {"Schedule", 0},
    {"EXHIBIT", 0}, {"Exhibit", 0}, {"APPENDIX", 0}, {"Appendix", 0}, {"ANNEX", 0}, {"Annex", 0},
    {"ATTACHMENT", 0}, {"Attachment", 0}, {"SECTION", 1}, {"Section", 1},
};

/* After a number or identifier: skips separators and spaces; returns the title
 * offset, or (size_t)-1 when what follows cannot start a heading title. */
static size_t after_number(const char *line, size_t n, size_t i) {
    size_t j = i;
    while (j < n && (line[j] == ' ' || line[j] == ':' || line[j] == '-' || line[j] == '.')) j++;
    /* en/em dash */
    while (j + 2 < n && (unsigned char)line[j] == 0xE2 && (unsigned char)line[j + 1] == 0x80 &&
           ((unsigned char)line[j + 2] == 0x93 || (unsigned char)line[j + 2] == 0x94)) {
        j += 3;
        while (j < n && line[j] == ' ') j++;
    }
    if (j >= n) return n;
    if (j == i) return (size_t)-1; /* number glued to text: "1.5x" */
    return title_start_ok((unsigned char)line[j]) ? j : (size_t)-1;
}

static int all_caps_heading(const char *line, size_t n) {
    if (n < 4 || n > 80) return 0;
    size_t letters = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (is_lower(c)) return 0;
        if (is_upper(c)) letters++;
        else if (c != ' ') other++;
    }
    if (letters < 4 || letters < other * 2) return 0;
    char last = line[n - 1];
    if (last == ',' || last == ';' || last == '-') return 0;
    return 1;
}

int segment_match_line(const char *line, size_t n, int markdown, int *level, char *num, size_t numcap,
                       size_t *title_off) {
    if (n == 0) return 0;
    if (markdown && line[0] == '#') {
        size_t h = 0;
        while (h < n && line[h] == '#') h++;
        if (h <= 6 && h < n && line[h] == ' ') {
            *level = (int)h;
            snprintf(num, numcap, "%s", "");
            *title_off = h + 1;
            return 1;
        }
        return 0;
    }
    for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++) {
        size_t kl = strlen(keywords[k].kw);
        if (n <= kl + 1 || strncmp(line, keywords[k].kw, kl) != 0 || line[kl] != ' ') continue;
        size_t s = kl + 1, e = s;
        while (e < n && line[e] != ' ' && line[e] != ':') e++;
        size_t idl = e - s;
        while (idl > 0 && (line[s + idl - 1] == '.' || line[s + idl - 1] == ':')) idl--;
        if (idl == 0) continue;
        int depth = 1, dotted = 0, ok = 0;
        if (is_roman(line + s, idl)) ok = 1;
        else if (parse_number(line + s, idl, &depth, &dotted) == idl) ok = 1;
        else if (!keywords[k].section && is_upper((unsigned char)line[s]) &&
                 (idl == 1 || (idl <= 5 && (line[s + 1] == '-' || is_digit((unsigned char)line[s + 1])))))
            ok = 1; /* Schedule A, Exhibit B-1 */
        if (!ok) continue;
        size_t t = after_number(line, n, e);
        if (t == (size_t)-1) continue;
        *level = keywords[k].section ? depth : 1;
        snprintf(num, numcap, "%.*s %.*s", (int)kl, line, (int)idl, line + s);
        *title_off = t;
        return 1;
    }
    if (is_digit((unsigned char)line[0])) {
        int depth = 0, dotted = 0;
        size_t e = parse_number(line, n, &depth, &dotted);
        if (e && dotted) {
            /* first component at most 199 */
            if (atoi(line) > 199 || atoi(line) == 0) return 0;
            if (e < n && line[e] != ' ') return 0;
            size_t t = after_number(line, n, e);
            if (t == (size_t)-1) return 0;
            *level = depth;
            size_t nl = e;
            snprintf(num, numcap, "%.*s", (int)nl, line);
            *title_off = t;
            return 1;
        }
        return 0;
    }
    if (all_caps_heading(line, n)) {
        *level = 1;
        snprintf(num, numcap, "%s", "");
        *title_off = 0;
        return 1;
    }
    return 0;
}

/* Makes a short title from a heading line's remainder (len bytes). */
static char *make_title(const char *s, size_t len) {
    while (len && (s[len - 1] == ' ' || s[len - 1] == '.' || s[len - 1] == ':')) len--;
    size_t cut = len;
    if (len > 100) {
        cut = 0;
        for (size_t i = 3; i + 1 < len && i < 100; i++)
            if ((s[i] == '.' || s[i] == ':') && s[i + 1] == ' ') { cut = i; break; }
        if (!cut) {
            cut = 80;
            while (cut > 20 && s[cut] != ' ') cut--;
            /* do not split a UTF-8 sequence */
            while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
        }
    }
    char *t = malloc(cut + 1);
    if (!t) return NULL;
    memcpy(t, s, cut);
    t[cut] = 0;
    return t;
}

int segment_find(ingest_doc *d, sd_err *err) {
    for (int i = 0; i < d->n_sections; i++) {
        free(d->sections[i].number);
        free(d->sections[i].title);
    }
    free(d->sections);
    d->sections = NULL;
    d->n_sections = 0;
    int cap = 0, markdown = d->type && strcmp(d->type, "markdown") == 0;
    const char *t = d->text;
    size_t n = d->text_len, pos = 0;
    char prev_last = '.'; /* last byte of the previous non-blank line; start counts as a break */
    int prev_blank = 1, skip_next = 0, prev_heading = 0;
    while (pos < n) {
        size_t e = pos;
        while (e < n && t[e] != '\n') e++;
        size_t len = e - pos;
        if (len == 0) {
            prev_blank = 1;
            pos = e + 1;
            continue;
        }
        int level;
        char num[64];
        size_t toff;
        /* a heading starts after a blank line, a sentence end, or another heading */
        int boundary = prev_blank || prev_heading || strchr(".:;!?)\"", prev_last) != NULL || markdown;
        int is_heading = 0;
        if (skip_next) {
            skip_next = 0;
            is_heading = 1;
        } else if (boundary && segment_match_line(t + pos, len, markdown, &level, num, sizeof num, &toff)) {
            const char *ts = t + pos + toff;
            size_t tl = len - toff;
            if (tl == 0 && e < n) {
                /* the title may be the next line: "ARTICLE I\nDEFINITIONS" */
                size_t s2 = e + 1, e2 = s2;
                while (e2 < n && t[e2] != '\n') e2++;
                if (e2 > s2 && e2 - s2 <= 100 && title_start_ok((unsigned char)t[s2])) {
                    int l2;
                    char n2[64];
                    size_t o2;
                    /* only if that line is not itself a numbered clause */
                    if (!segment_match_line(t + s2, e2 - s2, markdown, &l2, n2, sizeof n2, &o2) || n2[0] == 0) {
                        ts = t + s2;
                        tl = e2 - s2;
                        skip_next = 1;
                    }
                }
            }
            if (d->n_sections == cap) {
                cap = cap ? cap * 2 : 32;
                ingest_section *ns = realloc(d->sections, (size_t)cap * sizeof *ns);
                if (!ns) return sd_seterr(err, SD_ENOMEM, "segment_find: out of memory");
                d->sections = ns;
            }
            ingest_section *s = &d->sections[d->n_sections];
            memset(s, 0, sizeof *s);
            s->level = level;
            s->number = strdup(num);
            s->title = make_title(ts, tl);
            s->start = pos;
            if (!s->number || !s->title) {
                free(s->number);
                free(s->title);
                return sd_seterr(err, SD_ENOMEM, "segment_find: out of memory");
            }
            d->n_sections++;
            /* only a whole-line heading (no running text after it) opens the next line */
            is_heading = len - toff <= 100 || skip_next;
        }
        /* a line holding only a short number (a footnote mark, a page number left in
         * the body) neither ends nor continues a sentence: keep the state before it */
        int bare_num = len <= 3;
        for (size_t k = 0; k < len && bare_num; k++) bare_num = t[pos + k] >= '0' && t[pos + k] <= '9';
        if (!bare_num || is_heading) {
            prev_heading = is_heading;
            prev_last = t[e - 1];
            prev_blank = 0;
        }
        pos = e + 1;
    }
    for (int i = 0; i < d->n_sections; i++) {
        ingest_section *s = &d->sections[i];
        s->end = n;
        s->body_end = i + 1 < d->n_sections ? d->sections[i + 1].start : n;
        for (int j = i + 1; j < d->n_sections; j++)
            if (d->sections[j].level <= s->level) { s->end = d->sections[j].start; break; }
        size_t last = s->end;
        while (last > s->start + 1 && (t[last - 1] == '\n' || t[last - 1] == ' ')) last--;
        s->page_start = ingest_doc_page_at(d, s->start);
        s->page_end = ingest_doc_page_at(d, last > s->start ? last - 1 : s->start);
    }
    return 0;
}
