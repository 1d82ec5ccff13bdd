/* smoldoc.c - the command-line client of smoldocd: ingest, list, show, delete,
 * summarize, extract clauses, ask, status, ping, cancel, and CurveZMQ keygen.
 * Talks protocol v1 (protocol/PROTOCOL.md) through protocol_client. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol.h"
#include "protocol_client.h"

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,    /* bad command line, or a local file could not be read */
    EXIT_CONN = 2,     /* no connection, or no reply in time */
    EXIT_SERVER = 3,   /* the daemon answered with an error (or a malformed event) */
    EXIT_NOTFOUND = 4, /* the daemon answered not_found */
    EXIT_BUSY = 5,     /* the daemon answered busy */
    EXIT_INTR = 130,   /* interrupted (Ctrl-C); the request was canceled */
};

static const char usage_text[] =
    "usage: smoldoc [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  ingest FILE...            add PDF or text files; prints each document id\n"
    "  ls                        list documents\n"
    "  show DOC [--pages]        metadata and sections (--pages: page text too)\n"
    "  rm DOC                    delete a document\n"
    "  summarize DOC [--style brief|detailed|bullets] [--words N]\n"
    "  clauses DOC [--category C]...  extract clauses (default: the 41 CUAD categories)\n"
    "  ask DOC \"QUESTION\"        answer a question about a document (streamed)\n"
    "  status                    daemon status: model, queue, cache\n"
    "  ping                      check that the daemon answers\n"
    "  cancel ID                 cancel a request (only from the same connection)\n"
    "  keygen PREFIX             write a CurveZMQ key pair PREFIX.key / PREFIX.pub\n"
    "\n"
    "Options (anywhere on the line; -- ends them):\n"
    "  --endpoint E      daemon endpoint (default $SMOLDOC_ENDPOINT, else\n"
    "                    ipc://$SMOLDOC_DATA/smoldocd.sock, SMOLDOC_DATA defaulting\n"
    "                    to $HOME/.local/share/smoldoc)\n"
    "  --json            print results as JSON (one object per line) for scripts\n"
    "  --timeout S       give up when the daemon sends nothing for S seconds\n"
    "                    (default: 30 until the request is accepted, then no limit)\n"
    "  --think, --no-think   reasoning mode (default --no-think)\n"
    "  --max-tokens N    generation limit (default: the task's)\n"
    "  --temp T          temperature (default 0.6; 0 = greedy)\n"
    "  --top-p P, --top-k K, --seed N, --deadline MS   sampling and deadline\n"
    "  --server-key FILE server public key file: use CurveZMQ (tcp:// endpoints)\n"
    "  --client-key FILE this client's key pair file (from keygen)\n"
    "  -q, --quiet       no progress bar or timings on stderr\n"
    "  -h, --help        this text\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  usage error, or a local file could not be read\n"
    "  2  cannot connect, or no reply within the timeout\n"
    "  3  the daemon answered with an error (message on stderr)\n"
    "  4  document (or request) not found\n"
    "  5  the daemon is busy (queue full); retry later\n"
    "  130 interrupted; the running request was canceled\n";

typedef struct cli {
    const char *endpoint;
    bool json, quiet, progress_tty;
    double timeout_s;      /* < 0: default behaviour */
    protocol_options opt;
    const char *server_key, *client_key;
    const char *style;
    uint32_t words;
    bool pages;
    const char **categories;
    size_t n_categories;
    const char **pos;      /* positional arguments: command first */
    size_t n_pos;
    protocol_client *conn;
    unsigned seq;
    bool bar_shown;
} cli;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "smoldoc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(smoldoc --help for usage)\n");
    return EXIT_USAGE;
}

/* Parses a number option; returns 0 or EXIT_USAGE. */
static int num_arg(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "smoldoc: %s: bad value \"%s\" (want %g..%g)\n", opt, s, lo, hi);
        return EXIT_USAGE;
    }
    *out = v;
    return 0;
}

