/* loop.c - the event loop thread (see loop.h). */
#include "loop.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "job.h"
#include "log.h"
#include "protocol.h"
#include "protocol_client.h"
#include "cuad.h"
#include "store.h"
#include "tasks.h"
#include "worker.h"

#define MAX_SOCKS 2
#define QMAX_FRAMES 64

typedef struct jqueue { job **v; size_t n, cap; } jqueue;

typedef struct loop {
    const settings *s;
    void *zctx;
    store *st;
    void *router[MAX_SOCKS];
    int n_router;
    void *zap;
    void *ingest_sock, *engine_sock;
    pthread_t ingest_thr, engine_thr;
    bool ingest_started, engine_started;
    worker_args wa_ingest, wa_engine;
    jqueue ingest_q, engine_q;
    job *ingest_run, *engine_run;
    uint8_t (*allowed)[32];
    size_t n_allowed;
    json_t *engine_status;
    char engine_info[512];
    uint64_t serial;
    double t_start;
    bool shutting;
    double t_shutdown;
    protocol_limits lim;
    uint64_t n_requests, n_rejected, n_busy;
    int max_ctx;             /* the engine's context (from its ready message) */
    char model_key[17];      /* short hash of the model folder: keys stored map results */
} loop;

/* ---- queues ---- */
static void q_push(jqueue *q, job *j) {
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = xrealloc(q->v, q->cap * sizeof *q->v);
    }
    q->v[q->n++] = j;
}
static job *q_pop(jqueue *q) {
    if (!q->n) return NULL;
    job *j = q->v[0];
    memmove(q->v, q->v + 1, --q->n * sizeof *q->v);
    return j;
}
static void q_remove(jqueue *q, size_t i) { memmove(q->v + i, q->v + i + 1, (--q->n - i) * sizeof *q->v); }

static void job_free(job *j) {
    if (!j) return;
    protocol_request_free(j->req);
    free(j->data);
    ingest_doc_free(j->doc);
    free(j->doc_name);
    free(j->text);
    free(j->page_start);
    free(j->sec_start);
    free(j->score);
    json_decref(j->map_cache);
    json_decref(j->map_new);
    json_decref(j->result);
    free(j);
}

/* ---- replies ---- */
static void send_to(loop *L, int sock, const uint8_t *ident, size_t ident_len, char *ev) {
    if (!ev) return;
    void *r = L->router[sock];
    if (zmq_send(r, ident, ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(r, ev, strlen(ev), ZMQ_DONTWAIT);
    free(ev);
}
static void send_job(loop *L, job *j, char *ev) { send_to(L, j->sock, j->ident, j->ident_len, ev); }
static void send_error(loop *L, job *j, protocol_code code, const char *msg) {
    send_job(L, j, protocol_event_error(j->req->id, protocol_code_name(code), msg));
}

/* ---- document lookup ---- */
static int resolve_doc(loop *L, const char *ref, int64_t *id, sd_err *err) {
    char *end;
    long long x = strtoll(ref, &end, 10);
    if (*ref && !*end && x > 0) {
        store_doc_info info = {0};
        int rc = store_get_document(L->st, x, &info, err);
        store_doc_info_clear(&info);
        if (rc == 0) { *id = x; return 0; }
        if (rc != SD_ENOTFOUND) return rc;
    }
    size_t n = strlen(ref);
    if (n >= 8 && n <= 64 && strspn(ref, "0123456789abcdefABCDEF") == n) {
        store_doc_info *docs = NULL;
        int nd = 0, rc = store_list_documents(L->st, &docs, &nd, err);
        if (rc) return rc;
        int found = 0;
        for (int i = 0; i < nd; i++)
            if (!strncasecmp(docs[i].sha256, ref, n)) { *id = docs[i].id; found++; }
        store_doc_info_free_array(docs, nd);
        if (found == 1) return 0;
        if (found > 1) return sd_seterr(err, SD_ENOTFOUND, "document prefix '%s' is ambiguous", ref);
    }
    return sd_seterr(err, SD_ENOTFOUND, "no document '%s'", ref);
}

static void iso_time(double t, char *out, size_t n) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *doc_obj(const store_doc_info *d) {
    char added[32], id[32];
    iso_time(d->created_at, added, sizeof added);
    snprintf(id, sizeof id, "%lld", (long long)d->id);
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:i}", "doc", id, "name", d->name ? d->name : "",
                     "sha256", d->sha256, "pages", d->pages, "bytes", (json_int_t)d->bytes, "added", added, "type",
                     d->type ? d->type : "", "sections", d->sections);
}

/* ---- ops answered by the loop ---- */
static void op_status(loop *L, job *j) {
    store_doc_info *docs = NULL;
    int nd = 0;
    sd_err err;
    store_list_documents(L->st, &docs, &nd, &err);
    store_doc_info_free_array(docs, nd);
    json_t *r = json_pack("{s:i, s:s, s:s, s:{s:I, s:I, s:I, s:b, s:b}, s:i, s:f, s:I}",
                          "version", PROTOCOL_VERSION, "server", "smoldocd 0.1", "model", L->s->model, "queue",
                          "depth", (json_int_t)(L->engine_q.n + L->ingest_q.n), "engine_waiting",
                          (json_int_t)L->engine_q.n, "max", (json_int_t)L->s->queue_max, "engine_busy",
                          L->engine_run != NULL, "ingest_busy", L->ingest_run != NULL, "documents", nd,
                          "uptime_s", sd_now() - L->t_start, "requests", (json_int_t)L->n_requests);
    if (L->engine_status) {
        const char *k;
        json_t *v;
        json_object_foreach(L->engine_status, k, v) json_object_set(r, k, v);
    }
    send_job(L, j, protocol_event_result(j->req->id, r));
    json_decref(r);
}

