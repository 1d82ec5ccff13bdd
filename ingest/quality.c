/* quality.c - counts and a stop-word language guess for the quality report. */
#include "quality.h"

#include <stdlib.h>
#include <string.h>

/* Frequent short words that are distinctive for each language (lower-case, UTF-8). */
static const char *const stop_en[] = {"the", "and", "of", "to", "is", "that", "for", "with", "shall", "by",
                                      "this", "be", "are", "which", "or", "as", "any", "from", NULL};
static const char *const stop_fr[] = {"le", "la", "les", "des", "et", "est", "une", "du", "pour", "dans",
                                      "par", "sur", "au", "aux", "qui", "que", "ou", "pas", NULL};
static const char *const stop_es[] = {"el", "los", "las", "del", "y", "es", "una", "por", "para", "con",
                                      "que", "como", "al", "se", "su", "lo", "sus", NULL};
static const char *const stop_de[] = {"der", "die", "das", "und", "ist", "nicht", "mit", "den", "von", "zu",
                                      "ein", "eine", "auf", "im", "dem", "sich", "auch", "wird", NULL};
static const char *const stop_it[] = {"il", "di", "che", "della", "per", "con", "non", "una", "sono", "gli",
                                      "nel", "alla", "delle", "dei", "come", "anche", "ai", NULL};
static const char *const stop_pt[] = {"o", "os", "da", "do", "das", "dos", "em", "não", "uma", "com",
                                      "para", "que", "é", "ao", "pelo", "pela", "mais", NULL};
static const struct { const char *code; const char *const *words; } langs[] = {
    {"en", stop_en}, {"fr", stop_fr}, {"es", stop_es}, {"de", stop_de}, {"it", stop_it}, {"pt", stop_pt},
};
#define N_LANGS (sizeof langs / sizeof langs[0])

static int word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

double quality_guess_language(const char *text, size_t n, char lang[3]) {
    size_t hits[N_LANGS] = {0}, total = 0;
    char w[16];
    size_t i = 0;
    while (i < n) {
        while (i < n && !word_byte((unsigned char)text[i])) i++;
        size_t s = i;
        while (i < n && word_byte((unsigned char)text[i])) i++;
        size_t len = i - s;
        if (len == 0 || len >= sizeof w) continue;
        for (size_t k = 0; k < len; k++) {
            char c = text[s + k];
            w[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        w[len] = 0;
        for (size_t l = 0; l < N_LANGS; l++)
            for (const char *const *p = langs[l].words; *p; p++)
                if (strcmp(*p, w) == 0) { hits[l]++; total++; break; }
    }
    size_t best = 0;
    for (size_t l = 1; l < N_LANGS; l++)
        if (hits[l] > hits[best]) best = l;
    if (hits[best] < 5) { lang[0] = 0; return 0; }
    memcpy(lang, langs[best].code, 3);
    return (double)hits[best] / (double)total;
}

int quality_measure(ingest_doc *d, sd_err *err) {
    ingest_quality *q = &d->quality;
    q->pages = d->n_pages;
    q->bytes = d->text_len;
    q->chars = 0;
    q->words = 0;
    int inword = 0;
    for (size_t i = 0; i < d->text_len; i++) {
        unsigned char c = (unsigned char)d->text[i];
        if ((c & 0xC0) != 0x80) q->chars++;
        int sp = c == ' ' || c == '\n' || c == '\t';
        if (!sp && !inword) q->words++;
        inword = !sp;
    }
    free(q->no_text_pages);
    q->no_text_pages = NULL;
    q->pages_without_text = 0;
    for (int p = 0; p < d->n_pages; p++)
        if (!d->pages[p].has_text) q->pages_without_text++;
    if (q->pages_without_text) {
        q->no_text_pages = malloc((size_t)q->pages_without_text * sizeof *q->no_text_pages);
        if (!q->no_text_pages) return sd_seterr(err, SD_ENOMEM, "quality_measure: out of memory");
        int k = 0;
        for (int p = 0; p < d->n_pages; p++)
            if (!d->pages[p].has_text) q->no_text_pages[k++] = p + 1;
    }
    /* a 200 KB sample is plenty for the guess */
    size_t sample = d->text_len < 200000 ? d->text_len : 200000;
    q->language_score = quality_guess_language(d->text, sample, q->language);
    return 0;
}
