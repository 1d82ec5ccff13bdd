/* worker_engine.c - the engine worker: owns the model, the KV pool, the
 * tokenizer and the document prefix cache. For each request it finds or
 * prefills the document's prefix (one per reasoning mode), forks it, appends
 * the request's own tokens and decodes, checking the cancel flag and the
 * deadline between decode steps (and between prefill chunks). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "cuad.h"
#include "engine.h"
#include "job.h"
#include "log.h"
#include "prefix.h"
#include "sampler.h"
#include "tasks.h"
#include "tokenizer.h"
#include "worker.h"

typedef struct ew {
    void *sock;
    const settings *s;
    engine *e;
    tokenizer *tok;
    prefix_cache *pc;
    size_t kv_tok_bytes;
    int max_ctx, vocab;
    int32_t im_end, eos, think_end;
    float *logits;
    uint64_t checks_ok, checks_skipped, checks_failed;
    uint64_t served;
} ew;

/* Timings of one or more generations of a request. */
typedef struct gen_stats {
    size_t prefill_tokens;   /* tokens run through the model for prompts */
    size_t prefix_tokens;    /* length of the (last) document prefix used */
    bool prefix_reused;      /* every prefix came from the cache */
    bool any_prefix;
    double t_first;          /* sd_now() of the first generated token, 0 = none */
    size_t decode_tokens;
    double decode_s;
} gen_stats;

static void release_seq(void *ud, int seq) { engine_seq_free(((ew *)ud)->e, seq); }

static void send_ev(ew *w, job *j, char *ev) {
    if (!ev) return;
    worker_send(w->sock, j, 'E', ev, strlen(ev));
    free(ev);
}

/* Returns the stop reason (JOB_*), setting the deadline flag when it passed. */
static int stop_reason(job *j) {
    int c = atomic_load(&j->cancel);
    if (c) return c;
    if (j->deadline > 0 && sd_now() > j->deadline) {
        atomic_store(&j->cancel, JOB_DEADLINE);
        return JOB_DEADLINE;
    }
    return JOB_RUN;
}

typedef struct prog { ew *w; job *j; const char *stage; size_t base, total; } prog;

static int on_progress(void *ud, size_t done, size_t total) {
    prog *p = ud;
    (void)total;
    if (p->stage) send_ev(p->w, p->j, protocol_event_progress(p->j->req->id, p->stage, p->base + done, p->total));
    return stop_reason(p->j) != JOB_RUN;
}

/* engine_forward that evicts cached prefixes (other than keep) when the KV
 * pool is full, and resumes where it stopped. */
static int forward(ew *w, job *j, int seq, const int32_t *t, size_t n, float *logits, const char *stage,
                   int64_t keep_doc, bool keep_think, sd_err *err) {
    size_t start = engine_seq_len(w->e, seq), total = n;
    for (;;) {
        size_t done = engine_seq_len(w->e, seq) - start;
        prog p = {w, j, stage, done, total};
        int rc = engine_forward(w->e, seq, t + done, n - done, logits, 0, on_progress, &p, err);
        if (rc != SD_ENOMEM) return rc;
        if (!prefix_evict_lru(w->pc, keep_doc, keep_think)) return rc;
        LOG(LOG_INFO, "KV pool full: evicted a cached prefix");
    }
}

static int fail_stop(job *j, sd_err *err) {
    int r = atomic_load(&j->cancel);
    if (r == JOB_DEADLINE) return sd_seterr(err, SD_ETIMEOUT, "deadline passed");
    if (r == JOB_SHUTDOWN) return sd_seterr(err, SD_ECANCELED, "the daemon is shutting down");
    return sd_seterr(err, SD_ECANCELED, "canceled");
}

static int verify(ew *w, const tasks_half *pre, const tasks_half *suf, sd_err *err) {
    sd_err e = {0};
    int rc = tasks_verify_split(w->tok, pre, suf, &e);
    if (rc == 0) w->checks_ok++;
    else if (rc == 1) w->checks_skipped++;
    else {
        w->checks_failed++;
        LOG(LOG_ERROR, "prompt check failed: %s", e.msg);
        return sd_seterr(err, SD_EFORMAT, "%s", e.msg);
    }
    return 0;
}

/* One generation: prefix (cached when cache_doc >= 0: the whole document),
 * then the message as the user turn, then decoding. Streams token events when
 * stream. *text (malloc'd) gets the answer without any think block. */
