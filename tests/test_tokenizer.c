/* test_tokenizer.c - tokenizer unit tests on the SmolLM3 fixture (built from the
 * pinned Llama-3 tokenizer.json by tools/mk-tokenizer-fixture.py) and, with
 * --ref DIR --list FILE (tests/t_tokenizer_ref.sh), id-for-id comparison with
 * Hugging Face tokenizers' output for every listed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest.h"
#include "test.h"
#include "tokenizer.h"

static const char *FIXTURE = "tests/fixtures/gen/tokenizer.json";

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int encode(tokenizer *t, const char *s, size_t n, int special, int32_t **ids, size_t *k) {
    sd_err err = {0};
    int rc = tokenizer_encode(t, s, n, special, ids, k, &err);
    if (rc) fprintf(stderr, "encode: %s\n", err.msg);
    return rc;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb, const char *what) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    if (i == na && na == nb) return 1;
    fprintf(stderr, "  %s: first difference at index %zu (ours %zu ids, ref %zu): ours %d ref %d\n", what, i, na,
            nb, i < na ? a[i] : -1, i < nb ? b[i] : -1);
    return 0;
}

static int valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char b = u[i];
        int need;
        unsigned lo = 0x80, hi = 0xBF;
        if (b < 0x80) { i++; continue; }
        if (b < 0xC2) return 0;
        if (b < 0xE0) need = 1;
        else if (b < 0xF0) { need = 2; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
        else if (b < 0xF5) { need = 3; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
        else return 0;
        for (int k = 1; k <= need; k++) {
            if (i + (size_t)k >= n) return 0;
            unsigned c = u[i + k];
            if (k > 1) { lo = 0x80; hi = 0xBF; }
            if (c < lo || c > hi) return 0;
        }
        i += (size_t)need + 1;
    }
    return 1;
}

static char *slurp(const char *path, size_t *len) {
    char *p = NULL;
    sd_err err;
    if (sd_read_file(path, (size_t)1 << 30, &p, len, &err)) return NULL;
    return p;
}

static int32_t *read_ids(const char *path, size_t *n) {
    size_t len, cap = 1024;
    char *s = slurp(path, &len);
    if (!s) return NULL;
    int32_t *ids = xmalloc(cap * sizeof *ids);
    *n = 0;
    for (char *p = s;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (*n == cap) ids = xrealloc(ids, (cap *= 2) * sizeof *ids);
        ids[(*n)++] = (int32_t)v;
        p = end;
    }
    free(s);
    return ids;
}

/* Streams ids through a tokenizer_stream with output capacity cap; returns the
 * concatenated text (malloc'd) and checks every chunk is whole UTF-8. */
static char *stream_all(tokenizer *t, const int32_t *ids, size_t n, int skip, size_t cap, int *chunks_ok,
                        size_t *outlen) {
    tokenizer_stream *s = tokenizer_stream_new(t);
    tokenizer_stream_set_skip_special(s, skip);
    size_t total = 0, tcap = 256;
    char *out = xmalloc(tcap);
    char *buf = xmalloc(cap);
    *chunks_ok = 1;
    for (size_t i = 0; i <= n; i++) {
        for (;;) {
            size_t k = i < n ? tokenizer_stream_put(s, ids[i], buf, cap) : tokenizer_stream_flush(s, buf, cap);
            if (!valid_utf8(buf, k)) *chunks_ok = 0;
            if (total + k + 1 > tcap) out = xrealloc(out, tcap = (total + k + 1) * 2);
            memcpy(out + total, buf, k);
            total += k;
            if (i < n || k == 0) break;
        }
        /* with a tiny cap, text may stay queued: drain it through put(-1) */
        if (i < n) {
            size_t k;
            while ((k = tokenizer_stream_put(s, -1, buf, cap)) > 0) {
                if (!valid_utf8(buf, k)) *chunks_ok = 0;
                if (total + k + 1 > tcap) out = xrealloc(out, tcap = (total + k + 1) * 2);
                memcpy(out + total, buf, k);
                total += k;
            }
        }
    }
    out[total] = 0;
    *outlen = total;
    free(buf);
    tokenizer_stream_free(s);
    return out;
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(s, f); fclose(f); }
}