static int parse_args(cli *c, int argc, char **argv) {
    c->pos = calloc((size_t)argc + 1, sizeof *c->pos);
    c->categories = calloc((size_t)argc + 1, sizeof *c->categories);
    if (!c->pos || !c->categories) return EXIT_USAGE;
    bool opts = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts || a[0] != '-' || a[1] == 0) {
            c->pos[c->n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) { opts = false; continue; }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            exit(EXIT_OK);
        }
        if (strcmp(a, "--json") == 0) { c->json = true; continue; }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) { c->quiet = true; continue; }
        if (strcmp(a, "--think") == 0) { c->opt.think = true; continue; }
        if (strcmp(a, "--no-think") == 0) { c->opt.think = false; continue; }
        if (strcmp(a, "--pages") == 0) { c->pages = true; continue; }
        /* options with a value */
        static const char *const with_value[] = {
            "--endpoint", "--timeout", "--max-tokens", "--temp", "--temperature", "--top-p",
            "--top-k", "--seed", "--deadline", "--server-key", "--client-key", "--style",
            "--words", "--category", NULL};
        int k = -1;
        for (int j = 0; with_value[j]; j++)
            if (strcmp(a, with_value[j]) == 0) k = j;
        if (k < 0) return usage_error("unknown option %s", a);
        if (i + 1 >= argc) return usage_error("%s needs a value", a);
        const char *v = argv[++i];
        double d;
        int rc = 0;
        switch (k) {
        case 0: c->endpoint = v; break;
        case 1: rc = num_arg(a, v, 0.001, 1e7, &c->timeout_s); break;
        case 2: if (!(rc = num_arg(a, v, 1, 32768, &d))) c->opt.max_tokens = (int32_t)d; break;
        case 3: case 4: if (!(rc = num_arg(a, v, 0, 2, &d))) c->opt.temperature = (float)d; break;
        case 5: if (!(rc = num_arg(a, v, 1e-6, 1, &d))) c->opt.top_p = (float)d; break;
        case 6: if (!(rc = num_arg(a, v, 0, 1000000, &d))) c->opt.top_k = (int32_t)d; break;
        case 7:
            if (!(rc = num_arg(a, v, 0, 9007199254740991.0, &d))) {
                c->opt.has_seed = true;
                c->opt.seed = strtoull(v, NULL, 10);
            }
            break;
        case 8: if (!(rc = num_arg(a, v, 1, 86400000, &d))) c->opt.deadline_ms = (uint32_t)d; break;
        case 9: c->server_key = v; break;
        case 10: c->client_key = v; break;
        case 11:
            if (strcmp(v, "brief") && strcmp(v, "detailed") && strcmp(v, "bullets"))
                return usage_error("--style must be brief, detailed or bullets, not %s", v);
            c->style = v;
            break;
        case 12: if (!(rc = num_arg(a, v, 0, 10000, &d))) c->words = (uint32_t)d; break;
        case 13: c->categories[c->n_categories++] = v; break;
        }
        if (rc) return rc;
    }
    return 0;
}

/* The endpoint: --endpoint, $SMOLDOC_ENDPOINT, else ipc://DATA/smoldocd.sock. */
static char *default_endpoint(void) {
    const char *e = getenv("SMOLDOC_ENDPOINT");
    if (e && *e) return xstrdup(e);
    const char *data = getenv("SMOLDOC_DATA");
    char buf[4096];
    if (data && *data) snprintf(buf, sizeof buf, "ipc://%s/smoldocd.sock", data);
    else {
        const char *home = getenv("HOME");
        snprintf(buf, sizeof buf, "ipc://%s/.local/share/smoldoc/smoldocd.sock",
                 home && *home ? home : ".");
    }
    return xstrdup(buf);
}

/* ---- progress bar ---- */

static void bar_clear(cli *c) {
    if (c->bar_shown) {
        fputs("\r\033[K", stderr);
        c->bar_shown = false;
    }
}

static void bar_draw(cli *c, const protocol_event *ev) {
    if (!c->progress_tty) return;
    char line[128];
    if (ev->total > 0) {
        int width = 30;
        uint64_t done = ev->done > ev->total ? ev->total : ev->done;
        int fill = (int)((double)done / (double)ev->total * width);
        char bar[31];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '-';
        bar[width] = 0;
        snprintf(line, sizeof line, "%-8.8s [%s] %3d%% %llu/%llu", ev->stage, bar,
                 (int)(100.0 * (double)done / (double)ev->total), (unsigned long long)done,
                 (unsigned long long)ev->total);
    } else {
        snprintf(line, sizeof line, "%-8.8s %llu", ev->stage, (unsigned long long)ev->done);
    }
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    c->bar_shown = true;
}