static int generate(ew *w, job *j, const tasks_doc *doc, size_t span_start, size_t span_end, int64_t cache_doc,
                    const char *message, int max_tokens, bool stream, gen_stats *st, char **text, sd_err *err) {
    const protocol_options *o = &j->req->opt;
    bool think = o->think;
    tasks_half pre = {0}, suf = {0};
    int pseq = -1, seq = -1, rc = 0;
    bool own_prefix = true;
    tokenizer_stream *ts = NULL;
    sampler *sm = NULL;
    int32_t *hist = NULL;
    size_t nhist = 0;
    *text = NULL;

    const prefix_entry *pe = cache_doc >= 0 ? prefix_get(w->pc, cache_doc, think) : NULL;
    size_t prefix_n;
    if (pe) {
        pseq = pe->seq;
        prefix_n = pe->n_tokens;
        own_prefix = false;
        if (j->verify_prompts && (rc = tasks_build_prefix(w->tok, doc, span_start, span_end, think, &pre, err)))
            goto done;
        if (j->verify_prompts && pre.n != prefix_n) {
            rc = sd_seterr(err, SD_EFORMAT, "cached prefix has %zu tokens, rebuilt %zu", prefix_n, pre.n);
            w->checks_failed++;
            goto done;
        }
    } else {
        if ((rc = tasks_build_prefix(w->tok, doc, span_start, span_end, think, &pre, err))) goto done;
        prefix_n = pre.n;
    }
    if ((rc = tasks_build_suffix(w->tok, message, think, &suf, err))) goto done;
    if (j->verify_prompts && pre.text && (rc = verify(w, &pre, &suf, err))) goto done;
    if (prefix_n + suf.n + 1 > (size_t)w->max_ctx) {
        rc = sd_seterr(err, SD_ERANGE, "the prompt (%zu + %zu tokens) does not fit the context of %d", prefix_n,
                       suf.n, w->max_ctx);
        goto done;
    }
    if ((size_t)max_tokens > (size_t)w->max_ctx - prefix_n - suf.n) max_tokens = (int)((size_t)w->max_ctx - prefix_n - suf.n);
    st->any_prefix = true;
    st->prefix_tokens = prefix_n;
    if (!pe) {
        st->prefix_reused = false;
        pseq = engine_seq_new(w->e);
        if (pseq < 0) { rc = sd_seterr(err, SD_ENOMEM, "no free KV sequence"); goto done; }
        rc = forward(w, j, pseq, pre.ids, pre.n, NULL, "prefill", -1, false, err);
        st->prefill_tokens += pre.n;
        if (rc) { if (stop_reason(j)) rc = fail_stop(j, err); goto done; }
        if (cache_doc >= 0) {
            size_t bytes = pre.n * w->kv_tok_bytes;
            if (prefix_put(w->pc, cache_doc, think, pseq, pre.n, bytes) == 0) own_prefix = false;
            else LOG(LOG_INFO, "prefix of doc %lld (%zu bytes) is over the prefix budget; not kept",
                     (long long)cache_doc, bytes);
        }
    }
    seq = engine_seq_fork(w->e, pseq);
    if (seq < 0) { rc = sd_seterr(err, SD_ENOMEM, "no free KV sequence"); goto done; }
    rc = forward(w, j, seq, suf.ids, suf.n, w->logits, NULL, cache_doc, think, err);
    st->prefill_tokens += suf.n;
    if (rc) { if (stop_reason(j)) rc = fail_stop(j, err); goto done; }

    sampler_params sp = sampler_params_default();
    sp.temperature = o->temperature;
    sp.top_p = o->top_p;
    sp.top_k = o->top_k;
    sp.min_p = o->min_p;
    sp.repetition_penalty = o->repetition_penalty;
    sp.seed = o->has_seed ? o->seed : (uint64_t)time(NULL) * 2654435761u ^ j->serial;
    sm = sampler_new(&sp, w->vocab);
    ts = tokenizer_stream_new(w->tok);
    tokenizer_stream_set_skip_special(ts, 1);
    hist = xmalloc(((size_t)max_tokens + 1) * sizeof *hist);
    size_t n_ans = 0;
    int32_t *ans = xmalloc(((size_t)max_tokens + 1) * sizeof *ans);
    bool in_think = think;
    double t0 = sd_now();
    char buf[512];
    for (int step = 0; step < max_tokens; step++) {
        if (stop_reason(j)) { rc = fail_stop(j, err); break; }
        int32_t t = sampler_sample(sm, w->logits, hist, nhist);
        if (!st->t_first) st->t_first = sd_now();
        hist[nhist++] = t;
        st->decode_tokens++;
        if (t == w->im_end || t == w->eos) break;
        if (in_think) {
            if (t == w->think_end) in_think = false;
        } else {
            ans[n_ans++] = t;
            size_t m = tokenizer_stream_put(ts, t, buf, sizeof buf - 1);
            if (m && stream) { buf[m] = 0; send_ev(w, j, protocol_event_token(j->req->id, buf)); }
        }
        if (step + 1 == max_tokens) break;
        rc = forward(w, j, seq, &t, 1, w->logits, NULL, cache_doc, think, err);
        if (rc) { if (stop_reason(j)) rc = fail_stop(j, err); break; }
    }
    size_t m;
    while ((m = tokenizer_stream_flush(ts, buf, sizeof buf - 1)) > 0)
        if (stream && !rc) { buf[m] = 0; send_ev(w, j, protocol_event_token(j->req->id, buf)); }
    st->decode_s += sd_now() - t0;
    if (!rc) *text = tokenizer_decode(w->tok, ans, n_ans, 1);
    free(ans);
done:
    free(hist);
    tokenizer_stream_free(ts);
    sampler_free(sm);
    if (seq >= 0) engine_seq_free(w->e, seq);
    if (own_prefix && pseq >= 0) engine_seq_free(w->e, pseq);
    tasks_half_clear(&pre);
    tasks_half_clear(&suf);
    return rc;
}

