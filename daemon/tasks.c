/* tasks.c - prompts and answer post-processing for ask, summarize, extract.
 * The prompt follows SmolLM3's chat template with the document inside the
 * system block's custom instructions; the system block is not closed by the
 * template (no tools), so the prefix ends with "\n\n" and the suffix starts
 * with the special token <|im_start|>: special tokens are split out before
 * pre-tokenization, so the two halves tokenize exactly as the whole. */
#include "tasks.h"

#include "chat.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- a small growable string ---- */
typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        b->p = xrealloc(b->p, c);
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Appends s[0..n) without the template's mode flags (the template deletes
 * "/no_think" and "/think" from the system text; "/system_override" would
 * drop the metadata block), so a document cannot switch the mode. */
static void sb_put_clean(sbuf *b, const char *s, size_t n) {
    static const char *const flags[] = {"/no_think", "/think", "/system_override"};
    size_t i = 0, last = 0;
    while (i < n) {
        if (s[i] == '/') {
            int hit = 0;
            for (int f = 0; f < 3 && !hit; f++) {
                size_t fl = strlen(flags[f]);
                if (i + fl <= n && !memcmp(s + i, flags[f], fl)) {
                    sb_put(b, s + last, i - last);
                    i += fl;
                    last = i;
                    hit = 1;
                }
            }
            if (hit) continue;
        }
        i++;
    }
    sb_put(b, s + last, n - last);
}

void tasks_half_clear(tasks_half *h) {
    if (!h) return;
    free(h->text);
    free(h->ids);
    free(h->source);
    memset(h, 0, sizeof *h);
}

/* Appends ids of text (plain, no specials) to *ids. */
static int add_text(tokenizer *tok, const char *s, size_t n, int32_t **ids, size_t *nids, size_t *cap,
                    sd_err *err) {
    int32_t *t = NULL;
    size_t nt = 0;
    int rc = tokenizer_encode(tok, s, n, 0, &t, &nt, err);
    if (rc) return rc;
    if (*nids + nt > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *nids + nt) c *= 2;
        int32_t *p = realloc(*ids, c * sizeof **ids);
        if (!p) { free(t); return sd_seterr(err, SD_ENOMEM, "tasks: out of memory for %zu token ids", c); }
        *ids = p;
        *cap = c;
    }
    if (nt) memcpy(*ids + *nids, t, nt * sizeof *t);
    *nids += nt;
    free(t);
    return 0;
}

static int add_special(tokenizer *tok, const char *name, int32_t **ids, size_t *nids, size_t *cap, sd_err *err) {
    int32_t id = tokenizer_token_id(tok, name);
    if (id < 0) return sd_seterr(err, SD_EFORMAT, "tasks: the tokenizer has no %s token", name);
    if (*nids + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, c * sizeof **ids);
        if (!p) return sd_seterr(err, SD_ENOMEM, "tasks: out of memory");
        *ids = p;
        *cap = c;
    }
    (*ids)[(*nids)++] = id;
    return 0;
}

static const char intro[] =
    "You are smoldoc, a careful assistant for reading contracts and business documents. "
    "Answer from the document only, quote its words exactly, and cite pages as (p. N).";