/* ---- one request ---- */

static int exit_for_code(protocol_code code) {
    switch (code) {
    case PROTOCOL_CODE_NOT_FOUND: return EXIT_NOTFOUND;
    case PROTOCOL_CODE_BUSY: return EXIT_BUSY;
    default: return EXIT_SERVER;
    }
}

/* Sends header (+ an optional file frame), handles events until the final
 * one. Tokens go to stdout when stream_tokens; the result (a new reference)
 * goes to *result. Returns an exit status. */
static int run_request(cli *c, const char *header, const char *id, const void *file,
                       size_t file_len, bool stream_tokens, json_t **result, bool *got_tokens) {
    sd_err e;
    *result = NULL;
    if (got_tokens) *got_tokens = false;
    const void *frames[1] = {file};
    size_t sizes[1] = {file_len};
    int send_to = c->timeout_s > 0 ? (int)(c->timeout_s * 1000) : 30000;
    if (protocol_client_send(c->conn, header, frames, sizes, file ? 1 : 0, send_to, &e) < 0) {
        fprintf(stderr, "smoldoc: cannot send to %s: %s\n", c->endpoint, e.msg);
        return EXIT_CONN;
    }
    bool accepted = false, canceled = false, printed = false, ended_nl = true;
    double last = sd_now(), cancel_at = 0;
    int status = EXIT_OK;
    for (;;) {
        if (interrupted && !canceled) {
            canceled = true;
            cancel_at = sd_now();
            protocol_request cr;
            char cid[PROTOCOL_ID_MAX + 1];
            snprintf(cid, sizeof cid, "%s-cancel", id);
            protocol_request_init(&cr, PROTOCOL_OP_CANCEL, cid);
            snprintf(cr.target, sizeof cr.target, "%s", id);
            char *h = protocol_request_encode(&cr, &e);
            if (h) protocol_client_send(c->conn, h, NULL, NULL, 0, 1000, &e);
            free(h);
            bar_clear(c);
            fprintf(stderr, "smoldoc: interrupted, canceling %s\n", id);
        }
        if (canceled && sd_now() - cancel_at > 5.0) { status = EXIT_INTR; break; }
        double limit = c->timeout_s > 0 ? c->timeout_s : (accepted ? -1 : 30.0);
        if (limit > 0 && sd_now() - last > limit) {
            bar_clear(c);
            fprintf(stderr, "smoldoc: no reply from %s within %g s%s\n", c->endpoint, limit,
                    accepted ? "" : " (is smoldocd running?)");
            status = EXIT_CONN;
            break;
        }
        protocol_event *ev = NULL;
        int rc = protocol_client_recv(c->conn, 200, &ev, &e);
        if (rc == SD_ETIMEOUT) continue;
        if (rc < 0) {
            bar_clear(c);
            fprintf(stderr, "smoldoc: bad reply: %s\n", e.msg);
            if (rc == SD_EIO) { status = EXIT_CONN; break; }
            continue;
        }
        last = sd_now();
        /* Events of other requests (a canceled earlier one, our cancel's reply). */
        if (strcmp(ev->id, id) != 0 && ev->id[0]) {
            protocol_event_free(ev);
            continue;
        }
        switch (ev->kind) {
        case PROTOCOL_EVENT_ACCEPTED: accepted = true; break;
        case PROTOCOL_EVENT_PROGRESS: accepted = true; if (!c->quiet) bar_draw(c, ev); break;
        case PROTOCOL_EVENT_TOKEN:
            accepted = true;
            if (stream_tokens) {
                bar_clear(c);
                size_t n = strlen(ev->text);
                fwrite(ev->text, 1, n, stdout);
                fflush(stdout);
                if (n) ended_nl = ev->text[n - 1] == '\n';
                printed = true;
            }
            break;
        case PROTOCOL_EVENT_RESULT:
            *result = json_incref(ev->result);
            break;
        case PROTOCOL_EVENT_ERROR:
            bar_clear(c);
            if (printed && !ended_nl) { fputc('\n', stdout); ended_nl = true; }
            if (c->json) {
                json_t *j = json_pack("{s:s,s:s,s:s}", "id", id, "error", ev->code_name,
                                      "message", ev->message);
                char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
                if (s) puts(s);
                free(s);
                json_decref(j);
            }
            fprintf(stderr, "smoldoc: %s: %s\n", ev->code_name, ev->message);
            status = (canceled && ev->code == PROTOCOL_CODE_CANCELED) ? EXIT_INTR
                                                                      : exit_for_code(ev->code);
            break;
        default: break;
        }
        bool final = protocol_event_is_final(ev);
        protocol_event_free(ev);
        if (final) break;
    }
    bar_clear(c);
    if (printed && !ended_nl) fputc('\n', stdout);
    if (got_tokens) *got_tokens = printed;
    if (status == EXIT_OK && canceled) status = EXIT_INTR;
    return status;
}