static json_t *timings_json(const job *j, const gen_stats *st) {
    double now = sd_now();
    return json_pack("{s:f, s:I, s:b, s:I, s:f, s:I, s:f, s:f}",
                     "queued_ms", (j->t_start - j->t_recv) * 1e3,
                     "prefill_tokens", (json_int_t)st->prefill_tokens,
                     "prefix_reused", st->any_prefix && st->prefix_reused,
                     "prefix_tokens", (json_int_t)st->prefix_tokens,
                     "ttft_ms", st->t_first ? (st->t_first - j->t_start) * 1e3 : 0.0,
                     "decode_tokens", (json_int_t)st->decode_tokens,
                     "decode_tps", st->decode_s > 0 ? (double)st->decode_tokens / st->decode_s : 0.0,
                     "total_ms", (now - j->t_start) * 1e3);
}

/* The end of a map window that starts at s and holds about max_bytes:
 * the last paragraph, line or sentence break before s + max_bytes (or the
 * end of the text). */
static size_t window_end(const tasks_doc *d, size_t s, size_t max_bytes) {
    if (s + max_bytes >= d->len) return d->len;
    size_t lim = s + max_bytes, best = 0;
    static const char *const breaks[] = {"\n\n", "\n", ". ", " "};
    for (int k = 0; k < 4 && !best; k++) {
        size_t bl = strlen(breaks[k]);
        for (size_t i = lim; i > s + max_bytes / 2; i--)
            if (!memcmp(d->text + i - bl, breaks[k], bl)) { best = i; break; }
    }
    if (!best) {
        best = lim;
        while (best > s + 1 && ((unsigned char)d->text[best] & 0xC0) == 0x80) best--; /* UTF-8 boundary */
    }
    return best;
}

