/* worker_engine.c - the engine worker: owns the model, the KV pool, the
 * tokenizer and the document prefix cache. For each request it finds or
 * prefills the document's prefix (one per reasoning mode), forks it, appends
 * the request's own tokens and decodes, checking the cancel flag and the
 * deadline between decode steps (and between prefill chunks). A document
 * longer than the context is cut into section-aligned windows: ask and
 * extract read the window most relevant to the question or category (its
 * prefix cached like a whole document's), summarize maps over all windows and
 * reduces. While a job runs the worker publishes its state for `status`. */
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

/* [start, end) bytes of a document's text. */
typedef struct span { size_t start, end; } span;

/* Per document: the tokens of its whole prefix (budget 0) or its windows for
 * one token budget. A few documents' worth, oldest use replaced first. */
#define WCACHE_MAX 16
typedef struct wentry {
    int64_t doc_id;     /* 0 = free */
    size_t len;         /* text bytes (a changed text is a different entry) */
    size_t budget;      /* 0: n_whole is valid; else windows of at most budget prefix tokens */
    size_t n_whole;
    span *w;
    size_t n;
    uint64_t used;
} wentry;

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
    wentry wc[WCACHE_MAX];
    uint64_t wtick;
    /* published state of the running job */
    job *cur;
    const char *stage;
    size_t prog_done, prog_total, decoded;
    double t_pub;
} ew;

static void send_status(ew *w);

/* Publishes the state for status at most every 100 ms, and at once when
 * force (a new job, a new stage). */
static void publish(ew *w, bool force) {
    double now = sd_now();
    if (!force && now - w->t_pub < 0.1) return;
    w->t_pub = now;
    send_status(w);
}

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
    if (p->stage) { /* a document prefix (suffixes and decode steps pass no stage) */
        bool changed = !p->w->stage || strcmp(p->w->stage, p->stage);
        p->w->stage = p->stage;
        p->w->prog_done = p->base + done;
        p->w->prog_total = p->total;
        publish(p->w, changed);
    }
    return stop_reason(p->j) != JOB_RUN;
}

/* engine_forward that evicts cached prefixes (other than keep) when the KV
 * pool is full, and resumes where it stopped. logits NULL: the last logits stay
 * where they were computed (for engine_sample_device). */