/* ---- output helpers ---- */

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* An integer or a string field as text into buf. */
static const char *jtext(json_t *o, const char *k, char *buf, size_t n) {
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, n, "%g", json_real_value(v));
    else if (json_is_string(v)) snprintf(buf, n, "%s", json_string_value(v));
    else if (json_is_true(v)) snprintf(buf, n, "yes");
    else if (json_is_false(v)) snprintf(buf, n, "no");
    else snprintf(buf, n, "-");
    return buf;
}

static void print_json(json_t *j, size_t flags) {
    char *s = json_dumps(j, flags | JSON_ENCODE_ANY);
    if (s) puts(s);
    free(s);
}

static void print_pages(json_t *res) {
    json_t *pages = json_object_get(res, "pages");
    if (!json_is_array(pages) || json_array_size(pages) == 0) return;
    printf("(pages:");
    size_t i;
    json_t *p;
    json_array_foreach(pages, i, p) if (json_is_integer(p)) printf("%s %lld", i ? "," : "",
                                                                   (long long)json_integer_value(p));
    printf(")\n");
}

static void print_timings(cli *c, json_t *res) {
    json_t *t = json_object_get(res, "timings");
    if (c->quiet || !json_is_object(t)) return;
    char a[32], b[32], d[32], f[32];
    fprintf(stderr, "[prefill %s tokens%s, first token %s ms, %s tokens at %s tok/s]\n",
            jtext(t, "prefill_tokens", a, sizeof a),
            json_is_true(json_object_get(t, "prefix_reused")) ? " (prefix reused)" : "",
            jtext(t, "ttft_ms", b, sizeof b), jtext(t, "decode_tokens", d, sizeof d),
            jtext(t, "decode_tps", f, sizeof f));
}

/* ---- commands ---- */

static char *next_id(cli *c, char *buf, size_t n) {
    snprintf(buf, n, "c%ld-%u", (long)getpid(), ++c->seq);
    return buf;
}

/* Encodes r and runs it; on success *res holds the result. */
static int simple(cli *c, protocol_request *r, const void *file, size_t file_len, bool stream,
                  json_t **res) {
    sd_err e;
    char *h = protocol_request_encode(r, &e);
    if (!h) {
        fprintf(stderr, "smoldoc: %s\n", e.msg);
        return EXIT_USAGE;
    }
    int st = run_request(c, h, r->id, file, file_len, stream, res, NULL);
    free(h);
    return st;
}

static int cmd_ingest(cli *c) {
    if (c->n_pos < 2) return usage_error("%s", "ingest needs at least one FILE");
    int worst = EXIT_OK;
    for (size_t i = 1; i < c->n_pos; i++) {
        const char *path = c->pos[i];
        char *buf = NULL;
        size_t len = 0;
        sd_err e;
        if (sd_read_file(path, (size_t)256 * 1024 * 1024, &buf, &len, &e) < 0) {
            fprintf(stderr, "smoldoc: %s\n", e.msg);
            if (worst == EXIT_OK) worst = EXIT_USAGE;
            continue;
        }
        char id[40];
        protocol_request r;
        protocol_request_init(&r, PROTOCOL_OP_INGEST, next_id(c, id, sizeof id));
        const char *slash = strrchr(path, '/');
        r.name = (char *)(slash ? slash + 1 : path);
        json_t *res = NULL;
        int st = simple(c, &r, buf, len, false, &res);
        free(buf);
        if (st == EXIT_OK) {
            if (c->json) {
                json_object_set_new(res, "file", json_string(path));
                print_json(res, JSON_COMPACT);
            } else {
                char p[32];
                printf("%s\t%s\t%s pages%s\n", jstr(res, "doc"), path,
                       jtext(res, "pages", p, sizeof p),
                       json_is_true(json_object_get(res, "duplicate")) ? "\t(already stored)" : "");
            }
        }
        json_decref(res);
        if (st != EXIT_OK && worst == EXIT_OK) worst = st;
        if (st == EXIT_CONN || st == EXIT_INTR) return st;
    }
    return worst;
}