static int run_summarize(ew *w, job *j, const tasks_doc *d, gen_stats *st, sd_err *err) {
    const protocol_request *r = j->req;
    const char *style = protocol_style_name(r->style);
    char *msg = tasks_summarize_message(style, r->words), *text = NULL;
    int rc;
    /* Does the whole document fit with the answer? */
    tasks_half pre = {0};
    size_t whole = 0;
    const prefix_entry *pe = prefix_get(w->pc, j->doc_id, r->opt.think);
    if (pe) whole = pe->n_tokens;
    else {
        if ((rc = tasks_build_prefix(w->tok, d, 0, 0, r->opt.think, &pre, err))) { free(msg); return rc; }
        whole = pre.n;
        tasks_half_clear(&pre);
    }
    size_t window = (size_t)j->summary_window;
    if (window + 512 + (size_t)j->max_tokens > (size_t)w->max_ctx)
        window = (size_t)w->max_ctx > 512 + (size_t)j->max_tokens + 256 ? (size_t)w->max_ctx - 512 - (size_t)j->max_tokens : 256;
    json_t *res = json_object();
    if (whole + 256 + (size_t)j->max_tokens <= (size_t)w->max_ctx) {
        rc = generate(w, j, d, 0, 0, j->doc_id, msg, j->max_tokens, true, st, &text, err);
        json_object_set_new(res, "mode", json_string("single"));
    } else {
        /* Map over windows that end at paragraph or line breaks, then reduce.
         * Window size in bytes from the document's tokens per byte; a window
         * whose prompt still does not fit is halved. */
        char **parts = NULL;
        size_t np = 0, s0 = 0;
        double tpb = d->len ? (double)whole / (double)d->len : 1.0;
        size_t wbytes = (size_t)((double)window / (tpb > 0 ? tpb : 1.0) * 0.9);
        if (wbytes < 256) wbytes = 256;
        size_t n_windows = (d->len + wbytes - 1) / wbytes;
        int map_tokens = j->max_tokens < 160 ? j->max_tokens : 160;
        rc = 0;
        while (!rc && s0 < d->len) {
            size_t e0 = window_end(d, s0, wbytes);
            send_ev(w, j, protocol_event_progress(r->id, "map", np, n_windows > np ? n_windows : np + 1));
            int a = tasks_page_of(d, s0), z = tasks_page_of(d, e0 ? e0 - 1 : 0);
            char *mm = tasks_map_message(a, z), *part = NULL;
            gen_stats s2 = {.prefix_reused = true};
            rc = generate(w, j, d, s0, e0, -1, mm, map_tokens, false, &s2, &part, err);
            free(mm);
            st->prefill_tokens += s2.prefill_tokens;
            st->decode_tokens += s2.decode_tokens;
            st->decode_s += s2.decode_s;
            if (!st->t_first) st->t_first = s2.t_first;
            if (rc == SD_ERANGE && wbytes > 512 && !stop_reason(j)) { /* too big: halve and retry */
                wbytes /= 2;
                rc = 0;
                continue;
            }
            if (rc) break;
            parts = xrealloc(parts, (np + 1) * sizeof *parts);
            parts[np++] = part;
            s0 = e0;
        }
        if (!rc) {
            send_ev(w, j, protocol_event_progress(r->id, "reduce", 0, 1));
            char *rm = tasks_reduce_message(style, r->words, parts, np);
            gen_stats s3 = {0};
            rc = generate(w, j, NULL, 0, 0, -1, rm, j->max_tokens, true, &s3, &text, err);
            free(rm);
            st->prefill_tokens += s3.prefill_tokens;
            st->decode_tokens += s3.decode_tokens;
            st->decode_s += s3.decode_s;
        }
        json_object_set_new(res, "mode", json_string("map_reduce"));
        json_object_set_new(res, "windows", json_integer((json_int_t)np));
        for (size_t i = 0; i < np; i++) free(parts[i]);
        free(parts);
        st->prefix_reused = false;
    }
    free(msg);
    if (rc) { json_decref(res); free(text); return rc; }
    json_object_set_new(res, "text", json_string(text ? text : ""));
    json_object_set_new(res, "pages", tasks_cited_pages(text, d->n_pages));
    free(text);
    j->result = res;
    return 0;
}

static int run_ask(ew *w, job *j, const tasks_doc *d, gen_stats *st, sd_err *err) {
    char *msg = tasks_ask_message(j->req->question), *text = NULL;
    int rc = generate(w, j, d, 0, 0, j->doc_id, msg, j->max_tokens, true, st, &text, err);
    free(msg);
    if (rc) return rc;
    j->result = json_pack("{s:s, s:o}", "answer", text ? text : "", "pages", tasks_cited_pages(text, d->n_pages));
    free(text);
    return 0;
}