static void op_list(loop *L, job *j) {
    store_doc_info *docs = NULL;
    int nd = 0;
    sd_err err = {0};
    int rc = store_list_documents(L->st, &docs, &nd, &err);
    if (rc) { send_error(L, j, PROTOCOL_CODE_INTERNAL, err.msg); return; }
    json_t *arr = json_array();
    for (int i = (int)j->req->offset; i < nd && (uint32_t)(i - (int)j->req->offset) < j->req->limit; i++)
        json_array_append_new(arr, doc_obj(&docs[i]));
    store_doc_info_free_array(docs, nd);
    json_t *r = json_pack("{s:o, s:i}", "docs", arr, "total", nd);
    send_job(L, j, protocol_event_result(j->req->id, r));
    json_decref(r);
}

static void op_get(loop *L, job *j) {
    sd_err err = {0};
    int64_t id;
    store_doc_info info = {0};
    int rc = resolve_doc(L, j->req->doc, &id, &err);
    if (!rc) rc = store_get_document(L->st, id, &info, &err);
    if (rc) { send_error(L, j, protocol_code_from_sd(rc), err.msg); return; }
    json_t *r = doc_obj(&info);
    json_object_set_new(r, "language", json_string(info.language ? info.language : ""));
    if (info.title) json_object_set_new(r, "title", json_string(info.title));
    if (info.quality_json) {
        json_t *q = json_loads(info.quality_json, 0, NULL);
        if (q) json_object_set_new(r, "quality", q);
    }
    store_doc_info_clear(&info);
    if (j->req->sections) {
        store_section *sec = NULL;
        int ns = 0;
        char *text = NULL;
        size_t tlen = 0;
        if (store_get_sections(L->st, id, &sec, &ns, &err) == 0 &&
            store_get_text(L->st, id, &text, &tlen, NULL, NULL, &err) == 0) {
            /* the store keeps byte spans; the protocol speaks code points */
            size_t *off = xmalloc(((size_t)ns * 2 + 1) * sizeof *off);
            for (int i = 0; i < ns; i++) {
                off[2 * i] = (size_t)sec[i].start;
                off[2 * i + 1] = (size_t)sec[i].end;
            }
            tasks_char_offsets(text, tlen, off, (size_t)ns * 2);
            for (int i = 0; i < ns; i++) {
                sec[i].start = (int64_t)off[2 * i];
                sec[i].end = (int64_t)off[2 * i + 1];
            }
            free(off);
            json_t *a = json_array();
            for (int i = 0; i < ns; i++)
                json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:i, s:I, s:I}", "number",
                                                   sec[i].number ? sec[i].number : "", "title",
                                                   sec[i].title ? sec[i].title : "", "level", sec[i].level, "page",
                                                   sec[i].page_start, "start", (json_int_t)sec[i].start, "end",
                                                   (json_int_t)sec[i].end));
            json_object_set_new(r, "sections", a);
        }
        store_sections_free(sec, ns);
        free(text);
    }
    if (j->req->pages) {
        store_page *pg = NULL;
        int np = 0;
        if (store_get_pages(L->st, id, &pg, &np, &err) == 0) {
            json_t *a = json_array();
            for (int i = 0; i < np; i++) json_array_append_new(a, json_string(pg[i].text ? pg[i].text : ""));
            json_object_set_new(r, "page_text", a);
            store_pages_free(pg, np);
        }
    }
    send_job(L, j, protocol_event_result(j->req->id, r));
    json_decref(r);
}

static void op_delete(loop *L, job *j) {
    sd_err err = {0};
    int64_t id;
    int rc = resolve_doc(L, j->req->doc, &id, &err);
    if (!rc) rc = store_delete_document(L->st, id, &err);
    if (rc) { send_error(L, j, protocol_code_from_sd(rc), err.msg); return; }
    job *c = xcalloc(1, sizeof *c);
    c->kind = JOB_DROP_DOC;
    c->doc_id = id;
    uintptr_t p = (uintptr_t)c;
    if (zmq_send(L->engine_sock, &p, sizeof p, 0) < 0) free(c);
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    json_t *r = json_pack("{s:s, s:b}", "doc", ids, "deleted", 1);
    send_job(L, j, protocol_event_result(j->req->id, r));
    json_decref(r);
    LOG(LOG_INFO, "deleted document %lld", (long long)id);
}

/* Finds a queued or running job by request id, same client first. */
static job *find_job(loop *L, const char *id, const job *from, jqueue **q, size_t *qi) {
    for (int pass = 0; pass < 2; pass++) {
        job *cands[2] = {L->engine_run, L->ingest_run};
        jqueue *qs[2] = {&L->engine_q, &L->ingest_q};
        for (int k = 0; k < 2; k++) {
            job *c = cands[k];
            if (c && !strcmp(c->req->id, id) &&
                (pass || (c->ident_len == from->ident_len && !memcmp(c->ident, from->ident, c->ident_len)))) {
                *q = NULL;
                return c;
            }
            for (size_t i = 0; i < qs[k]->n; i++) {
                c = qs[k]->v[i];
                if (!strcmp(c->req->id, id) &&
                    (pass || (c->ident_len == from->ident_len && !memcmp(c->ident, from->ident, c->ident_len)))) {
                    *q = qs[k];
                    *qi = i;
                    return c;
                }
            }
        }
    }
    return NULL;
}

static void op_cancel(loop *L, job *j) {
    jqueue *q = NULL;
    size_t qi = 0;
    job *t = find_job(L, j->req->target, j, &q, &qi);
    bool ok = false;
    if (t && q) {
        q_remove(q, qi);
        send_error(L, t, PROTOCOL_CODE_CANCELED, "canceled while queued");
        job_free(t);
        ok = true;
    } else if (t && !atomic_load(&t->cancel)) {
        atomic_store(&t->cancel, JOB_CANCELED);
        ok = true;
    }
    LOG(LOG_INFO, "cancel %s -> %s", j->req->target, ok ? "yes" : "no");
    json_t *r = json_pack("{s:s, s:b}", "target", j->req->target, "canceled", ok);
    send_job(L, j, protocol_event_result(j->req->id, r));
    json_decref(r);
}