static int cmd_ls(cli *c) {
    char id[40];
    protocol_request r;
    protocol_request_init(&r, PROTOCOL_OP_LIST, next_id(c, id, sizeof id));
    r.limit = 10000;
    json_t *res = NULL;
    int st = simple(c, &r, NULL, 0, false, &res);
    if (st == EXIT_OK) {
        if (c->json) print_json(res, JSON_COMPACT);
        else {
            json_t *docs = json_object_get(res, "docs");
            size_t i;
            json_t *d;
            printf("%-12s %6s  %-20s  %s\n", "DOC", "PAGES", "ADDED", "NAME");
            json_array_foreach(docs, i, d) {
                char p[32];
                printf("%-12s %6s  %-20s  %s\n", jstr(d, "doc"), jtext(d, "pages", p, sizeof p),
                       jstr(d, "added"), jstr(d, "name"));
            }
        }
    }
    json_decref(res);
    return st;
}

static int cmd_show(cli *c) {
    if (c->n_pos != 2) return usage_error("%s", "show needs one DOC");
    char id[40];
    protocol_request r;
    protocol_request_init(&r, PROTOCOL_OP_GET, next_id(c, id, sizeof id));
    r.doc = (char *)c->pos[1];
    r.pages = c->pages;
    json_t *res = NULL;
    int st = simple(c, &r, NULL, 0, false, &res);
    if (st == EXIT_OK) {
        if (c->json) print_json(res, JSON_COMPACT);
        else {
            char b[64];
            static const char *const keys[] = {"doc", "name", "sha256", "pages", "bytes", "added", NULL};
            for (int k = 0; keys[k]; k++)
                if (json_object_get(res, keys[k]))
                    printf("%-8s %s\n", keys[k], jtext(res, keys[k], b, sizeof b));
            json_t *secs = json_object_get(res, "sections"), *s;
            size_t i;
            if (json_array_size(secs)) printf("sections:\n");
            json_array_foreach(secs, i, s) printf("  p.%-4s %s\n", jtext(s, "page", b, sizeof b),
                                                  jstr(s, "title"));
            json_t *pt = json_object_get(res, "page_text");
            json_array_foreach(pt, i, s) {
                printf("--- page %zu ---\n%s\n", i + 1, json_is_string(s) ? json_string_value(s) : "");
            }
        }
    }
    json_decref(res);
    return st;
}

static int cmd_rm(cli *c) {
    if (c->n_pos != 2) return usage_error("%s", "rm needs one DOC");
    char id[40];
    protocol_request r;
    protocol_request_init(&r, PROTOCOL_OP_DELETE, next_id(c, id, sizeof id));
    r.doc = (char *)c->pos[1];
    json_t *res = NULL;
    int st = simple(c, &r, NULL, 0, false, &res);
    if (st == EXIT_OK) {
        if (c->json) print_json(res, JSON_COMPACT);
        else printf("deleted %s\n", c->pos[1]);
    }
    json_decref(res);
    return st;
}

/* summarize and ask: tokens streamed; the result's text printed only when no
 * token came (a daemon may send the text only in the result). */