static int run_extract(ew *w, job *j, const tasks_doc *d, gen_stats *st, sd_err *err) {
    const protocol_request *r = j->req;
    size_t n = r->n_categories ? r->n_categories : CUAD_N_CATEGORIES;
    json_t *clauses = json_array();
    int rc = 0;
    bool all_reused = true;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *name, *desc;
        if (r->n_categories) {
            name = r->categories[i].name;
            desc = r->categories[i].description;
            const cuad_category *c = cuad_find(name);
            if ((!desc || !*desc) && c) desc = c->description;
        } else {
            name = cuad_categories()[i].name;
            desc = cuad_categories()[i].description;
        }
        send_ev(w, j, protocol_event_progress(r->id, "decode", i, n));
        char *msg = tasks_extract_message(name, desc), *text = NULL;
        gen_stats s2 = {.prefix_reused = true};
        rc = generate(w, j, d, 0, 0, j->doc_id, msg, j->max_tokens, false, &s2, &text, err);
        free(msg);
        st->prefill_tokens += s2.prefill_tokens;
        st->decode_tokens += s2.decode_tokens;
        st->decode_s += s2.decode_s;
        st->prefix_tokens = s2.prefix_tokens;
        st->any_prefix = true;
        if (!s2.prefix_reused) all_reused = false;
        if (!st->t_first) st->t_first = s2.t_first;
        if (rc) break;
        char *q = tasks_answer_quote(text);
        json_t *quotes = json_array();
        if (q) {
            size_t s = 0, e = 0;
            int page = 0;
            int ok = tasks_locate(d, q, &s, &e, &page);
            json_t *jq = json_pack("{s:s, s:b}", "text", q, "verified", ok);
            if (ok) {
                json_object_set_new(jq, "page", json_integer(page));
                json_object_set_new(jq, "start", json_integer((json_int_t)s));
                json_object_set_new(jq, "end", json_integer((json_int_t)e));
            } else {
                json_object_set_new(jq, "page", json_null());
                json_object_set_new(jq, "start", json_null());
                json_object_set_new(jq, "end", json_null());
            }
            json_array_append_new(quotes, jq);
        }
        json_array_append_new(clauses, json_pack("{s:s, s:b, s:o, s:s}", "category", name, "found", q != NULL,
                                                 "quotes", quotes, "answer", text ? text : ""));
        free(q);
        free(text);
    }
    st->prefix_reused = all_reused;
    if (rc) { json_decref(clauses); return rc; }
    json_t *pages = json_array();
    j->result = json_pack("{s:o, s:o}", "clauses", clauses, "pages", pages);
    /* Pages: those of verified quotes. */
    int seen[4096] = {0};
    size_t ci;
    json_t *c;
    json_array_foreach(clauses, ci, c) {
        size_t qi;
        json_t *q;
        json_array_foreach(json_object_get(c, "quotes"), qi, q) {
            json_int_t p = json_integer_value(json_object_get(q, "page"));
            if (p > 0 && p < 4096 && !seen[p]++) json_array_append_new(pages, json_integer(p));
        }
    }
    return 0;
}

static void send_status(ew *w) {
    int used = 0, total = 0, bs = 0;
    engine_kv_usage(w->e, &used, &total, &bs);
    json_t *entries = json_array();
    for (size_t i = 0; i < prefix_count(w->pc); i++) {
        const prefix_entry *p = prefix_at(w->pc, i);
        json_array_append_new(entries, json_pack("{s:I, s:b, s:I, s:I, s:s, s:I}", "doc", (json_int_t)p->doc_id,
                                                 "think", p->think, "tokens", (json_int_t)p->n_tokens, "bytes",
                                                 (json_int_t)p->bytes, "tier", "device", "hits",
                                                 (json_int_t)p->hits));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:{s:i, s:i, s:i}, s:{s:I, s:I, s:I, s:o}, "
                          "s:{s:I, s:I, s:I}, s:I}",
                          "model", w->s->model, "backend", engine_backend_name(w->e), "backend_reason",
                          engine_backend_reason(w->e), "max_ctx", w->max_ctx,
                          "kv", "used_blocks", used, "total_blocks", total, "block_size", bs,
                          "cache", "budget_bytes", (json_int_t)prefix_budget_bytes(w->pc), "used_bytes",
                          (json_int_t)prefix_used_bytes(w->pc), "evictions", (json_int_t)prefix_evictions(w->pc),
                          "entries", entries,
                          "prompt_checks", "ok", (json_int_t)w->checks_ok, "skipped", (json_int_t)w->checks_skipped,
                          "failed", (json_int_t)w->checks_failed, "served", (json_int_t)w->served);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) worker_send(w->sock, NULL, 'S', s, strlen(s));
    free(s);
}