/* ---- dispatch to workers ---- */
static void dispatch(loop *L) {
    if (!L->ingest_run && L->ingest_q.n) {
        job *j = q_pop(&L->ingest_q);
        uintptr_t p = (uintptr_t)j;
        L->ingest_run = j;
        zmq_send(L->ingest_sock, &p, sizeof p, 0);
    }
    if (!L->engine_run && L->engine_q.n) {
        job *j = q_pop(&L->engine_q);
        uintptr_t p = (uintptr_t)j;
        L->engine_run = j;
        zmq_send(L->engine_sock, &p, sizeof p, 0);
        for (size_t i = 0; i < L->engine_q.n; i++)
            send_job(L, L->engine_q.v[i], protocol_event_progress(L->engine_q.v[i]->req->id, "queued", i + 1,
                                                                  L->engine_q.n));
    }
}

static void enqueue(loop *L, jqueue *q, bool busy_worker, job *j) {
    if (q->n >= (size_t)L->s->queue_max || (busy_worker && q->n >= (size_t)L->s->queue_max)) {
        L->n_busy++;
        send_error(L, j, PROTOCOL_CODE_BUSY, "the queue is full; retry later");
        job_free(j);
        return;
    }
    send_job(L, j, protocol_event_accepted(j->req->id));
    if (busy_worker) send_job(L, j, protocol_event_progress(j->req->id, "queued", q->n + 1, q->n + 1));
    q_push(q, j);
    dispatch(L);
}

static void op_ingest(loop *L, job *j, zmq_msg_t *file) {
    const protocol_request *r = j->req;
    if (r->path && !L->s->allow_path_ingest) {
        send_error(L, j, PROTOCOL_CODE_FORBIDDEN, "ingest by path is not allowed (--allow-path-ingest)");
        job_free(j);
        return;
    }
    if (!r->path) {
        if (!file) { send_error(L, j, PROTOCOL_CODE_BAD_REQUEST, "ingest needs a file frame or a path"); job_free(j); return; }
        j->len = zmq_msg_size(file);
        j->data = malloc(j->len ? j->len : 1);
        if (!j->data) { send_error(L, j, PROTOCOL_CODE_INTERNAL, "out of memory"); job_free(j); return; }
        memcpy(j->data, zmq_msg_data(file), j->len);
        uint8_t sha[32];
        int64_t id;
        sd_err err;
        if (store_sha256(j->data, j->len, sha, NULL) == 0 && store_find_by_sha(L->st, sha, &id, &err) == 0) {
            store_doc_info info = {0};
            if (store_get_document(L->st, id, &info, &err) == 0) {
                json_t *res = doc_obj(&info);
                json_object_set_new(res, "duplicate", json_true());
                json_t *q = info.quality_json ? json_loads(info.quality_json, 0, NULL) : NULL;
                json_t *qc = json_object_get(q, "chars");
                json_object_set_new(res, "chars", qc ? json_incref(qc) : json_integer(info.text_bytes));
                json_decref(q);
                send_job(L, j, protocol_event_result(r->id, res));
                json_decref(res);
                store_doc_info_clear(&info);
                job_free(j);
                return;
            }
        }
    }
    j->ingest_timeout_s = L->s->ingest_timeout_s;
    enqueue(L, &L->ingest_q, L->ingest_run != NULL, j);
}

/* ---- what the engine needs besides the text: sections, relevance, stored map results ---- */

/* Words of a query worth searching: lower-case ASCII letters and digits (bytes
 * over 0x7F kept), at least 3 long, not a stop word, each once. */
#define QW_MAX 12
#define QW_LEN 48
static int query_words(const char *q, char (*out)[QW_LEN], int max) {
    static const char *const stop[] = {
        "the", "and", "for", "are", "was", "were", "this", "that", "with", "from", "which", "what", "when",
        "where", "who", "whom", "how", "does", "did", "has", "have", "had", "any", "all", "not", "but", "its",
        "his", "her", "their", "they", "them", "such", "shall", "will", "may", "can", "into", "upon", "than",
        "then", "there", "these", "those", "other", "about", "under", "each", "between", "also", "should",
        "would", "could", "must", "document", "clause", "whether", "being", "been", "one", "our", "you", "your"};
    int n = 0;
    for (const char *p = q; *p && n < max;) {
        while (*p && (unsigned char)*p < 0x80 && !isalnum((unsigned char)*p)) p++;
        char w[QW_LEN];
        size_t k = 0;
        while (*p && ((unsigned char)*p >= 0x80 || isalnum((unsigned char)*p))) {
            if (k + 1 < sizeof w) w[k++] = (char)tolower((unsigned char)*p);
            p++;
        }
        w[k] = 0;
        if (k < 3) continue;
        bool skip = false;
        for (size_t i = 0; i < sizeof stop / sizeof stop[0] && !skip; i++) skip = !strcmp(w, stop[i]);
        for (int i = 0; i < n && !skip; i++) skip = !strcmp(out[i], w);
        if (!skip) memcpy(out[n++], w, k + 1);
    }
    return n;
}

/* Page relevance of one word in a document: each full-text hit adds its bm25
 * weight (a section title hit twice) to its page. A malloc'd (n_pages) array,
 * memoised in *memo for the request. */
typedef struct word_memo { char word[QW_LEN]; double *score; } word_memo;
static const double *word_scores(loop *L, int64_t doc, int n_pages, const char *word, word_memo **memo,
                                 size_t *n_memo) {
    for (size_t i = 0; i < *n_memo; i++)
        if (!strcmp((*memo)[i].word, word)) return (*memo)[i].score;
    double *sc = xcalloc((size_t)n_pages, sizeof *sc);
    store_hit *h = NULL;
    int nh = 0;
    sd_err err = {0};
    if (store_search(L->st, word, doc, 4 * n_pages + 64, &h, &nh, &err) == 0) {
        for (int k = 0; k < nh; k++) {
            if (h[k].page < 1 || h[k].page > n_pages) continue;
            double v = h[k].rank < 0 ? -h[k].rank : 0.01;
            sc[h[k].page - 1] += h[k].section_id ? 2 * v : v;
        }
    }
    store_hits_free(h, nh);
    *memo = xrealloc(*memo, (*n_memo + 1) * sizeof **memo);
    size_t wl = strnlen(word, QW_LEN - 1);
    memcpy((*memo)[*n_memo].word, word, wl);
    (*memo)[*n_memo].word[wl] = 0;
    (*memo)[(*n_memo)++].score = sc;
    return sc;
}