static int cmd_generate(cli *c, protocol_op op) {
    char id[40];
    protocol_request r;
    protocol_request_init(&r, op, next_id(c, id, sizeof id));
    if (op == PROTOCOL_OP_ASK) {
        if (c->n_pos != 3) return usage_error("%s", "ask needs DOC and \"QUESTION\"");
        r.question = (char *)c->pos[2];
    } else if (c->n_pos != 2) {
        return usage_error("%s", "summarize needs one DOC");
    }
    r.doc = (char *)c->pos[1];
    r.opt = c->opt;
    if (c->style) r.style = c->style[1] == 'e' ? PROTOCOL_STYLE_DETAILED
                           : c->style[1] == 'u' ? PROTOCOL_STYLE_BULLETS : PROTOCOL_STYLE_BRIEF;
    r.words = c->words;
    json_t *res = NULL;
    sd_err e;
    char *h = protocol_request_encode(&r, &e);
    if (!h) return EXIT_USAGE;
    bool streamed = false;
    int st = run_request(c, h, r.id, NULL, 0, !c->json, &res, &streamed);
    free(h);
    if (st == EXIT_OK) {
        if (c->json) print_json(res, JSON_COMPACT);
        else {
            if (!streamed) {
                const char *t = jstr(res, op == PROTOCOL_OP_ASK ? "answer" : "text");
                if (*t) printf("%s%s", t, t[strlen(t) - 1] == '\n' ? "" : "\n");
            }
            print_pages(res);
            print_timings(c, res);
        }
    }
    json_decref(res);
    return st;
}

static int cmd_clauses(cli *c) {
    if (c->n_pos != 2) return usage_error("%s", "clauses needs one DOC");
    char id[40];
    protocol_request r;
    protocol_request_init(&r, PROTOCOL_OP_EXTRACT, next_id(c, id, sizeof id));
    r.doc = (char *)c->pos[1];
    r.opt = c->opt;
    protocol_category *cats = NULL;
    if (c->n_categories) {
        cats = xcalloc(c->n_categories, sizeof *cats);
        for (size_t i = 0; i < c->n_categories; i++) cats[i].name = (char *)c->categories[i];
        r.categories = cats;
        r.n_categories = c->n_categories;
    }
    json_t *res = NULL;
    int st = simple(c, &r, NULL, 0, false, &res);
    free(cats);
    if (st == EXIT_OK) {
        if (c->json) print_json(res, JSON_COMPACT);
        else {
            json_t *cl = json_object_get(res, "clauses"), *x;
            size_t i, n_found = 0;
            json_array_foreach(cl, i, x) {
                json_t *quotes = json_object_get(x, "quotes"), *q;
                bool found = json_is_true(json_object_get(x, "found")) || json_array_size(quotes);
                printf("%s:%s\n", jstr(x, "category"), found ? "" : " (not found)");
                n_found += found;
                size_t j;
                json_array_foreach(quotes, j, q) {
                    char p[32];
                    printf("  \"%s\" (p. %s)%s\n", jstr(q, "text"), jtext(q, "page", p, sizeof p),
                           json_is_false(json_object_get(q, "verified")) ? " [unverified]" : "");
                }
            }
            if (!c->quiet)
                fprintf(stderr, "%zu of %zu categories found\n", n_found, json_array_size(cl));
            print_timings(c, res);
        }
    }
    json_decref(res);
    return st;
}