int tasks_build_prefix(tokenizer *tok, const tasks_doc *doc, size_t start, size_t end, bool think,
                       tasks_half *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    char date[64] = "01 January 2025";
    if (doc) {
        time_t t = (time_t)doc->created_at;
        struct tm tm;
        if (gmtime_r(&t, &tm)) strftime(date, sizeof date, "%d %B %Y", &tm);
    }
    sbuf body = {0}, instr = {0};
    sb_printf(&body,
              "system\n## Metadata\n\nKnowledge Cutoff Date: " TASKS_KNOWLEDGE_CUTOFF
              "\nToday Date: %s\nReasoning Mode: %s\n\n## Custom Instructions\n\n",
              date, think ? "/think" : "/no_think");
    sb_puts(&instr, intro);
    if (doc) {
        int np = doc->n_pages;
        if (end == 0 || end > doc->len) end = doc->len;
        if (start > end) start = end;
        int a = np ? tasks_page_of(doc, start) : 0, z = np ? tasks_page_of(doc, end ? end - 1 : 0) : 0;
        bool part = start > 0 || end < doc->len;
        sb_puts(&instr, "\n\nThe document");
        if (doc->name && *doc->name) {
            sb_puts(&instr, " \"");
            sb_put_clean(&instr, doc->name, strnlen(doc->name, 1024));
            sb_puts(&instr, "\"");
        }
        if (part) sb_printf(&instr, " (a part: pages %d to %d of %d)", a, z, np);
        sb_puts(&instr, " follows; each page starts with a [Page N] line.\n\n");
        if (np == 0) sb_put_clean(&instr, doc->text + start, end - start);
        for (int p = a; np && p <= z; p++) {
            size_t s = (size_t)doc->page_start[p - 1];
            size_t e = p < np ? (size_t)doc->page_start[p] : doc->len;
            if (s < start) s = start;
            if (e > end) e = end;
            if (s > e) s = e;
            while (e > s && isspace((unsigned char)doc->text[e - 1])) e--;
            sb_printf(&instr, "[Page %d]\n", p);
            sb_put_clean(&instr, doc->text + s, e - s);
            sb_puts(&instr, "\n\n");
        }
    }
    /* The template right-strips the custom instructions, then adds "\n\n". */
    while (instr.n && isspace((unsigned char)instr.p[instr.n - 1])) instr.p[--instr.n] = 0;
    sb_put(&body, instr.p, instr.n);
    sb_puts(&body, "\n\n");
    out->source = instr.p;
    out->think = think;
    snprintf(out->date, sizeof out->date, "%s", date);

    size_t cap = 0;
    int rc = add_special(tok, "<|im_start|>", &out->ids, &out->n, &cap, err);
    if (!rc) rc = add_text(tok, body.p, body.n, &out->ids, &out->n, &cap, err);
    if (rc) { free(body.p); tasks_half_clear(out); return rc; }
    sbuf t = {0};
    sb_puts(&t, "<|im_start|>");
    sb_put(&t, body.p, body.n);
    free(body.p);
    out->text = t.p;
    out->len = t.n;
    return 0;
}

int tasks_build_suffix(tokenizer *tok, const char *message, bool think, tasks_half *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    sbuf u = {0}, t = {0};
    sb_puts(&u, "user\n");
    sb_puts(&u, message);
    int rc = add_special(tok, "<|im_start|>", &out->ids, &out->n, &cap, err);
    if (!rc) rc = add_text(tok, u.p, u.n, &out->ids, &out->n, &cap, err);
    if (!rc) rc = add_special(tok, "<|im_end|>", &out->ids, &out->n, &cap, err);
    if (!rc) rc = add_text(tok, "\n", 1, &out->ids, &out->n, &cap, err);
    if (!rc) rc = add_special(tok, "<|im_start|>", &out->ids, &out->n, &cap, err);
    if (!rc) rc = add_text(tok, "assistant\n", 10, &out->ids, &out->n, &cap, err);
    if (!rc && !think) {
        rc = add_special(tok, "<think>", &out->ids, &out->n, &cap, err);
        if (!rc) rc = add_text(tok, "\n\n", 2, &out->ids, &out->n, &cap, err);
        if (!rc) rc = add_special(tok, "</think>", &out->ids, &out->n, &cap, err);
        if (!rc) rc = add_text(tok, "\n", 1, &out->ids, &out->n, &cap, err);
    }
    sb_puts(&t, "<|im_start|>");
    sb_put(&t, u.p, u.n);
    sb_puts(&t, "<|im_end|>\n<|im_start|>assistant\n");
    if (!think) sb_puts(&t, "<think>\n\n</think>\n");
    free(u.p);
    if (rc) { free(t.p); tasks_half_clear(out); return rc; }
    out->source = xstrdup(message);
    out->think = think;
    out->text = t.p;
    out->len = t.n;
    return 0;
}

