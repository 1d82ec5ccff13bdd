/* smoldoc-inspect - prints what ingest would store for a file: metadata, quality
 * report, warnings, pages with their text, headers and footers, and sections.
 * Usage: smoldoc-inspect FILE [--password P] [--json] [--no-isolate] [--timeout S] [--max-mem MB] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

static void usage(void) {
    fprintf(stderr,
            "usage: smoldoc-inspect FILE [--password P] [--json] [--no-isolate] [--timeout S] [--max-mem MB]\n"
            "  prints pages (text, headers, footers), sections and the quality report\n"
            "  exit status: 0 ok, 1 error, 2 usage, 3 password needed or wrong\n");
}

static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *doc_json(const ingest_doc *d) {
    json_t *o = json_object();
    json_object_set_new(o, "name", jstr(d->name));
    json_object_set_new(o, "type", jstr(d->type));
    json_t *m = json_object();
    json_object_set_new(m, "title", jstr(d->title));
    json_object_set_new(m, "author", jstr(d->author));
    json_object_set_new(m, "subject", jstr(d->subject));
    json_object_set_new(m, "creator", jstr(d->creator));
    json_object_set_new(m, "producer", jstr(d->producer));
    json_object_set_new(m, "created", json_integer(d->created));
    json_object_set_new(m, "modified", json_integer(d->modified));
    json_object_set_new(o, "metadata", m);
    const ingest_quality *q = &d->quality;
    json_t *jq = json_object();
    json_object_set_new(jq, "pages", json_integer(q->pages));
    json_object_set_new(jq, "chars", json_integer((json_int_t)q->chars));
    json_object_set_new(jq, "words", json_integer((json_int_t)q->words));
    json_object_set_new(jq, "bytes", json_integer((json_int_t)q->bytes));
    json_t *nt = json_array();
    for (int i = 0; i < q->pages_without_text; i++) json_array_append_new(nt, json_integer(q->no_text_pages[i]));
    json_object_set_new(jq, "pages_without_text", nt);
    json_object_set_new(jq, "replacement_chars", json_integer((json_int_t)q->replacement_chars));
    json_object_set_new(jq, "nul_chars", json_integer((json_int_t)q->nul_chars));
    json_object_set_new(jq, "ligatures", json_integer((json_int_t)q->ligatures));
    json_object_set_new(jq, "hyphen_joins", json_integer((json_int_t)q->hyphen_joins));
    json_object_set_new(jq, "soft_hyphens", json_integer((json_int_t)q->soft_hyphens));
    json_object_set_new(jq, "invalid_utf8", json_integer((json_int_t)q->invalid_utf8));
    json_object_set_new(jq, "first_invalid_utf8", json_integer(q->first_invalid_utf8));
    json_object_set_new(jq, "language", json_string(q->language));
    json_object_set_new(jq, "language_score", json_real(q->language_score));
    json_object_set_new(o, "quality", jq);
    json_t *w = json_array();
    for (int i = 0; i < d->n_warnings; i++) json_array_append_new(w, json_string(d->warnings[i]));
    json_object_set_new(o, "warnings", w);
    json_t *pages = json_array();
    for (int i = 0; i < d->n_pages; i++) {
        const ingest_page *p = &d->pages[i];
        json_t *jp = json_object();
        json_object_set_new(jp, "number", json_integer(p->number));
        json_object_set_new(jp, "label", jstr(p->label));
        json_object_set_new(jp, "start", json_integer((json_int_t)p->start));
        json_object_set_new(jp, "end", json_integer((json_int_t)p->end));
        json_object_set_new(jp, "has_text", json_boolean(p->has_text));
        json_object_set_new(jp, "header", jstr(p->header));
        json_object_set_new(jp, "footer", jstr(p->footer));
        json_object_set_new(jp, "text", json_stringn(d->text + p->start, p->end - p->start));
        json_array_append_new(pages, jp);
    }
    json_object_set_new(o, "pages", pages);
    json_t *secs = json_array();
    for (int i = 0; i < d->n_sections; i++) {
        const ingest_section *s = &d->sections[i];
        json_t *js = json_object();
        json_object_set_new(js, "level", json_integer(s->level));
        json_object_set_new(js, "number", json_string(s->number));
        json_object_set_new(js, "title", json_string(s->title));
        json_object_set_new(js, "start", json_integer((json_int_t)s->start));
        json_object_set_new(js, "end", json_integer((json_int_t)s->end));
        json_object_set_new(js, "page_start", json_integer(s->page_start));
        json_object_set_new(js, "page_end", json_integer(s->page_end));
        json_array_append_new(secs, js);
    }
    json_object_set_new(o, "sections", secs);
    return o;
}

static void print_text(const ingest_doc *d) {
    const ingest_quality *q = &d->quality;
    printf("name: %s\ntype: %s\n", d->name, d->type);
    if (d->title) printf("title: %s\n", d->title);
    if (d->author) printf("author: %s\n", d->author);
    if (d->producer) printf("producer: %s\n", d->producer);
    printf("quality: pages %d, chars %zu, words %zu, pages without text %d, U+FFFD %zu, U+0000 %zu, "
           "ligatures %zu, hyphen joins %zu, language %s (%.2f)\n",
           q->pages, q->chars, q->words, q->pages_without_text, q->replacement_chars, q->nul_chars, q->ligatures,
           q->hyphen_joins, q->language[0] ? q->language : "?", q->language_score);
    for (int i = 0; i < d->n_warnings; i++) printf("warning: %s\n", d->warnings[i]);
    printf("\n== sections (%d)\n", d->n_sections);
    for (int i = 0; i < d->n_sections; i++) {
        const ingest_section *s = &d->sections[i];
        printf("%*s%s%s%s  [pages %d-%d, chars %zu-%zu]\n", 2 * (s->level - 1), "", s->number,
               s->number[0] ? " " : "", s->title, s->page_start, s->page_end, s->start, s->end);
    }
    for (int i = 0; i < d->n_pages; i++) {
        const ingest_page *p = &d->pages[i];
        printf("\n== page %d%s%s%s [chars %zu-%zu]%s\n", p->number, p->label ? " (label " : "",
               p->label ? p->label : "", p->label ? ")" : "", p->start, p->end, p->has_text ? "" : " NO TEXT LAYER");
        if (p->header) printf("-- header: %s\n", p->header);
        if (p->footer) printf("-- footer: %s\n", p->footer);
        fwrite(d->text + p->start, 1, p->end - p->start, stdout);
        putchar('\n');
    }
}

int main(int argc, char **argv) {
    const char *file = NULL;
    int as_json = 0;
    ingest_params p = ingest_params_default();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--password") && i + 1 < argc) p.password = argv[++i];
        else if (!strcmp(argv[i], "--no-isolate")) p.isolate = 0;
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) p.timeout_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-mem") && i + 1 < argc) p.max_mem_mb = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(); return 0; }
        else if (argv[i][0] == '-' || file) { usage(); return 2; }
        else file = argv[i];
    }
    if (!file) { usage(); return 2; }
    sd_err err = {0};
    ingest_doc *d = NULL;
    int rc = ingest_file(file, &p, &d, &err);
    if (rc) {
        if (as_json) {
            json_t *o = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", rc, "kind", sd_strerror(rc), "message", err.msg);
            char *s = json_dumps(o, JSON_INDENT(1));
            if (s) puts(s);
            free(s);
            json_decref(o);
        }
        fprintf(stderr, "smoldoc-inspect: %s: %s (%s)\n", file, err.msg, sd_strerror(rc));
        return rc == SD_EPASSWORD ? 3 : 1;
    }
    if (as_json) {
        json_t *o = doc_json(d);
        char *s = json_dumps(o, JSON_INDENT(1) | JSON_ENSURE_ASCII * 0);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        print_text(d);
    }
    ingest_doc_free(d);
    return 0;
}