static void test_load_errors(void) {
    sd_err err = {0};
    char dir[] = "/tmp/test_tokenizer_XXXXXX";
    char path[256];
    CHECK(tokenizer_new("/nonexistent/tokenizer.json", &err) == NULL);
    CHECK_EQ(err.code, SD_ENOTFOUND);
    if (!mkdtemp(dir)) { CHECK(0); return; }
    snprintf(path, sizeof path, "%s/t.json", dir);
    struct { const char *json; int code; } cases[] = {
        {"{\"model\": ", SD_EFORMAT},
        {"[1, 2, 3]", SD_ENOTSUP},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", SD_ENOTSUP},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"ByteLevel\"},"
         " \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", SD_ENOTSUP},
        /* ByteLevel alone is fine syntactically, but 255 bytes lack a token */
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"ByteLevel\"},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", SD_EFORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -5}, \"merges\": []}, \"decoder\": {\"type\": \"ByteLevel\"},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", SD_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].json);
        err.code = 0;
        tokenizer *t = tokenizer_new(path, &err);
        CHECK_MSG(t == NULL && err.code == cases[i].code, "case %zu: code %d (%s)", i, err.code, err.msg);
        tokenizer_free(t);
    }
    /* a truncated real fixture */
    size_t len;
    char *full = slurp(FIXTURE, &len);
    if (full) {
        full[len / 3] = 0;
        write_file(path, full);
        err.code = 0;
        CHECK(tokenizer_new(path, &err) == NULL);
        CHECK_EQ(err.code, SD_EFORMAT);
        free(full);
    }
    unlink(path);
    rmdir(dir);
}