/* Relevance rows for the engine when the document may not fit the context:
 * ask, one row for the question; extract, one per category (name and
 * description). Pages with no hits score 0; the engine then reads the first
 * window. */
static void load_scores(loop *L, job *j) {
    const protocol_request *r = j->req;
    if (j->n_pages <= 0 || (L->max_ctx > 0 && j->text_len <= (size_t)L->max_ctx / 2)) return;
    size_t rows = r->op == PROTOCOL_OP_ASK ? 1 : r->n_categories ? r->n_categories : CUAD_N_CATEGORIES;
    j->score = xcalloc(rows * (size_t)j->n_pages, sizeof *j->score);
    j->n_score = (int)rows;
    word_memo *memo = NULL;
    size_t n_memo = 0;
    for (size_t i = 0; i < rows; i++) {
        char q[2048];
        if (r->op == PROTOCOL_OP_ASK) {
            snprintf(q, sizeof q, "%s", r->question ? r->question : "");
        } else if (r->n_categories) {
            const char *desc = r->categories[i].description;
            const cuad_category *c = cuad_find(r->categories[i].name);
            if ((!desc || !*desc) && c) desc = c->description;
            snprintf(q, sizeof q, "%s %s", r->categories[i].name, desc ? desc : "");
        } else {
            snprintf(q, sizeof q, "%s %s", cuad_categories()[i].name, cuad_categories()[i].description);
        }
        char words[QW_MAX][QW_LEN];
        int nw = query_words(q, words, QW_MAX);
        double *row = j->score + i * (size_t)j->n_pages;
        for (int k = 0; k < nw; k++) {
            const double *ws = word_scores(L, j->doc_id, j->n_pages, words[k], &memo, &n_memo);
            for (int p = 0; p < j->n_pages; p++) row[p] += ws[p];
        }
    }
    for (size_t i = 0; i < n_memo; i++) free(memo[i].score);
    free(memo);
}

/* Section starts (bytes, ascending) for window alignment. */
static void load_sections(loop *L, job *j) {
    store_section *sec = NULL;
    int ns = 0;
    sd_err err = {0};
    if (store_get_sections(L->st, j->doc_id, &sec, &ns, &err) || ns <= 0) { store_sections_free(sec, ns); return; }
    j->sec_start = xmalloc((size_t)ns * sizeof *j->sec_start);
    for (int i = 0; i < ns; i++) j->sec_start[i] = sec[i].start;
    j->n_sec = ns;
    store_sections_free(sec, ns);
    for (int i = 1; i < ns; i++) /* in document order already; keep it sorted regardless */
        for (int k = i; k > 0 && j->sec_start[k - 1] > j->sec_start[k]; k--) {
            int64_t t = j->sec_start[k];
            j->sec_start[k] = j->sec_start[k - 1];
            j->sec_start[k - 1] = t;
        }
}

/* Stored map results of summarize are found through a cache entry
 * "map/DOC/THINK/MODEL" (tier "result") whose path names the results row
 * ("result:ID") holding {"parts": [{start, end, tokens, think, text}]}; the
 * entry goes with the document when it is deleted. */
static void map_fingerprint(const loop *L, int64_t doc, bool think, char *fp, size_t n) {
    snprintf(fp, n, "map/%lld/%d/%s", (long long)doc, think ? 1 : 0, L->model_key);
}

static json_t *map_cache_load(loop *L, int64_t doc, bool think) {
    char fp[129];
    map_fingerprint(L, doc, think, fp, sizeof fp);
    store_cache_entry ce = {0};
    sd_err err = {0};
    long long rid = 0;
    if (store_get_cache_entry(L->st, fp, &ce, &err) || sscanf(ce.path, "result:%lld", &rid) != 1) return NULL;
    store_result r = {0};
    if (store_get_result(L->st, rid, &r, &err)) return NULL;
    json_t *o = r.result_json ? json_loads(r.result_json, 0, NULL) : NULL;
    store_result_clear(&r);
    json_t *parts = json_object_get(o, "parts");
    if (json_is_array(parts)) json_incref(parts);
    else parts = NULL;
    json_decref(o);
    return parts;
}

static bool same_part(json_t *a, json_t *b) {
    static const char *const k[] = {"start", "end", "tokens"};
    for (int i = 0; i < 3; i++)
        if (json_integer_value(json_object_get(a, k[i])) != json_integer_value(json_object_get(b, k[i]))) return false;
    return true;
}

/* Stores the map results a summarize computed (also when it failed later),
 * merged with those stored before. */
static void map_cache_save(loop *L, job *j) {
    if (!j->map_new || !json_array_size(j->map_new)) return;
    json_t *all = json_array();
    size_t i, k;
    json_t *p, *q;
    json_array_foreach(j->map_cache, i, p) {
        bool replaced = false;
        json_array_foreach(j->map_new, k, q) replaced |= same_part(p, q);
        if (!replaced) json_array_append(all, p);
    }
    json_array_foreach(j->map_new, k, q) json_array_append(all, q);
    size_t n = json_array_size(all);
    json_t *res = json_pack("{s:o}", "parts", all);
    char *rj = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    char fp[129], params[256];
    map_fingerprint(L, j->doc_id, j->req->opt.think, fp, sizeof fp);
    snprintf(params, sizeof params, "{\"fingerprint\":\"%s\"}", fp);
    sd_err err = {0};
    int64_t rid = 0;
    int rc = rj ? store_put_result(L->st, "summarize_map", j->doc_id, params, rj, "{}", 0, &rid, &err) : SD_ENOMEM;
    if (!rc) {
        store_cache_entry ce = {0};
        snprintf(ce.fingerprint, sizeof ce.fingerprint, "%s", fp);
        ce.doc_id = j->doc_id;
        snprintf(ce.tier, sizeof ce.tier, "result");
        snprintf(ce.path, sizeof ce.path, "result:%lld", (long long)rid);
        ce.bytes = (int64_t)strlen(rj);
        ce.n_tokens = (int64_t)n;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ce.last_used = (double)ts.tv_sec;
        rc = store_put_cache_entry(L->st, &ce, &err);
    }
    if (rc) LOG(LOG_WARN, "could not store the map results of %s: %s", j->req->id, err.msg);
    else LOG(LOG_DEBUG, "stored %zu map results of doc %lld", n, (long long)j->doc_id);
    free(rj);
}