static int cmd_plain(cli *c, protocol_op op) {
    if (c->n_pos != (op == PROTOCOL_OP_CANCEL ? 2u : 1u))
        return usage_error("%s", op == PROTOCOL_OP_CANCEL ? "cancel needs one request ID"
                                                           : "this command takes no arguments");
    char id[40];
    protocol_request r;
    protocol_request_init(&r, op, next_id(c, id, sizeof id));
    if (op == PROTOCOL_OP_CANCEL) snprintf(r.target, sizeof r.target, "%s", c->pos[1]);
    double t0 = sd_now();
    json_t *res = NULL;
    int st = simple(c, &r, NULL, 0, false, &res);
    if (st == EXIT_OK) {
        if (c->json) print_json(res, JSON_COMPACT);
        else if (op == PROTOCOL_OP_PING) printf("pong from %s in %.1f ms\n", c->endpoint,
                                                (sd_now() - t0) * 1000.0);
        else print_json(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    }
    json_decref(res);
    return st;
}

static int cmd_keygen(cli *c) {
    if (c->n_pos != 2) return usage_error("%s", "keygen needs an output PREFIX");
    char pub[41], sec[41];
    sd_err e;
    if (protocol_keygen(pub, sec, &e) < 0 || protocol_keyfile_write(c->pos[1], pub, sec, &e) < 0) {
        fprintf(stderr, "smoldoc: %s\n", e.msg);
        return EXIT_USAGE;
    }
    memset(sec, 0, sizeof sec);
    if (c->json) printf("{\"public_key\":\"%s\",\"key_file\":\"%s.key\",\"pub_file\":\"%s.pub\"}\n",
                        pub, c->pos[1], c->pos[1]);
    else printf("wrote %s.key (secret, mode 0600) and %s.pub\npublic key: %s\n", c->pos[1],
                c->pos[1], pub);
    return EXIT_OK;
}

static int connect_daemon(cli *c) {
    char spub[41], cpub[41], csec[41];
    sd_err e;
    protocol_client_params p = protocol_client_params_default();
    p.endpoint = c->endpoint;
    if (c->server_key) {
        if (protocol_keyfile_read(c->server_key, spub, NULL, &e) < 0) {
            fprintf(stderr, "smoldoc: --server-key: %s\n", e.msg);
            return EXIT_USAGE;
        }
        p.server_public_z85 = spub;
    }
    if (c->client_key) {
        if (!c->server_key) return usage_error("%s", "--client-key needs --server-key");
        if (protocol_keyfile_read(c->client_key, cpub, csec, &e) < 0) {
            fprintf(stderr, "smoldoc: --client-key: %s\n", e.msg);
            return EXIT_USAGE;
        }
        p.client_public_z85 = cpub;
        p.client_secret_z85 = csec;
    }
    /* An ipc endpoint whose socket file is missing: say so at once. */
    if (strncmp(c->endpoint, "ipc://", 6) == 0) {
        struct stat st;
        if (stat(c->endpoint + 6, &st) != 0) {
            fprintf(stderr, "smoldoc: cannot connect to %s: %s (is smoldocd running?)\n",
                    c->endpoint, strerror(errno));
            return EXIT_CONN;
        }
    }
    c->conn = protocol_client_new(&p, &e);
    memset(csec, 0, sizeof csec);
    if (!c->conn) {
        fprintf(stderr, "smoldoc: %s\n", e.msg);
        return e.code == SD_EINVAL ? EXIT_USAGE : EXIT_CONN;
    }
    return 0;
}

int main(int argc, char **argv) {
    cli c = {0};
    c.timeout_s = -1;
    c.opt = protocol_options_default();
    int st = parse_args(&c, argc, argv);
    char *ep = NULL;
    if (st) goto done;
    if (c.n_pos == 0) {
        fputs(usage_text, stderr);
        st = EXIT_USAGE;
        goto done;
    }
    const char *cmd = c.pos[0];
    if (strcmp(cmd, "keygen") == 0) {
        st = cmd_keygen(&c);
        goto done;
    }
    static const char *const cmds[] = {"ingest", "ls", "show", "rm", "summarize", "clauses",
                                       "ask", "status", "ping", "cancel", NULL};
    bool known = false;
    for (int i = 0; cmds[i]; i++) known |= strcmp(cmd, cmds[i]) == 0;
    if (!known) {
        st = usage_error("unknown command %s", cmd);
        goto done;
    }
    if (!c.endpoint) c.endpoint = ep = default_endpoint();
    c.progress_tty = isatty(STDERR_FILENO) && !c.json;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    if ((st = connect_daemon(&c))) goto done;
    if (strcmp(cmd, "ingest") == 0) st = cmd_ingest(&c);
    else if (strcmp(cmd, "ls") == 0) st = cmd_ls(&c);
    else if (strcmp(cmd, "show") == 0) st = cmd_show(&c);
    else if (strcmp(cmd, "rm") == 0) st = cmd_rm(&c);
    else if (strcmp(cmd, "summarize") == 0) st = cmd_generate(&c, PROTOCOL_OP_SUMMARIZE);
    else if (strcmp(cmd, "ask") == 0) st = cmd_generate(&c, PROTOCOL_OP_ASK);
    else if (strcmp(cmd, "clauses") == 0) st = cmd_clauses(&c);
    else if (strcmp(cmd, "status") == 0) st = cmd_plain(&c, PROTOCOL_OP_STATUS);
    else if (strcmp(cmd, "ping") == 0) st = cmd_plain(&c, PROTOCOL_OP_PING);
    else st = cmd_plain(&c, PROTOCOL_OP_CANCEL);
done:
    protocol_client_free(c.conn);
    free(ep);
    free(c.pos);
    free(c.categories);
    fflush(stdout);
    return st;
}