static void test_units(tokenizer *t) {
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_EQ(tokenizer_vocab_size(t), 128256);
    CHECK_EQ(tokenizer_token_id(t, "<|im_start|>"), 128011);
    CHECK_EQ(tokenizer_token_id(t, "<|im_end|>"), 128012);
    CHECK_EQ(tokenizer_token_id(t, "<think>"), 128002);
    CHECK_EQ(tokenizer_token_id(t, "</think>"), 128003);
    CHECK_EQ(tokenizer_token_id(t, "<|finetune_right_pad_id|>"), 128004);
    CHECK_EQ(tokenizer_token_id(t, "<tool_call>"), 128015);
    CHECK_EQ(tokenizer_token_id(t, "</code>"), 128018);
    CHECK_EQ(tokenizer_token_id(t, "<|begin_of_text|>"), 128000);
    CHECK_EQ(tokenizer_token_id(t, "no such token string"), -1);
    CHECK(tokenizer_is_special(t, 128012));
    CHECK(!tokenizer_is_special(t, 1917));

    /* Llama-3's well-known ids for "Hello world" (no BOS is added). */
    CHECK(encode(t, "Hello world", 11, 1, &ids, &n) == 0);
    CHECK_EQ(n, 2);
    if (n == 2) { CHECK_EQ(ids[0], 9906); CHECK_EQ(ids[1], 1917); }
    int32_t the = tokenizer_token_id(t, "\xc4\xa0the"); /* "Ġthe" */
    CHECK(the >= 0);
    free(ids);
    CHECK(encode(t, " the", 4, 1, &ids, &n) == 0);
    CHECK(n == 1 && ids[0] == the);
    const char *tb;
    size_t tl;
    CHECK(tokenizer_token_bytes(t, the, &tb, &tl) == 0 && tl == 4 && memcmp(tb, " the", 4) == 0);
    CHECK_EQ(tokenizer_token_bytes(t, 999999, &tb, &tl), SD_ENOTFOUND);
    free(ids);

    /* special tokens parsed or not */
    const char *sp = "<|im_start|>user\nHi<|im_end|>";
    CHECK(encode(t, sp, strlen(sp), 1, &ids, &n) == 0);
    CHECK(n >= 4 && ids[0] == 128011 && ids[n - 1] == 128012);
    char *d = tokenizer_decode(t, ids, n, 0);
    CHECK(d && strcmp(d, sp) == 0);
    free(d);
    d = tokenizer_decode(t, ids, n, 1);
    CHECK(d && strcmp(d, "user\nHi") == 0);
    free(d);
    free(ids);
    CHECK(encode(t, sp, strlen(sp), 0, &ids, &n) == 0);
    int any_special = 0;
    for (size_t i = 0; i < n; i++) any_special |= ids[i] >= 128000;
    CHECK(!any_special && n > 8);
    d = tokenizer_decode(t, ids, n, 1);
    CHECK(d && strcmp(d, sp) == 0);
    free(d);
    free(ids);

    /* empty input and NULL with length 0 */
    CHECK(encode(t, "", 0, 1, &ids, &n) == 0 && n == 0);
    free(ids);
    CHECK(encode(t, NULL, 0, 1, &ids, &n) == 0 && n == 0);
    free(ids);
    sd_err err = {0};
    CHECK_EQ(tokenizer_encode(t, NULL, 5, 1, &ids, &n, &err), SD_EINVAL);

    /* invalid UTF-8 is tokenized as U+FFFD */
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK(encode(t, "x\xff" "y\xe2\x82", 5, 1, &a, &na) == 0);
    CHECK(encode(t, "x\xef\xbf\xbdy\xef\xbf\xbd", 8, 1, &b, &nb) == 0);
    CHECK(ids_equal(a, na, b, nb, "invalid utf-8"));
    free(a);
    free(b);

    /* decode: a lone UTF-8 lead byte becomes U+FFFD, unknown ids are skipped */
    int32_t e2 = tokenizer_token_id(t, "\xc3\xa2"); /* byte 0xE2 spelled 'â' */
    int32_t bad[] = {9906, e2, -7, 5000000, 1917};
    d = tokenizer_decode(t, bad, 5, 0);
    CHECK(d && strcmp(d, "Hello\xef\xbf\xbd world") == 0);
    free(d);
}

/* Streaming equals whole decoding, for random id sequences and several caps. */
static void test_stream(tokenizer *t) {
    unsigned x = 7;
    int ok_all = 1, chunks_all = 1;
    for (int k = 0; k < 300; k++) {
        int32_t ids[64];
        size_t n = 1 + (size_t)(k % 60);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            unsigned r = (x >> 8) % 10;
            ids[i] = r < 5 ? (int32_t)((x >> 4) % 128256) : r < 8 ? (int32_t)(100 + (x >> 3) % 156)
                                                                    : (int32_t)(128000 + (x >> 5) % 19);
        }
        for (int skip = 0; skip < 2; skip++) {
            size_t wl, gl;
            char *want = tokenizer_decode_len(t, ids, n, skip, &wl);
            size_t caps[] = {4, 5, 9, 4096};
            for (size_t c = 0; c < 4; c++) {
                int chunks_ok;
                char *got = stream_all(t, ids, n, skip, caps[c], &chunks_ok, &gl);
                if (!want || wl != gl || memcmp(want, got, wl) != 0) ok_all = 0;
                if (!chunks_ok) chunks_all = 0;
                free(got);
            }
            free(want);
        }
    }
    CHECK_MSG(ok_all, "stream output differs from tokenizer_decode");
    CHECK_MSG(chunks_all, "a stream chunk was not whole UTF-8");
}

/* Random byte soup (ASCII, UTF-8 pieces, invalid bytes, special-token fragments):
 * encoding always succeeds, ids are in range, valid input round-trips, and
 * invalid input encodes like its U+FFFD-repaired decoding. */