/* Special-token strings inside the plain-text parts of a prompt. */
static int has_special_strings(tokenizer *tok, const tasks_half *h) {
    int32_t *ids = NULL;
    size_t n = 0;
    (void)tok;
    /* Count "<|" and "<think>"-like markers outside the template's own ones by
     * comparing counts: the template itself places them at known spots. */
    static const char *const marks[] = {"<|", "<think>", "</think>", "<tool", "</tool", "<code>", "</code>"};
    size_t count = 0;
    for (size_t m = 0; m < sizeof marks / sizeof marks[0]; m++) {
        size_t ml = strlen(marks[m]);
        for (const char *p = h->text; (p = memmem(p, h->len - (size_t)(p - h->text), marks[m], ml)); p += ml) count++;
    }
    for (size_t i = 0; i < h->n; i++) if (tokenizer_is_special(tok, h->ids[i])) n++;
    free(ids);
    /* Every template special contributes exactly one mark ("<|" or "<think>"
     * or "</think>"); more marks than specials means the text has its own. */
    return count > n;
}

int tasks_verify_split(tokenizer *tok, const tasks_half *prefix, const tasks_half *suffix, sd_err *err) {
    if (prefix->source && suffix->source) {
        chat_message m[2] = {{"system", prefix->source}, {"user", suffix->source}};
        chat_options o = chat_options_default();
        o.enable_thinking = prefix->think;
        o.date = prefix->date;
        sd_err e = {0};
        char *r = chat_render(m, 2, &o, &e);
        if (!r) return sd_seterr(err, SD_EFORMAT, "tasks_verify_split: chat_render: %s", e.msg);
        size_t rl = strlen(r);
        int same = rl == prefix->len + suffix->len && !memcmp(r, prefix->text, prefix->len) &&
                   !memcmp(r + prefix->len, suffix->text, suffix->len);
        if (!same) {
            size_t i = 0;
            while (i < rl && i < prefix->len && r[i] == prefix->text[i]) i++;
            free(r);
            return sd_seterr(err, SD_EFORMAT, "tasks_verify_split: prompt differs from the chat template at byte %zu "
                             "(template %zu bytes, prompt %zu)", i, rl, prefix->len + suffix->len);
        }
        free(r);
    }
    if (has_special_strings(tok, prefix) || has_special_strings(tok, suffix)) return 1;
    char *whole = malloc(prefix->len + suffix->len + 1);
    if (!whole) return sd_seterr(err, SD_ENOMEM, "tasks_verify_split: out of memory");
    memcpy(whole, prefix->text, prefix->len);
    memcpy(whole + prefix->len, suffix->text, suffix->len);
    whole[prefix->len + suffix->len] = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tokenizer_encode(tok, whole, prefix->len + suffix->len, 1, &ids, &n, err);
    free(whole);
    if (rc) return rc;
    if (n != prefix->n + suffix->n) {
        rc = sd_seterr(err, SD_EFORMAT, "tasks_verify_split: whole gives %zu ids, prefix %zu + suffix %zu", n,
                       prefix->n, suffix->n);
    } else {
        for (size_t i = 0; i < n; i++) {
            int32_t want = i < prefix->n ? prefix->ids[i] : suffix->ids[i - prefix->n];
            if (ids[i] != want) {
                rc = sd_seterr(err, SD_EFORMAT, "tasks_verify_split: id %zu is %d whole, %d split (prefix %zu ids)",
                               i, ids[i], want, prefix->n);
                break;
            }
        }
    }
    free(ids);
    return rc;
}

char *tasks_ask_message(const char *question) {
    sbuf b = {0};
    sb_puts(&b, "Question about the document: ");
    sb_puts(&b, question);
    sb_puts(&b, "\nAnswer briefly and cite the pages you used as (p. N).");
    return b.p;
}

static unsigned style_words(const char *style, unsigned words) {
    if (words) return words;
    if (style && !strcmp(style, "detailed")) return 400;
    if (style && !strcmp(style, "bullets")) return 150;
    return 120;
}