static void run_job(ew *w, job *j) {
    sd_err err = {0};
    gen_stats st = {.prefix_reused = true};
    j->t_start = sd_now();
    tasks_doc d = {.name = j->doc_name, .text = j->text, .len = j->text_len, .page_start = j->page_start,
                   .n_pages = j->n_pages, .created_at = j->created_at};
    int rc;
    if (stop_reason(j)) rc = fail_stop(j, &err);
    else if (j->req->op == PROTOCOL_OP_ASK) rc = run_ask(w, j, &d, &st, &err);
    else if (j->req->op == PROTOCOL_OP_SUMMARIZE) rc = run_summarize(w, j, &d, &st, &err);
    else if (j->req->op == PROTOCOL_OP_EXTRACT) rc = run_extract(w, j, &d, &st, &err);
    else rc = sd_seterr(&err, SD_EINVAL, "engine worker: op %s", protocol_op_name(j->req->op));
    j->rc = rc;
    if (rc) {
        int why = atomic_load(&j->cancel);
        j->code = why == JOB_CANCELED ? PROTOCOL_CODE_CANCELED : why == JOB_DEADLINE ? PROTOCOL_CODE_DEADLINE
                : why == JOB_SHUTDOWN ? PROTOCOL_CODE_SHUTTING_DOWN : protocol_code_from_sd(rc);
        if (rc == SD_ERANGE && !why) j->code = PROTOCOL_CODE_TOO_LARGE;
        snprintf(j->msg, sizeof j->msg, "%s", err.msg);
        json_decref(j->result);
        j->result = NULL;
    } else {
        json_object_set_new(j->result, "timings", timings_json(j, &st));
        json_object_set_new(j->result, "doc", json_sprintf("%lld", (long long)j->doc_id));
    }
    w->served++;
}

void *worker_engine_main(void *arg) {
    worker_args *a = arg;
    const settings *s = a->s;
    ew w = {.s = s};
    sd_err err = {0};
    char path[4200];
    w.sock = zmq_socket(a->zctx, ZMQ_PAIR);
    if (!w.sock || zmq_connect(w.sock, a->endpoint)) {
        LOG(LOG_ERROR, "engine worker: cannot connect %s", a->endpoint);
        if (w.sock) zmq_close(w.sock);
        return NULL;
    }
    engine_params ep = engine_params_default();
    ep.model_dir = s->model;
    ep.backend = s->backend;
    ep.n_threads = (int)s->threads;
    ep.max_ctx = (int)s->max_ctx;
    ep.kv_budget_bytes = (size_t)s->kv_budget_mb << 20;
    double t0 = sd_now();
    w.e = engine_new(&ep, &err);
    if (w.e) {
        snprintf(path, sizeof path, "%s/tokenizer.json", s->model);
        w.tok = tokenizer_new(path, &err);
    }
    if (!w.e || !w.tok) {
        worker_send(w.sock, NULL, 'F', err.msg, strlen(err.msg));
        goto out;
    }
    const model_config *c = engine_config(w.e);
    w.max_ctx = engine_params_get(w.e)->max_ctx;
    w.vocab = c->vocab;
    w.kv_tok_bytes = backend_kv_token_bytes(c, engine_params_get(w.e)->kv_dtype);
    w.im_end = tokenizer_token_id(w.tok, "<|im_end|>");
    w.think_end = tokenizer_token_id(w.tok, "</think>");
    w.eos = c->eos_id >= 0 ? c->eos_id : w.im_end;
    w.logits = xmalloc((size_t)c->vocab * sizeof *w.logits);
    w.pc = prefix_cache_new((size_t)s->prefix_budget_mb << 20, release_seq, &w);
    {
        char info[512];
        int n = snprintf(info, sizeof info, "{\"backend\":\"%s\",\"load_s\":%.3f,\"max_ctx\":%d}",
                         engine_backend_name(w.e), sd_now() - t0, w.max_ctx);
        worker_send(w.sock, NULL, 'R', info, (size_t)n);
    }
    send_status(&w);
    for (;;) {
        uintptr_t p = 0;
        int n = zmq_recv(w.sock, &p, sizeof p, 0);
        if (n < 0) { if (zmq_errno() == EINTR) continue; break; }
        if (n != (int)sizeof p || !p) break;
        job *j = (job *)p;
        if (j->kind == JOB_DROP_DOC) {
            int k = prefix_drop_doc(w.pc, j->doc_id);
            LOG(LOG_DEBUG, "dropped %d prefixes of doc %lld", k, (long long)j->doc_id);
            free(j);
            send_status(&w);
            continue;
        }
        if (j->kind == JOB_STATUS) { free(j); send_status(&w); continue; }
        run_job(&w, j);
        worker_send(w.sock, j, 'D', NULL, 0);
        send_status(&w);
    }
out:
    prefix_cache_free(w.pc);
    free(w.logits);
    tokenizer_free(w.tok);
    engine_free(w.e);
    zmq_close(w.sock);
    return NULL;
}