static void test_soup(tokenizer *t) {
    static const char *pieces[] = {"a", "Z", " ", "  ", "\n", "\r\n", "\t", "'", "'s", "'LL", "1", "123", "\xc3\xa9",
                                   "\xe2\x80\x8d", "\xf0\x9f\x98\x80", "\xe6\x97\xa5", "\xc2\xa0", "<|im_end|>",
                                   "<|im_", "end|>", "<think>", ".", "...", "\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80",
                                   "\x80", "\xf4\x90\x80\x80", "\xd9\x85", "\xcc\x81", "0"};
    unsigned x = 99;
    int ok_range = 1, ok_round = 1, ok_repair = 1, ok_rc = 1;
    char buf[512];
    for (int it = 0; it < 3000; it++) {
        size_t n = 0;
        int parts = 1 + it % 40;
        for (int k = 0; k < parts; k++) {
            x = x * 1103515245u + 12345u;
            const char *p = pieces[(x >> 8) % (sizeof pieces / sizeof pieces[0])];
            size_t l = strlen(p);
            if (n + l >= sizeof buf) break;
            memcpy(buf + n, p, l);
            n += l;
        }
        int32_t *ids = NULL, *ids2 = NULL;
        size_t ni = 0, ni2 = 0;
        int special = it & 1;
        if (encode(t, buf, n, special, &ids, &ni)) { ok_rc = 0; continue; }
        for (size_t i = 0; i < ni; i++)
            if (ids[i] < 0 || (size_t)ids[i] >= tokenizer_vocab_size(t)) ok_range = 0;
        size_t dl;
        char *d = tokenizer_decode_len(t, ids, ni, 0, &dl);
        if (valid_utf8(buf, n)) {
            if (!d || dl != n || memcmp(d, buf, n) != 0) ok_round = 0;
        } else if (d) {
            /* decoding the repaired text gives the repaired text back */
            if (encode(t, d, dl, special, &ids2, &ni2) || !ids_equal(ids, ni, ids2, ni2, "repair")) ok_repair = 0;
            free(ids2);
        }
        free(d);
        free(ids);
    }
    CHECK(ok_rc);
    CHECK(ok_range);
    CHECK_MSG(ok_round, "decode(encode(x)) != x on valid soup");
    CHECK_MSG(ok_repair, "invalid UTF-8 does not encode like its repaired text");
}

static void test_reference(tokenizer *t, tokenizer *tp, const char *ref, const char *list) {
    size_t llen;
    char *lst = slurp(list, &llen);
    CHECK_MSG(lst != NULL, "cannot read %s", list);
    if (!lst) return;
    int k = 0;
    char path[4096];
    size_t total_bytes = 0, total_ids = 0;
    for (char *line = strtok(lst, "\n"); line; line = strtok(NULL, "\n"), k++) {
        size_t len;
        char *text = slurp(line, &len);
        CHECK_MSG(text != NULL, "cannot read %s", line);
        if (!text) continue;
        total_bytes += len;
        const char *base = strrchr(line, '/') ? strrchr(line, '/') + 1 : line;
        for (int special = 1; special >= 0; special--) {
            snprintf(path, sizeof path, "%s/%d.%s", ref, k, special ? "ids" : "nsids");
            size_t nr = 0, n = 0;
            int32_t *r = read_ids(path, &nr), *ids = NULL;
            CHECK_MSG(r != NULL, "missing %s", path);
            if (!r) continue;
            CHECK(encode(t, text, len, special, &ids, &n) == 0);
            char what[512];
            snprintf(what, sizeof what, "%s (parse_special=%d)", base, special);
            CHECK_MSG(ids_equal(ids, n, r, nr, what), "ids differ from HF tokenizers: %s", what);
            total_ids += n;
            if (tp) {
                int32_t *ids2 = NULL;
                size_t n2 = 0;
                CHECK(encode(tp, text, len, special, &ids2, &n2) == 0);
                CHECK_MSG(ids_equal(ids2, n2, r, nr, what), "pairs-format merges: %s", what);
                free(ids2);
            }
            if (valid_utf8(text, len)) {
                size_t dl = 0;
                char *d = tokenizer_decode_len(t, ids, n, 0, &dl);
                CHECK_MSG(d && dl == len && memcmp(d, text, len) == 0, "decode(encode(x)) != x: %s", what);
                free(d);
            }
            free(ids);
            free(r);
        }
        free(text);
    }
    printf("reference: %d inputs, %zu bytes, %zu ids compared (x2 modes)\n", k, total_bytes, total_ids);
    free(lst);
    int nd = 0;
    for (;; nd++) {
        snprintf(path, sizeof path, "%s/dec_%d.ids", ref, nd);
        if (!file_exists(path)) break;
        size_t n;
        int32_t *ids = read_ids(path, &n);
        for (int skip = 0; skip < 2; skip++) {
            snprintf(path, sizeof path, "%s/dec_%d%s.txt", ref, nd, skip ? ".skip" : "");
            size_t wl, gl, sl;
            char *want = slurp(path, &wl);
            char *got = tokenizer_decode_len(t, ids, n, skip, &gl);
            CHECK_MSG(want && got && wl == gl && memcmp(want, got, wl) == 0, "decode differs from HF: %s", path);
            int chunks_ok;
            char *st = stream_all(t, ids, n, skip, 16, &chunks_ok, &sl);
            CHECK_MSG(want && wl == sl && memcmp(want, st, wl) == 0 && chunks_ok, "stream decode differs from HF: %s",
                      path);
            free(st);
            free(want);
            free(got);
        }
        free(ids);
    }
    printf("reference: %d decode cases\n", nd);
}