char *tasks_summarize_message(const char *style, unsigned words) {
    sbuf b = {0};
    unsigned w = style_words(style, words);
    if (style && !strcmp(style, "bullets"))
        sb_printf(&b, "Summarize the document as bullet points, about %u words in all. ", w);
    else if (style && !strcmp(style, "detailed"))
        sb_printf(&b, "Write a detailed summary of the document, about %u words, section by section. ", w);
    else
        sb_printf(&b, "Summarize the document briefly, in about %u words. ", w);
    sb_puts(&b, "Name the parties, the purpose, the key obligations and dates, and cite pages as (p. N).");
    return b.p;
}

char *tasks_map_message(int first_page, int last_page) {
    sbuf b = {0};
    sb_printf(&b,
              "This is pages %d to %d of a longer document. Summarize this part in at most 120 words: "
              "parties, obligations, dates, amounts. Cite pages as (p. N).",
              first_page, last_page);
    return b.p;
}

char *tasks_reduce_message(const char *style, unsigned words, char *const *partials, size_t n) {
    sbuf b = {0};
    sb_puts(&b, "Here are summaries of consecutive parts of one document:\n\n");
    for (size_t i = 0; i < n; i++) {
        sb_printf(&b, "Part %zu: ", i + 1);
        sb_puts(&b, partials[i] ? partials[i] : "");
        sb_puts(&b, "\n\n");
    }
    char *m = tasks_summarize_message(style, words);
    sb_puts(&b, "Combine them into one summary of the whole document. ");
    sb_puts(&b, m);
    free(m);
    return b.p;
}

char *tasks_extract_message(const char *category, const char *description) {
    sbuf b = {0};
    sb_puts(&b, "Clause category: ");
    sb_puts(&b, category);
    if (description && *description) {
        sb_puts(&b, " (");
        sb_puts(&b, description);
        sb_puts(&b, ")");
    }
    sb_puts(&b, "\nQuote the sentence of the document that covers this category, word for word and in "
                "double quotes, then its page as (p. N). If the document has no such clause, answer NONE.");
    return b.p;
}

/* ---- answers ---- */

static int word_at(const char *s, size_t i, const char *w) {
    size_t n = strlen(w);
    if (i > 0 && isalnum((unsigned char)s[i - 1])) return 0;
    return strncasecmp(s + i, w, n) == 0;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

json_t *tasks_cited_pages(const char *text, int n_pages) {
    int found[256];
    size_t nf = 0;
    for (size_t i = 0; text && text[i] && nf < 256; i++) {
        size_t k = 0;
        if (word_at(text, i, "pages")) k = 5;
        else if (word_at(text, i, "page")) k = 4;
        else if (word_at(text, i, "pp.")) k = 3;
        else if (word_at(text, i, "p.")) k = 2;
        if (!k) continue;
        size_t j = i + k;
        while (text[j] == ' ') j++;
        if (!isdigit((unsigned char)text[j])) continue;
        long a = strtol(text + j, NULL, 10), z = a;
        while (isdigit((unsigned char)text[j])) j++;
        if (text[j] == '-' && isdigit((unsigned char)text[j + 1])) z = strtol(text + j + 1, NULL, 10);
        if (z < a || z - a > 50) z = a;
        for (long p = a; p <= z && nf < 256; p++)
            if (p >= 1 && p <= n_pages) found[nf++] = (int)p;
        i = j;
    }
    qsort(found, nf, sizeof *found, cmp_int);
    json_t *arr = json_array();
    for (size_t i = 0; i < nf; i++)
        if (i == 0 || found[i] != found[i - 1]) json_array_append_new(arr, json_integer(found[i]));
    return arr;
}

char *tasks_answer_quote(const char *answer) {
    if (!answer) return NULL;
    const char *s = answer;
    while (isspace((unsigned char)*s)) s++;
    /* A quote in double quotes (ASCII or curly) wins; else the whole answer
     * up to a trailing page citation. */
    const char *q = strstr(s, "\""), *e = NULL;
    size_t ql = 1;
    const char *cq = strstr(s, "\xe2\x80\x9c");
    if (cq && (!q || cq < q)) { q = cq; ql = 3; }
    if (q) {
        const char *a = q + ql;
        e = strstr(a, "\"");
        const char *ce = strstr(a, "\xe2\x80\x9d");
        if (ce && (!e || ce < e)) e = ce;
        if (e && e > a) { s = a; }
        else e = NULL;
    }
    if (!e) {
        e = s + strlen(s);
        const char *cite = strstr(s, "(p.");
        if (cite) e = cite;
    }
    while (e > s && isspace((unsigned char)e[-1])) e--;
    if (e == s) return NULL;
    if ((size_t)(e - s) >= 4 && !strncasecmp(s, "NONE", 4)) return NULL;
    if (!strncasecmp(s, "not found", 9) || !strncasecmp(s, "no such clause", 14)) return NULL;
    char *r = xmalloc((size_t)(e - s) + 1);
    memcpy(r, s, (size_t)(e - s));
    r[e - s] = 0;
    return r;
}

size_t tasks_char_offset(const char *text, size_t len, size_t off) {
    size_t c = 0;
    if (off > len) off = len;
    for (size_t i = 0; i < off; i++) c += ((unsigned char)text[i] & 0xC0) != 0x80;
    return c;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts a copy of the offsets, counts code points in one pass up to each, and
 * maps every offset back through a binary search in the sorted copy. */
void tasks_char_offsets(const char *text, size_t len, size_t *offs, size_t n) {
    if (!n) return;
    size_t *sorted = xmalloc(n * sizeof *sorted);
    memcpy(sorted, offs, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_size);
    size_t *chars = xmalloc(n * sizeof *chars);
    size_t pos = 0, c = 0;
    for (size_t k = 0; k < n; k++) {
        size_t target = sorted[k] < len ? sorted[k] : len;
        for (; pos < target; pos++) c += ((unsigned char)text[pos] & 0xC0) != 0x80;
        chars[k] = c;
    }
    for (size_t i = 0; i < n; i++) {
        size_t lo = 0, hi = n; /* first sorted[k] >= offs[i]: it equals offs[i] */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sorted[mid] < offs[i]) lo = mid + 1;
            else hi = mid;
        }
        offs[i] = chars[lo];
    }
    free(sorted);
    free(chars);
}