static int forward(ew *w, job *j, int seq, const int32_t *t, size_t n, float *logits, const char *stage,
                   const prefix_key *keep, sd_err *err) {
    size_t start = engine_seq_len(w->e, seq), total = n;
    for (;;) {
        size_t done = engine_seq_len(w->e, seq) - start;
        prog p = {w, j, stage, done, total};
        int rc = engine_forward(w->e, seq, t + done, n - done, logits, 0, on_progress, &p, err);
        if (rc != SD_ENOMEM) return rc;
        if (!prefix_evict_lru(w->pc, keep)) return rc;
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

/* One generation: prefix (the whole document when span_start = span_end = 0,
 * else that span of it; cached when cache_doc >= 0), then the message as the
 * user turn, then decoding. Streams token events when stream. *text
 * (malloc'd) gets the answer without any think block. */
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

    prefix_key key = {cache_doc, think, span_start, span_end};
    const prefix_key *keep = cache_doc >= 0 ? &key : NULL;
    const prefix_entry *pe = cache_doc >= 0 ? prefix_get(w->pc, &key) : NULL;
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
        rc = forward(w, j, pseq, pre.ids, pre.n, NULL, "prefill", NULL, err);
        st->prefill_tokens += pre.n;
        if (rc) { if (stop_reason(j)) rc = fail_stop(j, err); goto done; }
        if (cache_doc >= 0) {
            size_t bytes = pre.n * w->kv_tok_bytes;
            if (prefix_put(w->pc, &key, pseq, pre.n, bytes) == 0) {
                own_prefix = false;
                int a = doc && doc->n_pages ? tasks_page_of(doc, span_start) : 0;
                int z = doc && doc->n_pages ? (span_end ? tasks_page_of(doc, span_end - 1) : doc->n_pages) : 0;
                prefix_note_pages(w->pc, &key, a, z);
            } else LOG(LOG_INFO, "prefix of doc %lld (%zu bytes) is over the prefix budget; not kept",
                     (long long)cache_doc, bytes);
        }
    }
    seq = engine_seq_fork(w->e, pseq);
    if (seq < 0) { rc = sd_seterr(err, SD_ENOMEM, "no free KV sequence"); goto done; }
    sampler_params sp = sampler_params_default();
    sp.temperature = o->temperature;
    sp.top_p = o->top_p;
    sp.top_k = o->top_k;
    sp.min_p = o->min_p;
    sp.repetition_penalty = o->repetition_penalty;
    sp.seed = o->has_seed ? o->seed : (uint64_t)time(NULL) * 2654435761u ^ j->serial;
    /* on the GPU where it can: only token ids cross PCIe */
    const bool dev = engine_can_sample_device(w->e, &sp);
    uint64_t drng = engine_sample_device_seed(w->e, sp.seed);
    float *lg = dev ? NULL : w->logits;
    rc = forward(w, j, seq, suf.ids, suf.n, lg, NULL, keep, err);
    st->prefill_tokens += suf.n;
    if (rc) { if (stop_reason(j)) rc = fail_stop(j, err); goto done; }
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
        int32_t t;
        if (!dev) t = sampler_sample(sm, w->logits, hist, nhist);
        else if ((rc = engine_sample_device(w->e, &sp, &drng, &t, err))) break;
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
        bool changed = !w->stage || strcmp(w->stage, "decode");
        w->stage = "decode";
        w->decoded++;
        publish(w, changed);
        rc = forward(w, j, seq, &t, 1, lg, NULL, keep, err);
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

/* The end of a window that starts at s and holds about max_bytes, cut
 * inside a section: the last paragraph, line, sentence or word break before
 * s + max_bytes (or the end of the text). */
static size_t window_end(const tasks_doc *d, size_t s, size_t max_bytes) {
    if (s + max_bytes >= d->len) return d->len;
    size_t lim = s + max_bytes, best = 0;
    static const char *const breaks[] = {"\n\n", "\n", ". ", " "};
    for (int k = 0; k < 4 && !best; k++) {
        size_t bl = strlen(breaks[k]);
        for (size_t i = lim; i > s + max_bytes / 2 && i >= bl; i--)
            if (!memcmp(d->text + i - bl, breaks[k], bl)) { best = i; break; }
    }
    if (!best) {
        best = lim;
        while (best > s + 1 && ((unsigned char)d->text[best] & 0xC0) == 0x80) best--; /* UTF-8 boundary */
    }
    return best;
}

/* The end of the window starting at s of about target bytes, aligned to the
 * section starts bnd (ascending, n_bnd): the last section start in
 * (s, s + target] when it fills at least half the window or the section after
 * it fits a window of its own; else a paragraph break (a section bigger than
 * a window). */
static size_t pick_end(const tasks_doc *d, const int64_t *bnd, int n_bnd, size_t s, size_t target) {
    if (s + target >= d->len) return d->len;
    size_t lim = s + target, b1 = 0, b2 = d->len;
    for (int i = 0; i < n_bnd; i++) {
        size_t b = (size_t)bnd[i];
        if (b <= s) continue;
        if (b <= lim) b1 = b;
        else { b2 = b; break; }
    }
    if (b1 && (b1 - s >= target / 2 || b2 - b1 <= target)) return b1;
    return window_end(d, s, target);
}

/* Cuts the document into consecutive windows whose prefix (system block and
 * the window's pages) holds at most budget tokens, aligned to section starts.
 * *out is malloc'd. Returns 0, SD_ERANGE (not even a small window fits) or
 * the tokenizer's errors. */
static int build_windows(ew *w, const tasks_doc *d, const int64_t *bnd, int n_bnd, size_t budget, span **out,
                         size_t *n_out, sd_err *err) {
    tasks_half h = {0};
    span *v = NULL;
    size_t n = 0;
    int rc;
    *out = NULL;
    *n_out = 0;
    budget = budget > 8 ? budget - 4 : budget; /* the other reasoning mode's flag may take a token or two more */
    if ((rc = tasks_build_prefix(w->tok, d, d->len, d->len, false, &h, err))) return rc;
    size_t over = h.n;
    tasks_half_clear(&h);
    if (over + 32 > budget)
        return sd_seterr(err, SD_ERANGE, "a window of %zu tokens cannot hold the %zu-token system block", budget, over);
    /* tokens per byte, from a sample, then from each window made */
    double tpb = 0.3;
    {
        size_t sl = d->len < 8192 ? d->len : 8192;
        while (sl < d->len && sl > 0 && ((unsigned char)d->text[sl] & 0xC0) == 0x80) sl--;
        int32_t *ids = NULL;
        size_t ni = 0;
        if (sl && tokenizer_encode(w->tok, d->text, sl, 0, &ids, &ni, err) == 0 && ni) tpb = (double)ni / (double)sl;
        free(ids);
    }
    size_t s = 0;
    while (s < d->len) {
        size_t target = (size_t)((double)(budget - over) / (tpb > 0.01 ? tpb : 0.01));
        size_t e = 0;
        for (int attempt = 0;; attempt++) {
            if (target < 16) target = 16;
            e = pick_end(d, bnd, n_bnd, s, target);
            if (e <= s) e = s + 1 < d->len ? s + 1 : d->len;
            while (e < d->len && ((unsigned char)d->text[e] & 0xC0) == 0x80) e++;
            if ((rc = tasks_build_prefix(w->tok, d, s, e, false, &h, err))) goto fail;
            size_t got = h.n;
            tasks_half_clear(&h);
            if (got <= budget) {
                if (got > over && e > s) tpb = (double)(got - over) / (double)(e - s);
                break;
            }
            if (e - s <= 16 || attempt > 12) {
                rc = sd_seterr(err, SD_ERANGE, "no window of %zu tokens fits at byte %zu", budget, s);
                goto fail;
            }
            size_t smaller = (size_t)((double)(e - s) * (double)(budget - over) / (double)(got > over ? got - over : 1) * 0.9);
            target = smaller < e - s ? smaller : (e - s) / 2;
        }
        v = xrealloc(v, (n + 1) * sizeof *v);
        v[n++] = (span){s, e};
        s = e;
    }
    *out = v;
    *n_out = n;
    return 0;
fail:
    free(v);
    return rc;
}

/* The cache entry of (doc, budget), marked used, or NULL. */
static wentry *wc_find(ew *w, int64_t doc_id, size_t len, size_t budget) {
    for (int i = 0; i < WCACHE_MAX; i++)
        if (w->wc[i].doc_id == doc_id && w->wc[i].len == len && w->wc[i].budget == budget) {
            w->wc[i].used = ++w->wtick;
            return &w->wc[i];
        }
    return NULL;
}

/* A slot for a new entry: a free one or the least recently used. */
static wentry *wc_slot(ew *w) {
    wentry *best = &w->wc[0];
    for (int i = 0; i < WCACHE_MAX; i++) {
        if (!w->wc[i].doc_id) { best = &w->wc[i]; break; }
        if (w->wc[i].used < best->used) best = &w->wc[i];
    }
    free(best->w);
    memset(best, 0, sizeof *best);
    best->used = ++w->wtick;
    return best;
}

static void wc_drop_doc(ew *w, int64_t doc_id) {
    for (int i = 0; i < WCACHE_MAX; i++)
        if (w->wc[i].doc_id == doc_id) { free(w->wc[i].w); memset(&w->wc[i], 0, sizeof w->wc[i]); }
}

/* Tokens of the whole document's prefix (no_think). */
static int whole_tokens(ew *w, job *j, const tasks_doc *d, size_t *n, sd_err *err) {
    wentry *e = wc_find(w, j->doc_id, d->len, 0);
    if (!e) {
        tasks_half h = {0};
        int rc = tasks_build_prefix(w->tok, d, 0, 0, false, &h, err);
        if (rc) return rc;
        e = wc_slot(w);
        e->doc_id = j->doc_id;
        e->len = d->len;
        e->n_whole = h.n;
        tasks_half_clear(&h);
    }
    *n = e->n_whole;
    return 0;
}

/* The windows of the document for a prefix budget (cached per document). */
static int get_windows(ew *w, job *j, const tasks_doc *d, size_t budget, const wentry **out, sd_err *err) {
    wentry *e = wc_find(w, j->doc_id, d->len, budget);
    if (!e) {
        span *v = NULL;
        size_t n = 0;
        int rc = build_windows(w, d, j->sec_start, j->n_sec, budget, &v, &n, err);
        if (rc) return rc;
        e = wc_slot(w);
        e->doc_id = j->doc_id;
        e->len = d->len;
        e->budget = budget;
        e->w = v;
        e->n = n;
        LOG(LOG_DEBUG, "doc %lld: %zu windows of at most %zu tokens", (long long)j->doc_id, n, budget);
    }
    *out = e;
    return 0;
}

/* Prefix tokens a window of ask and extract may hold: the context less room
 * for the question or clause prompt and the answer. The same for every
 * request, so that windows (and their cached prefixes) are shared. */
static size_t ask_window_budget(const ew *w) {
    size_t c = (size_t)w->max_ctx, reserve = c / 4;
    if (reserve < 192) reserve = 192;
    if (reserve > 4096) reserve = 4096;
    return c > reserve + 64 ? c - reserve : c / 2;
}

/* ask/extract: NULL in *ws when the whole document fits a window's budget,
 * else its windows. */
static int plan_windows(ew *w, job *j, const tasks_doc *d, const wentry **ws, sd_err *err) {
    size_t whole = 0, budget = ask_window_budget(w);
    *ws = NULL;
    int rc = whole_tokens(w, j, d, &whole, err);
    if (rc || whole <= budget) return rc;
    return get_windows(w, j, d, budget, ws, err);
}

/* Relevance of a span for score row `row`: each page's score times the
 * share of the page inside the span. */
static double span_score(const job *j, const tasks_doc *d, int row, span sp) {
    if (!j->score || row < 0 || row >= j->n_score || d->n_pages <= 0) return 0;
    const double *sc = j->score + (size_t)row * (size_t)d->n_pages;
    double t = 0;
    for (int p = 1; p <= d->n_pages; p++) {
        size_t ps = (size_t)d->page_start[p - 1], pe = p < d->n_pages ? (size_t)d->page_start[p] : d->len;
        size_t a = ps > sp.start ? ps : sp.start, b = pe < sp.end ? pe : sp.end;
        if (b > a && pe > ps) t += sc[p - 1] * (double)(b - a) / (double)(pe - ps);
    }
    return t;
}

/* The window most relevant for score row `row`; the first when nothing
 * matched. */
static size_t best_window(const job *j, const tasks_doc *d, int row, const wentry *ws, double *score) {
    size_t best = 0;
    double bv = 0;
    for (size_t i = 0; i < ws->n; i++) {
        double v = span_score(j, d, row, ws->w[i]);
        if (v > bv + 1e-12) { bv = v; best = i; }
    }
    if (score) *score = bv;
    return best;
}

/* A window as results show it: pages and character offsets. */
static json_t *window_json(const tasks_doc *d, span sp) {
    int a = tasks_page_of(d, sp.start), z = tasks_page_of(d, sp.end ? sp.end - 1 : 0);
    return json_pack("{s:[i,i], s:I, s:I}", "pages", a, z, "start",
                     (json_int_t)tasks_char_offset(d->text, d->len, sp.start), "end",
                     (json_int_t)tasks_char_offset(d->text, d->len, sp.end));
}

static void add_stats(gen_stats *st, const gen_stats *s2) {
    st->prefill_tokens += s2->prefill_tokens;
    st->decode_tokens += s2->decode_tokens;
    st->decode_s += s2->decode_s;
    if (!st->t_first) st->t_first = s2->t_first;
}

/* A map result stored earlier for this window, or NULL. Borrowed. */
static const char *cached_part(const job *j, span sp, int tokens) {
    size_t i;
    json_t *p;
    json_array_foreach(j->map_cache, i, p) {
        if ((size_t)json_integer_value(json_object_get(p, "start")) == sp.start &&
            (size_t)json_integer_value(json_object_get(p, "end")) == sp.end &&
            json_integer_value(json_object_get(p, "tokens")) == tokens && json_is_string(json_object_get(p, "text")))
            return json_string_value(json_object_get(p, "text"));
    }
    return NULL;
}

static int run_summarize(ew *w, job *j, const tasks_doc *d, gen_stats *st, sd_err *err) {
    const protocol_request *r = j->req;
    const char *style = protocol_style_name(r->style);
    char *msg = tasks_summarize_message(style, r->words), *text = NULL;
    int rc;
    /* Does the whole document fit with the answer? */
    size_t whole = 0;
    prefix_key wk = {j->doc_id, r->opt.think, 0, 0};
    const prefix_entry *pe = prefix_get(w->pc, &wk);
    if (pe) whole = pe->n_tokens;
    else if ((rc = whole_tokens(w, j, d, &whole, err))) { free(msg); return rc; }
    size_t window = (size_t)j->summary_window;
    if (window + 512 + (size_t)j->max_tokens > (size_t)w->max_ctx)
        window = (size_t)w->max_ctx > 512 + (size_t)j->max_tokens + 256 ? (size_t)w->max_ctx - 512 - (size_t)j->max_tokens : 256;
    json_t *res = json_object();
    if (whole + 256 + (size_t)j->max_tokens <= (size_t)w->max_ctx) {
        rc = generate(w, j, d, 0, 0, j->doc_id, msg, j->max_tokens, true, st, &text, err);
        json_object_set_new(res, "mode", json_string("single"));
    } else {
        /* Map over section-aligned windows (paragraphs inside a section
         * bigger than a window), then reduce. A window's map result stored
         * by an earlier summarize (the loop hands them in) is not redone. */
        const wentry *ws = NULL;
        char **parts = NULL;
        size_t np = 0, n_cached = 0;
        int map_tokens = j->max_tokens < 160 ? j->max_tokens : 160;
        json_t *spans = json_array();
        rc = get_windows(w, j, d, window, &ws, err);
        for (size_t i = 0; !rc && i < ws->n; i++) {
            span sp = ws->w[i];
            send_ev(w, j, protocol_event_progress(r->id, "map", i, ws->n));
            json_t *wj = window_json(d, sp);
            const char *hit = cached_part(j, sp, map_tokens);
            char *part = NULL;
            if (hit) {
                part = xstrdup(hit);
                n_cached++;
            } else {
                int a = tasks_page_of(d, sp.start), z = tasks_page_of(d, sp.end ? sp.end - 1 : 0);
                char *mm = tasks_map_message(a, z);
                gen_stats s2 = {.prefix_reused = true};
                rc = generate(w, j, d, sp.start, sp.end, -1, mm, map_tokens, false, &s2, &part, err);
                free(mm);
                add_stats(st, &s2);
                if (!rc) {
                    if (!j->map_new) j->map_new = json_array();
                    json_array_append_new(j->map_new, json_pack("{s:I, s:I, s:i, s:b, s:s}", "start",
                                                                (json_int_t)sp.start, "end", (json_int_t)sp.end,
                                                                "tokens", map_tokens, "think", r->opt.think,
                                                                "text", part ? part : ""));
                }
            }
            json_object_set_new(wj, "cached", json_boolean(hit != NULL));
            json_array_append_new(spans, wj);
            if (rc) { free(part); break; }
            parts = xrealloc(parts, (np + 1) * sizeof *parts);
            parts[np++] = part;
        }
        if (!rc) {
            send_ev(w, j, protocol_event_progress(r->id, "reduce", 0, 1));
            char *rm = tasks_reduce_message(style, r->words, parts, np);
            gen_stats s3 = {0};
            rc = generate(w, j, NULL, 0, 0, -1, rm, j->max_tokens, true, &s3, &text, err);
            free(rm);
            add_stats(st, &s3);
        }
        json_object_set_new(res, "mode", json_string("map_reduce"));
        json_object_set_new(res, "windows", json_integer((json_int_t)np));
        json_object_set_new(res, "window_spans", spans);
        json_object_set_new(res, "map_cached", json_integer((json_int_t)n_cached));
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
    const wentry *ws = NULL;
    span sp = {0, 0};
    json_t *win = NULL;
    int rc = plan_windows(w, j, d, &ws, err);
    if (!rc && ws) {
        double score = 0;
        size_t b = best_window(j, d, 0, ws, &score);
        sp = ws->w[b];
        win = window_json(d, sp);
        json_object_set_new(win, "index", json_integer((json_int_t)b));
        json_object_set_new(win, "of", json_integer((json_int_t)ws->n));
        json_object_set_new(win, "score", json_real(score));
    }
    if (!rc) rc = generate(w, j, d, sp.start, sp.end, j->doc_id, msg, j->max_tokens, true, st, &text, err);
    free(msg);
    if (rc) { json_decref(win); return rc; }
    j->result = json_pack("{s:s, s:o}", "answer", text ? text : "", "pages", tasks_cited_pages(text, d->n_pages));
    if (win) json_object_set_new(j->result, "window", win);
    free(text);
    return 0;
}

typedef struct cat_order { size_t win, cat; } cat_order;
static int cmp_by_window(const void *a, const void *b) {
    const cat_order *x = a, *y = b;
    if (x->win != y->win) return x->win < y->win ? -1 : 1;
    return x->cat < y->cat ? -1 : x->cat > y->cat;
}

static int run_extract(ew *w, job *j, const tasks_doc *d, gen_stats *st, sd_err *err) {
    const protocol_request *r = j->req;
    size_t n = r->n_categories ? r->n_categories : CUAD_N_CATEGORIES;
    json_t **slot = xcalloc(n, sizeof *slot);
    size_t *win = xcalloc(n, sizeof *win);
    cat_order *order = xmalloc(n * sizeof *order);
    const wentry *ws = NULL;
    int rc = plan_windows(w, j, d, &ws, err);
    bool all_reused = true;
    /* each category reads its most relevant window; categories of one window
     * run together so that its prefix is built once */
    for (size_t i = 0; i < n; i++) {
        if (!rc && ws) win[i] = best_window(j, d, (int)i, ws, NULL);
        order[i] = (cat_order){win[i], i};
    }
    qsort(order, n, sizeof *order, cmp_by_window);
    for (size_t k = 0; k < n && !rc; k++) {
        size_t i = order[k].cat;
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
        span sp = ws ? ws->w[win[i]] : (span){0, 0};
        send_ev(w, j, protocol_event_progress(r->id, "decode", k, n));
        char *msg = tasks_extract_message(name, desc), *text = NULL;
        gen_stats s2 = {.prefix_reused = true};
        rc = generate(w, j, d, sp.start, sp.end, j->doc_id, msg, j->max_tokens, false, &s2, &text, err);
        free(msg);
        add_stats(st, &s2);
        st->prefix_tokens = s2.prefix_tokens;
        st->any_prefix = true;
        if (!s2.prefix_reused) all_reused = false;
        if (rc) break;
        char *q = tasks_answer_quote(text);
        json_t *quotes = json_array();
        if (q) {
            size_t s = 0, e = 0;
            int page = 0;
            int ok = tasks_locate(d, q, &s, &e, &page);
            json_t *jq = json_pack("{s:s, s:b}", "text", q, "verified", ok);
            if (ok) {
                size_t off[2] = {s, e};
                tasks_char_offsets(d->text, d->len, off, 2);
                json_object_set_new(jq, "page", json_integer(page));
                json_object_set_new(jq, "start", json_integer((json_int_t)off[0]));
                json_object_set_new(jq, "end", json_integer((json_int_t)off[1]));
            } else {
                json_object_set_new(jq, "page", json_null());
                json_object_set_new(jq, "start", json_null());
                json_object_set_new(jq, "end", json_null());
            }
            json_array_append_new(quotes, jq);
        }
        slot[i] = json_pack("{s:s, s:b, s:o, s:s}", "category", name, "found", q != NULL, "quotes", quotes, "answer",
                            text ? text : "");
        if (ws) json_object_set_new(slot[i], "window", json_integer((json_int_t)win[i]));
        free(q);
        free(text);
    }
    st->prefix_reused = all_reused;
    json_t *clauses = json_array();
    for (size_t i = 0; i < n; i++)
        if (slot[i]) json_array_append_new(clauses, slot[i]);
    free(slot);
    if (rc) { json_decref(clauses); free(win); free(order); return rc; }
    json_t *pages = json_array();
    j->result = json_pack("{s:o, s:o}", "clauses", clauses, "pages", pages);
    if (ws) {
        json_t *wa = json_array();
        for (size_t i = 0; i < ws->n; i++) json_array_append_new(wa, window_json(d, ws->w[i]));
        json_object_set_new(j->result, "windows", wa);
    }
    free(win);
    free(order);
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

/* Sends the engine's state: model, KV pool, prefix cache entries, and the
 * running job (id, op, stage, progress) or null. */
static void send_status(ew *w) {
    int used = 0, total = 0, bs = 0;
    engine_kv_usage(w->e, &used, &total, &bs);
    json_t *entries = json_array();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double unow = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    for (size_t i = 0; i < prefix_count(w->pc); i++) {
        const prefix_entry *p = prefix_at(w->pc, i);
        json_t *e = json_pack("{s:I, s:b, s:I, s:I, s:s, s:I, s:f, s:f, s:b}", "doc", (json_int_t)p->key.doc_id,
                              "think", p->key.think, "tokens", (json_int_t)p->n_tokens, "bytes", (json_int_t)p->bytes,
                              "tier", "device", "hits", (json_int_t)p->hits, "last_used", p->used_at, "idle_s",
                              unow - p->used_at, "window", p->key.end != 0);
        if (p->first_page) json_object_set_new(e, "pages", json_pack("[i,i]", p->first_page, p->last_page));
        json_array_append_new(entries, e);
    }
    json_t *running = json_null();
    if (w->cur) {
        job *j = w->cur;
        running = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:f}", "id", j->req->id, "op",
                            protocol_op_name(j->req->op), "doc", (json_int_t)j->doc_id, "stage",
                            w->stage ? w->stage : "start", "done", (json_int_t)w->prog_done, "total",
                            (json_int_t)w->prog_total, "decode_tokens", (json_int_t)w->decoded, "elapsed_ms",
                            (sd_now() - j->t_start) * 1e3);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:{s:i, s:i, s:i}, s:{s:I, s:I, s:I, s:o}, "
                          "s:{s:I, s:I, s:I}, s:I, s:o, s:f}",
                          "model", w->s->model, "backend", engine_backend_name(w->e), "backend_reason",
                          engine_backend_reason(w->e), "max_ctx", w->max_ctx,
                          "kv", "used_blocks", used, "total_blocks", total, "block_size", bs,
                          "cache", "budget_bytes", (json_int_t)prefix_budget_bytes(w->pc), "used_bytes",
                          (json_int_t)prefix_used_bytes(w->pc), "evictions", (json_int_t)prefix_evictions(w->pc),
                          "entries", entries,
                          "prompt_checks", "ok", (json_int_t)w->checks_ok, "skipped", (json_int_t)w->checks_skipped,
                          "failed", (json_int_t)w->checks_failed, "served", (json_int_t)w->served,
                          "running", running, "engine_state_at", unow);
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
    w->cur = j;
    w->stage = "start";
    w->prog_done = w->prog_total = w->decoded = 0;
    publish(w, true);
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
    w->cur = NULL;
    w->stage = NULL;
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
    ep.device = (int)s->device;
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
            wc_drop_doc(&w, j->doc_id);
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
    for (int i = 0; i < WCACHE_MAX; i++) free(w.wc[i].w);
    prefix_cache_free(w.pc);
    free(w.logits);
    tokenizer_free(w.tok);
    engine_free(w.e);
    zmq_close(w.sock);
    return NULL;
}