/* --extract OUTDIR FILE...: writes the body text ingest extracts from each
 * document to OUTDIR/<basename>.txt (for the reference run); documents ingest
 * rejects (encrypted, broken) are skipped. Prints how many were written. */
static int extract_texts(const char *outdir, int n, char **files) {
    ingest_params p = ingest_params_default();
    p.timeout_s = 30;
    int written = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        ingest_doc *d = NULL;
        sd_err err = {0};
        if (ingest_file(files[i], &p, &d, &err) != 0 || !d || d->text_len == 0) {
            skipped++;
            ingest_doc_free(d);
            continue;
        }
        const char *base = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.txt", outdir, base);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(d->text, 1, d->text_len, f);
            fclose(f);
            written++;
        }
        ingest_doc_free(d);
    }
    printf("extract: %d documents written, %d skipped (ingest refused them)\n", written, skipped);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--extract")) return extract_texts(argv[2], argc - 3, argv + 3);
    const char *ref = NULL, *list = NULL, *pairs = NULL, *fixture = FIXTURE;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ref")) ref = argv[i + 1];
        else if (!strcmp(argv[i], "--list")) list = argv[i + 1];
        else if (!strcmp(argv[i], "--pairs")) pairs = argv[i + 1];
        else if (!strcmp(argv[i], "--tokenizer")) fixture = argv[i + 1];
    }
    FIXTURE = fixture;
    if (!file_exists(fixture) &&
        system("/usr/bin/python3 tools/mk-tokenizer-fixture.py --quiet >/dev/null 2>&1") != 0) {
        SKIP("tokenizer fixture unavailable (tests/node/node_modules absent: run npm ci in tests/node)");
        return test_done();
    }
    sd_err err = {0};
    double t0 = sd_now();
    tokenizer *t = tokenizer_new(fixture, &err);
    CHECK_MSG(t != NULL, "tokenizer_new: %s", err.msg);
    if (!t) return test_done();
    printf("load: %.0f ms\n", (sd_now() - t0) * 1e3);
    test_load_errors();
    test_units(t);
    test_stream(t);
    test_soup(t);
    if (ref && list) {
        tokenizer *tp = NULL;
        if (pairs) {
            tp = tokenizer_new(pairs, &err);
            CHECK_MSG(tp != NULL, "pairs fixture: %s", err.msg);
        }
        test_reference(t, tp, ref, list);
        tokenizer_free(tp);
    }
    tokenizer_free(t);
    return test_done();
}