int tasks_page_of(const tasks_doc *doc, size_t off) {
    int p = 0;
    for (int i = 0; i < doc->n_pages; i++)
        if ((size_t)doc->page_start[i] <= off) p = i + 1;
    return p;
}

/* Normalised copy: ASCII lower case, whitespace runs as one space; map[i] is
 * the source offset of byte i. */
static char *normalise(const char *s, size_t n, size_t **map, size_t *out_n) {
    char *o = malloc(n + 1);
    size_t *m = malloc((n + 1) * sizeof *m);
    if (!o || !m) { free(o); free(m); return NULL; }
    size_t k = 0;
    int space = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            if (!space) { o[k] = ' '; m[k++] = i; space = 1; }
            continue;
        }
        o[k] = (char)tolower(c);
        m[k++] = i;
        space = 0;
    }
    if (k && o[k - 1] == ' ') k--;
    o[k] = 0;
    m[k] = n;
    *map = m;
    *out_n = k;
    return o;
}

int tasks_locate(const tasks_doc *doc, const char *quote, size_t *start, size_t *end, int *page) {
    size_t ql = strlen(quote);
    if (ql < 4 || !doc->text) return 0;
    const char *hit = memmem(doc->text, doc->len, quote, ql);
    if (hit) {
        *start = (size_t)(hit - doc->text);
        *end = *start + ql;
        *page = tasks_page_of(doc, *start);
        return 1;
    }
    size_t *dm = NULL, *qm = NULL, dn, qn;
    char *d = normalise(doc->text, doc->len, &dm, &dn), *q = normalise(quote, ql, &qm, &qn);
    int ok = 0;
    if (d && q && qn >= 4) {
        const char *h = memmem(d, dn, q, qn);
        if (h) {
            size_t i = (size_t)(h - d);
            *start = dm[i];
            *end = dm[i + qn - 1] + 1;
            *page = tasks_page_of(doc, *start);
            ok = 1;
        }
    }
    free(d); free(dm); free(q); free(qm);
    return ok;
}