static void op_engine(loop *L, job *j) {
    sd_err err = {0};
    int64_t id;
    store_doc_info info = {0};
    int rc = resolve_doc(L, j->req->doc, &id, &err);
    if (!rc) rc = store_get_document(L->st, id, &info, &err);
    if (!rc) rc = store_get_text(L->st, id, &j->text, &j->text_len, &j->page_start, &j->n_pages, &err);
    if (rc) {
        send_error(L, j, protocol_code_from_sd(rc), err.msg);
        store_doc_info_clear(&info);
        job_free(j);
        return;
    }
    j->doc_id = id;
    j->doc_name = xstrdup(info.name ? info.name : "");
    j->created_at = info.created_at;
    store_doc_info_clear(&info);
    load_sections(L, j);
    if (j->req->op == PROTOCOL_OP_SUMMARIZE) j->map_cache = map_cache_load(L, id, j->req->opt.think);
    else load_scores(L, j);
    const protocol_options *o = &j->req->opt;
    int def = j->req->op == PROTOCOL_OP_ASK ? (int)L->s->ask_max_tokens
            : j->req->op == PROTOCOL_OP_SUMMARIZE ? (int)L->s->summarize_max_tokens : (int)L->s->extract_max_tokens;
    j->max_tokens = o->max_tokens > 0 ? o->max_tokens : def;
    j->summary_window = (int)L->s->summary_window_tokens;
    j->verify_prompts = L->s->verify_prompts;
    if (o->deadline_ms) j->deadline = j->t_recv + o->deadline_ms / 1e3;
    enqueue(L, &L->engine_q, L->engine_run != NULL, j);
}

/* ---- one request from a ROUTER ---- */
static void on_request(loop *L, int sock) {
    void *r = L->router[sock];
    zmq_msg_t parts[3];
    size_t sizes[QMAX_FRAMES], n = 0, kept = 0;
    uint8_t ident[256];
    size_t ident_len = 0;
    int more = 1, first = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, r, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); break; }
        more = zmq_msg_more(&m);
        if (first) {
            ident_len = zmq_msg_size(&m) < sizeof ident ? zmq_msg_size(&m) : sizeof ident;
            memcpy(ident, zmq_msg_data(&m), ident_len);
            zmq_msg_close(&m);
            first = 0;
            continue;
        }
        if (n < QMAX_FRAMES) sizes[n] = zmq_msg_size(&m);
        n++;
        if (kept < 3) parts[kept++] = m;
        else zmq_msg_close(&m);
    }
    if (first) return;
    L->n_requests++;
    protocol_error pe = {0};
    protocol_request *req = NULL;
    size_t nchk = n < QMAX_FRAMES ? n : QMAX_FRAMES;
    int rc = protocol_check_frames(sizes, n > QMAX_FRAMES ? QMAX_FRAMES : nchk, &L->lim, &pe);
    if (!rc && n > QMAX_FRAMES) rc = SD_EPROTO, pe.code = PROTOCOL_CODE_TOO_MANY_FRAMES;
    if (!rc) rc = protocol_decode_request(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), n - 1, &L->lim, &req, &pe);
    if (rc) {
        L->n_rejected++;
        if (!pe.code) pe.code = PROTOCOL_CODE_BAD_REQUEST;
        LOG(LOG_DEBUG, "rejected a request: %s", pe.err.msg);
        send_to(L, sock, ident, ident_len, protocol_event_reject(&pe));
        goto out;
    }
    job *j = xcalloc(1, sizeof *j);
    j->serial = ++L->serial;
    j->sock = sock;
    memcpy(j->ident, ident, ident_len);
    j->ident_len = ident_len;
    j->req = req;
    j->t_recv = sd_now();
    LOG(LOG_DEBUG, "request %s op %s", req->id, protocol_op_name(req->op));
    if (req->op == PROTOCOL_OP_PING) {
        json_t *res = json_pack("{s:b, s:i}", "pong", 1, "version", PROTOCOL_VERSION);
        send_job(L, j, protocol_event_result(req->id, res));
        json_decref(res);
        job_free(j);
        goto out;
    }
    if (L->shutting) {
        send_error(L, j, PROTOCOL_CODE_SHUTTING_DOWN, "the daemon is stopping");
        job_free(j);
        goto out;
    }
    switch (req->op) {
    case PROTOCOL_OP_STATUS: op_status(L, j); job_free(j); break;
    case PROTOCOL_OP_LIST: op_list(L, j); job_free(j); break;
    case PROTOCOL_OP_GET: op_get(L, j); job_free(j); break;
    case PROTOCOL_OP_DELETE: op_delete(L, j); job_free(j); break;
    case PROTOCOL_OP_CANCEL: op_cancel(L, j); job_free(j); break;
    case PROTOCOL_OP_INGEST: op_ingest(L, j, kept > 1 ? &parts[1] : NULL); break;
    case PROTOCOL_OP_SUMMARIZE:
    case PROTOCOL_OP_EXTRACT:
    case PROTOCOL_OP_ASK: op_engine(L, j); break;
    default: send_error(L, j, PROTOCOL_CODE_UNKNOWN_OP, "unknown op"); job_free(j); break;
    }
out:
    for (size_t i = 0; i < kept; i++) zmq_msg_close(&parts[i]);
}

/* ---- worker messages ---- */
static void ingest_done(loop *L, job *j) {
    if (j->rc) {
        send_error(L, j, j->code ? j->code : PROTOCOL_CODE_BAD_DOCUMENT, j->msg);
        return;
    }
    sd_err err = {0};
    int64_t id = 0;
    int existed = 0;
    int rc = store_put_document(L->st, j->doc, j->sha, &id, &existed, &err);
    if (rc) {
        send_error(L, j, protocol_code_from_sd(rc), err.msg);
        return;
    }
    store_doc_info info = {0};
    if (store_get_document(L->st, id, &info, &err)) { send_error(L, j, PROTOCOL_CODE_INTERNAL, err.msg); return; }
    json_t *res = doc_obj(&info);
    json_object_set_new(res, "duplicate", json_boolean(existed));
    json_object_set_new(res, "chars", json_integer((json_int_t)j->doc->quality.chars));
    json_object_set_new(res, "sections", json_integer(j->doc->n_sections));
    json_object_set_new(res, "warnings", json_integer(j->doc->n_warnings));
    send_job(L, j, protocol_event_result(j->req->id, res));
    json_decref(res);
    LOG(LOG_INFO, "ingested %s as document %lld (%d pages)%s", info.name ? info.name : "?", (long long)id,
        info.pages, existed ? " (duplicate)" : "");
    store_doc_info_clear(&info);
}

static void engine_done(loop *L, job *j) {
    map_cache_save(L, j);
    if (j->rc) {
        LOG(LOG_INFO, "%s %s ended: %s (%s)", protocol_op_name(j->req->op), j->req->id,
            protocol_code_name(j->code), j->msg);
        send_error(L, j, j->code ? j->code : PROTOCOL_CODE_INTERNAL, j->msg);
        return;
    }
    sd_err err = {0};
    char *params = protocol_request_encode(j->req, &err);
    json_t *t = json_object_get(j->result, "timings");
    char *tj = t ? json_dumps(t, JSON_COMPACT) : NULL;
    char *rj = json_dumps(j->result, JSON_COMPACT);
    int64_t rid = 0;
    double wall = (sd_now() - j->t_recv) * 1e3;
    if (store_put_result(L->st, protocol_op_name(j->req->op), j->doc_id, params ? params : "{}", rj ? rj : "{}",
                         tj ? tj : "{}", wall, &rid, &err))
        LOG(LOG_WARN, "could not store the result of %s: %s", j->req->id, err.msg);
    else
        json_object_set_new(j->result, "result_id", json_integer(rid));
    free(params);
    free(tj);
    free(rj);
    send_job(L, j, protocol_event_result(j->req->id, j->result));
    LOG(LOG_INFO, "%s %s done in %.0f ms (prefill %lld tokens, decode %lld tokens)", protocol_op_name(j->req->op),
        j->req->id, wall, (long long)json_integer_value(json_object_get(t, "prefill_tokens")),
        (long long)json_integer_value(json_object_get(t, "decode_tokens")));
}

/* Reads one message from a worker socket. Returns the kind, or 0. */
static char worker_recv(void *sock, job **jp, char **payload) {
    uintptr_t p = 0;
    zmq_msg_t m;
    *jp = NULL;
    *payload = NULL;
    if (zmq_recv(sock, &p, sizeof p, ZMQ_DONTWAIT) != (int)sizeof p) return 0;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 1) { zmq_msg_close(&m); return 0; }
    char kind = *(char *)zmq_msg_data(&m);
    size_t n = zmq_msg_size(&m) - 1;
    *payload = xmalloc(n + 1);
    memcpy(*payload, (char *)zmq_msg_data(&m) + 1, n);
    (*payload)[n] = 0;
    zmq_msg_close(&m);
    *jp = (job *)p;
    return kind;
}

static void on_worker(loop *L, bool engine_side) {
    job *j;
    char *pl;
    char kind;
    void *sock = engine_side ? L->engine_sock : L->ingest_sock;
    while ((kind = worker_recv(sock, &j, &pl))) {
        if (kind == 'E' && j) {
            char *ev = pl;
            pl = NULL;
            send_job(L, j, ev);
        } else if (kind == 'D' && j) {
            if (engine_side) { engine_done(L, j); L->engine_run = NULL; }
            else { ingest_done(L, j); L->ingest_run = NULL; }
            job_free(j);
            dispatch(L);
        } else if (kind == 'S') {
            json_t *s = json_loads(pl, 0, NULL);
            if (s) { json_decref(L->engine_status); L->engine_status = s; }
        } else if (kind == 'R') {
            if (engine_side) snprintf(L->engine_info, sizeof L->engine_info, "%s", pl);
        } else if (kind == 'F') {
            snprintf(L->engine_info, sizeof L->engine_info, "F%s", pl);
        }
        free(pl);
    }
}

/* ---- ZAP (RFC 27): CURVE clients must hold an allowed key ---- */
static void on_zap(loop *L) {
    zmq_msg_t f[8];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, L->zap, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); break; }
        more = zmq_msg_more(&m);
        if (n < 8) f[n++] = m;
        else zmq_msg_close(&m);
    }
    if (n < 6) { for (int i = 0; i < n; i++) zmq_msg_close(&f[i]); return; }
    const char *status = "400", *text = "not allowed";
    size_t ml = zmq_msg_size(&f[5]);
    const char *mech = zmq_msg_data(&f[5]);
    if (ml == 4 && !memcmp(mech, "NULL", 4)) {
        status = "200", text = "OK"; /* plaintext sockets are plaintext by configuration */
    } else if (ml == 5 && !memcmp(mech, "CURVE", 5) && n >= 7 && zmq_msg_size(&f[6]) == 32) {
        for (size_t i = 0; i < L->n_allowed; i++)
            if (!memcmp(L->allowed[i], zmq_msg_data(&f[6]), 32)) { status = "200", text = "OK"; break; }
        if (*status != '2') LOG(LOG_WARN, "refused a CurveZMQ client whose key is not allowed");
    }
    zmq_send(L->zap, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), ZMQ_SNDMORE); /* version */
    zmq_send(L->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE); /* request id */
    zmq_send(L->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(L->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(L->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(L->zap, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

/* Ends queued jobs whose deadline passed (running ones are checked by the worker). */
static void check_deadlines(loop *L) {
    double now = sd_now();
    jqueue *qs[2] = {&L->engine_q, &L->ingest_q};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < qs[k]->n;) {
            job *j = qs[k]->v[i];
            if (j->deadline > 0 && now > j->deadline) {
                q_remove(qs[k], i);
                send_error(L, j, PROTOCOL_CODE_DEADLINE, "deadline passed while queued");
                job_free(j);
            } else {
                i++;
            }
        }
}

static void fail_queued(loop *L) {
    jqueue *qs[2] = {&L->engine_q, &L->ingest_q};
    for (int k = 0; k < 2; k++) {
        job *j;
        while ((j = q_pop(qs[k]))) {
            send_error(L, j, PROTOCOL_CODE_SHUTTING_DOWN, "the daemon is stopping");
            job_free(j);
        }
    }
}

/* ---- start-up ---- */
static int wait_ready(loop *L, void *sock, bool engine_side, double limit_s, sd_err *err) {
    double t0 = sd_now();
    while (sd_now() - t0 < limit_s) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) > 0) {
            job *j;
            char *pl;
            char kind = worker_recv(sock, &j, &pl);
            if (kind == 'R') {
                if (engine_side) snprintf(L->engine_info, sizeof L->engine_info, "%s", pl);
                free(pl);
                return 0;
            }
            if (kind == 'F') {
                sd_seterr(err, SD_EINVAL, "%s", pl);
                free(pl);
                return -1;
            }
            if (kind == 'S') {
                json_t *s = json_loads(pl, 0, NULL);
                if (s) { json_decref(L->engine_status); L->engine_status = s; }
            }
            free(pl);
        }
    }
    return sd_seterr(err, SD_ETIMEOUT, "worker did not start within %.0f s", limit_s);
}

static void *new_router(loop *L) {
    void *r = zmq_socket(L->zctx, ZMQ_ROUTER);
    int64_t maxmsg = (L->s->max_file_mb << 20) + (1 << 20);
    int hwm = 100000, linger = 2000;
    zmq_setsockopt(r, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(r, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r, ZMQ_LINGER, &linger, sizeof linger);
    return r;
}

static int setup_curve(loop *L, sd_err *err) {
    char pub[PROTOCOL_KEY_Z85_LEN + 1], sec[PROTOCOL_KEY_Z85_LEN + 1];
    int rc = protocol_keyfile_read(L->s->curve_server_key, pub, sec, err);
    if (rc) return rc;
    char (*keys)[PROTOCOL_KEY_Z85_LEN + 1] = NULL;
    size_t nk = 0;
    if ((rc = protocol_keylist_read(L->s->curve_allowed_keys, &keys, &nk, err))) return rc;
    L->allowed = xcalloc(nk ? nk : 1, sizeof *L->allowed);
    for (size_t i = 0; i < nk; i++)
        if (!zmq_z85_decode(L->allowed[L->n_allowed], keys[i])) {
            free(keys);
            return sd_seterr(err, SD_EFORMAT, "%s: key %zu is not valid Z85", L->s->curve_allowed_keys, i + 1);
        } else {
            L->n_allowed++;
        }
    free(keys);
    if (!zmq_has("curve")) return sd_seterr(err, SD_ENOTSUP, "this libzmq has no CurveZMQ");
    L->zap = zmq_socket(L->zctx, ZMQ_REP);
    if (zmq_bind(L->zap, "inproc://zeromq.zap.01"))
        return sd_seterr(err, SD_EIO, "cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
    void *r = new_router(L);
    int one = 1;
    zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, sec, PROTOCOL_KEY_Z85_LEN);
    zmq_setsockopt(r, ZMQ_ZAP_DOMAIN, "smoldoc", 7);
    L->router[L->n_router++] = r;
    LOG(LOG_INFO, "CurveZMQ on: server key %s, %zu allowed client keys", pub, L->n_allowed);
    return 0;
}

static int bind_all(loop *L, sd_err *err) {
    int plain = -1, curve = -1;
    char def[4200];
    const char *eps[SETTINGS_MAX_LISTEN];
    int n = L->s->n_listen;
    for (int i = 0; i < n; i++) eps[i] = L->s->listen[i];
    if (n == 0) {
        snprintf(def, sizeof def, "ipc://%s/smoldocd.sock", L->s->data);
        eps[n++] = def;
    }
    if (L->s->curve_server_key) {
        int rc = setup_curve(L, err);
        if (rc) return rc;
        curve = L->n_router - 1;
    }
    for (int i = 0; i < n; i++) {
        bool tcp = !strncmp(eps[i], "tcp://", 6);
        int k;
        if (tcp && curve >= 0) k = curve;
        else {
            if (plain < 0) { L->router[L->n_router] = new_router(L); plain = L->n_router++; }
            k = plain;
        }
        if (zmq_bind(L->router[k], eps[i]))
            return sd_seterr(err, SD_EIO, "cannot bind %s: %s", eps[i], zmq_strerror(zmq_errno()));
        if (!strncmp(eps[i], "ipc://", 6)) chmod(eps[i] + 6, 0600);
        LOG(LOG_INFO, "listening on %s%s", eps[i], tcp ? (k == curve ? " (CurveZMQ)" : " (PLAINTEXT)") : "");
    }
    return 0;
}

int loop_run(const settings *s, int sigfd, sd_err *err) {
    loop L0 = {0}, *L = &L0;
    int status = 2;
    bool abandon = false; /* a worker is stuck: leave its memory and the context alone */
    L->s = s;
    L->t_start = sd_now();
    L->lim = protocol_limits_default();
    L->lim.max_frame_bytes = (size_t)s->max_file_mb << 20;
    L->zctx = zmq_ctx_new();
    char path[4200];
    snprintf(path, sizeof path, "%s/smoldoc.db", s->data);
    L->st = store_open(path, err);
    if (!L->st) goto out;
    if (store_readonly(L->st)) { sd_seterr(err, SD_EREADONLY, "%s is read-only", path); goto out; }
    L->ingest_sock = zmq_socket(L->zctx, ZMQ_PAIR);
    L->engine_sock = zmq_socket(L->zctx, ZMQ_PAIR);
    zmq_bind(L->ingest_sock, "inproc://smoldocd-ingest");
    zmq_bind(L->engine_sock, "inproc://smoldocd-engine");
    L->wa_ingest = (worker_args){L->zctx, "inproc://smoldocd-ingest", s};
    L->wa_engine = (worker_args){L->zctx, "inproc://smoldocd-engine", s};
    if (pthread_create(&L->engine_thr, NULL, worker_engine_main, &L->wa_engine)) {
        sd_seterr(err, SD_EIO, "cannot start the engine thread");
        goto out;
    }
    L->engine_started = true;
    if (pthread_create(&L->ingest_thr, NULL, worker_ingest_main, &L->wa_ingest)) {
        sd_seterr(err, SD_EIO, "cannot start the ingest thread");
        goto out;
    }
    L->ingest_started = true;
    if (wait_ready(L, L->ingest_sock, false, 30, err)) goto out;
    if (wait_ready(L, L->engine_sock, true, 3600, err)) goto out;
    LOG(LOG_INFO, "engine ready: %s", L->engine_info);
    {
        json_t *ei = json_loads(L->engine_info, 0, NULL);
        L->max_ctx = (int)json_integer_value(json_object_get(ei, "max_ctx"));
        json_decref(ei);
        uint8_t h[32];
        char hex[65] = "0000000000000000";
        store_sha256(s->model, strlen(s->model), h, hex);
        snprintf(L->model_key, sizeof L->model_key, "%.16s", hex);
    }
    if (bind_all(L, err)) goto out;
    LOG(LOG_INFO, "smoldocd ready (pid %d, data %s)", (int)getpid(), s->data);
    status = 0;

    for (;;) {
        zmq_pollitem_t it[8];
        int ni = 0;
        for (int k = 0; k < L->n_router; k++) it[ni++] = (zmq_pollitem_t){L->router[k], 0, ZMQ_POLLIN, 0};
        int i_ing = ni;
        it[ni++] = (zmq_pollitem_t){L->ingest_sock, 0, ZMQ_POLLIN, 0};
        int i_eng = ni;
        it[ni++] = (zmq_pollitem_t){L->engine_sock, 0, ZMQ_POLLIN, 0};
        int i_sig = ni;
        it[ni++] = (zmq_pollitem_t){NULL, sigfd, ZMQ_POLLIN, 0};
        int i_zap = -1;
        if (L->zap) { i_zap = ni; it[ni++] = (zmq_pollitem_t){L->zap, 0, ZMQ_POLLIN, 0}; }
        int n = zmq_poll(it, ni, 100);
        if (n < 0 && zmq_errno() != EINTR) { LOG(LOG_ERROR, "zmq_poll: %s", zmq_strerror(zmq_errno())); break; }
        if (n > 0) {
            if (it[i_sig].revents & ZMQ_POLLIN) {
                struct signalfd_siginfo si;
                while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    if (si.ssi_signo == SIGHUP) {
                        LOG(LOG_INFO, "SIGHUP: reopening the log file");
                        log_reopen();
                        LOG(LOG_INFO, "log file reopened");
                    } else if (!L->shutting) {
                        LOG(LOG_INFO, "signal %u: stopping (grace %.1f s)", si.ssi_signo, s->shutdown_grace_s);
                        L->shutting = true;
                        L->t_shutdown = sd_now();
                        fail_queued(L);
                    }
                }
            }
            if (i_zap >= 0 && (it[i_zap].revents & ZMQ_POLLIN)) on_zap(L);
            if (it[i_ing].revents & ZMQ_POLLIN) on_worker(L, false);
            if (it[i_eng].revents & ZMQ_POLLIN) on_worker(L, true);
            for (int k = 0; k < L->n_router; k++)
                for (int b = 0; b < 256 && (it[k].revents & ZMQ_POLLIN); b++) {
                    int ev = 0;
                    size_t sz = sizeof ev;
                    zmq_getsockopt(L->router[k], ZMQ_EVENTS, &ev, &sz);
                    if (!(ev & ZMQ_POLLIN)) break;
                    on_request(L, k);
                }
        }
        check_deadlines(L);
        if (L->shutting) {
            double waited = sd_now() - L->t_shutdown;
            if (waited > s->shutdown_grace_s) {
                if (L->engine_run && !atomic_load(&L->engine_run->cancel)) {
                    LOG(LOG_WARN, "grace time over: canceling %s", L->engine_run->req->id);
                    atomic_store(&L->engine_run->cancel, JOB_SHUTDOWN);
                }
                if (L->ingest_run) atomic_store(&L->ingest_run->cancel, JOB_SHUTDOWN);
            }
            if (!L->engine_run && !L->ingest_run) break;
            if (waited > s->shutdown_grace_s + s->ingest_timeout_s + 5) {
                LOG(LOG_ERROR, "workers did not stop in time; exiting anyway");
                abandon = true;
                break;
            }
        }
    }
out:
    if (status != 0) LOG(LOG_ERROR, "start-up failed: %s", err->msg);
    /* Stop the workers: a NULL job pointer. */
    uintptr_t nul = 0;
    if (abandon) {
        store_close(L->st);
        LOG(LOG_INFO, "smoldocd stopped (a worker was abandoned)");
        return 0;
    }
    if (L->ingest_started) { zmq_send(L->ingest_sock, &nul, sizeof nul, ZMQ_DONTWAIT); pthread_join(L->ingest_thr, NULL); }
    if (L->engine_started) { zmq_send(L->engine_sock, &nul, sizeof nul, ZMQ_DONTWAIT); pthread_join(L->engine_thr, NULL); }
    if (L->ingest_run) job_free(L->ingest_run);
    if (L->engine_run) job_free(L->engine_run);
    fail_queued(L);
    for (int k = 0; k < L->n_router; k++) zmq_close(L->router[k]);
    if (L->zap) zmq_close(L->zap);
    if (L->ingest_sock) zmq_close(L->ingest_sock);
    if (L->engine_sock) zmq_close(L->engine_sock);
    store_close(L->st);
    json_decref(L->engine_status);
    free(L->ingest_q.v);
    free(L->engine_q.v);
    free(L->allowed);
    if (status == 0) {
        zmq_ctx_term(L->zctx);
        LOG(LOG_INFO, "smoldocd stopped");
    }
    return status;
}
