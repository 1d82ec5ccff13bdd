/* tokenizer.c - byte-level BPE from a Hugging Face tokenizer.json: added-token
 * splitting, a hand-written matcher for the Llama-3 pre-tokenizer regex over a
 * generated Unicode table (tok_unicode.c), heap-ordered BPE identical to HF's,
 * lossy UTF-8 handling and a streaming decoder. */
#include "tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tok_unicode.h"

/* The only Split regex implemented (Llama-3 / SmolLM3). */
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

#define MAX_IDS (1u << 24)

enum { TF_PRESENT = 1, TF_ADDED = 2, TF_SPECIAL = 4 };

typedef struct added_tok {
    char *content;   /* raw UTF-8 as written in tokenizer.json */
    size_t len;
    int32_t id;
    int special;
    int normalized;
    int next;        /* next added token with the same first byte, -1 ends */
} added_tok;

typedef struct odd_tok { /* a vocab entry with characters outside the byte table */
    char *str;
    int32_t id;
} odd_tok;

typedef struct merge_slot {
    uint64_t key;  /* (left id << 32 | right id) + 1; 0 empty */
    uint32_t rank;
    int32_t nid;
} merge_slot;

typedef struct vocab_slot {
    uint32_t tag;  /* high bits of the hash */
    int32_t id;    /* -1 empty */
    uint32_t off;  /* the id's bytes: bytes + off, len */
    uint32_t len;
} vocab_slot;

struct tokenizer {
    size_t n_ids;
    uint8_t *flags;       /* (n_ids) TF_* */
    uint32_t *off;        /* (n_ids + 1) offsets of each id's decoded bytes */
    char *bytes;          /* decoded bytes of all ids, concatenated */
    vocab_slot *vh;       /* (vh_mask + 1) bytes -> id hash of encodable vocab, id -1 empty */
    size_t vh_mask;
    merge_slot *mh;       /* (mh_mask + 1) open-addressing merge table */
    size_t mh_mask;
    int ignore_merges;
    int use_regex;
    int32_t byte_id[256];
    added_tok *added;
    size_t n_added;
    int added_head[256];  /* first added token starting with each byte, -1 none */
    odd_tok *odd;
    size_t n_odd;
    int16_t cp_to_byte[324]; /* GPT-2 byte-level map, reversed; -1 unmapped */
    uint16_t byte_to_cp[256];
};

/* ---------- hashing ---------- */

static uint64_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int32_t vocab_find(const tokenizer *t, const uint8_t *s, size_t n) {
    uint64_t h = hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = h & t->vh_mask;
    for (;;) {
        const vocab_slot *v = &t->vh[i];
        if (v->id < 0) return -1;
        if (v->tag == tag && v->len == n && memcmp(t->bytes + v->off, s, n) == 0) return v->id;
        i = (i + 1) & t->vh_mask;
    }
}

static int merge_find(const tokenizer *t, int32_t a, int32_t b, uint32_t *rank, int32_t *nid) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = hash_u64(key) & t->mh_mask;
    for (;;) {
        const merge_slot *m = &t->mh[i];
        if (m->key == 0) return 0;
        if (m->key == key) {
            *rank = m->rank;
            *nid = m->nid;
            return 1;
        }
        i = (i + 1) & t->mh_mask;
    }
}

/* ---------- UTF-8 ---------- */

/* Examines the sequence at s[0..avail). Returns its length when valid; otherwise
 * 0 with *bad = length of the maximal invalid subpart and *incomplete = 1 when
 * that subpart is a valid prefix cut short by the end of the data. */
static int utf8_scan(const uint8_t *s, size_t avail, size_t *bad, int *incomplete) {
    uint8_t b0 = s[0];
    *incomplete = 0;
    if (b0 < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b0 < 0xC2) { *bad = 1; return 0; }
    else if (b0 < 0xE0) need = 1;
    else if (b0 < 0xF0) {
        need = 2;
        if (b0 == 0xE0) lo = 0xA0;
        else if (b0 == 0xED) hi = 0x9F;
    } else if (b0 < 0xF5) {
        need = 3;
        if (b0 == 0xF0) lo = 0x90;
        else if (b0 == 0xF4) hi = 0x8F;
    } else { *bad = 1; return 0; }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= avail) { *bad = (size_t)k; *incomplete = 1; return 0; }
        uint8_t c = s[k];
        if (k > 1) { lo = 0x80; hi = 0xBF; }
        if (c < lo || c > hi) { *bad = (size_t)k; return 0; }
    }
    return need + 1;
}

/* Decodes the code point at s (valid UTF-8) and its length. */
static inline uint32_t cp_at(const uint8_t *s, int *len) {
    uint8_t b = s[0];
    if (b < 0x80) { *len = 1; return b; }
    if (b < 0xE0) { *len = 2; return ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F); }
    if (b < 0xF0) {
        *len = 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

static const uint8_t REPL[3] = {0xEF, 0xBF, 0xBD};

/* Growable byte buffer with checked allocation. */
typedef struct bbuf {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static int bbuf_reserve(bbuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) {
        if (cap > SIZE_MAX / 2) return SD_ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return SD_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int bbuf_put(bbuf *b, const void *s, size_t n) {
    if (n == 0) return 0;
    if (bbuf_reserve(b, n)) return SD_ENOMEM;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* Appends s[0..n) to out with invalid sequences replaced by U+FFFD. When final is
 * 0 a trailing incomplete sequence is not consumed: returns its start offset in
 * *used. Returns 0 or SD_ENOMEM. */
static int utf8_lossy(const uint8_t *s, size_t n, int final, bbuf *out, size_t *used) {
    size_t i = 0, run = 0; /* run: start of the pending valid stretch */
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t bad;
        int inc;
        int l = utf8_scan(s + i, n - i, &bad, &inc);
        if (l > 0) { i += (size_t)l; continue; }
        if (bbuf_put(out, s + run, i - run)) return SD_ENOMEM;
        if (inc && !final) { *used = i; return 0; }
        if (bbuf_put(out, REPL, 3)) return SD_ENOMEM;
        i += bad;
        run = i;
    }
    if (bbuf_put(out, s + run, i - run)) return SD_ENOMEM;
    *used = n;
    return 0;
}

/* ---------- loading ---------- */

static void init_byte_map(tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 324; i++) t->cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        uint16_t cp = keep ? (uint16_t)b : (uint16_t)(256 + n++);
        t->byte_to_cp[b] = cp;
        t->cp_to_byte[cp] = (int16_t)b;
    }
}

/* Byte-level decoding of a tokenizer.json token string into out (capacity at
 * least strlen(s)). Returns the byte count, or -1 if a character is outside the
 * byte table (HF then uses the raw UTF-8 for decoding; the token cannot be
 * produced by encoding). */
static long bytelevel_decode(const tokenizer *t, const char *s, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        size_t bad;
        int inc;
        int l = utf8_scan((const uint8_t *)s + i, n - i, &bad, &inc);
        if (l <= 0) return -1;
        int cl;
        uint32_t cp = cp_at((const uint8_t *)s + i, &cl);
        if (cp >= 324 || t->cp_to_byte[cp] < 0) return -1;
        out[o++] = (uint8_t)t->cp_to_byte[cp];
        i += (size_t)l;
    }
    return (long)o;
}

static int is_null_or_absent(json_t *v) { return !v || json_is_null(v); }

static int check_pre_tokenizer(tokenizer *t, json_t *pt, sd_err *err) {
    json_t *items[2] = {NULL, NULL};
    size_t n = 0;
    const char *type = json_string_value(json_object_get(pt, "type"));
    if (!type) return sd_seterr(err, SD_ENOTSUP, "tokenizer_new: pre_tokenizer without type");
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(pt, "pretokenizers");
        if (!json_is_array(arr) || json_array_size(arr) < 1 || json_array_size(arr) > 2)
            return sd_seterr(err, SD_ENOTSUP, "tokenizer_new: unsupported pre_tokenizer Sequence");
        n = json_array_size(arr);
        for (size_t i = 0; i < n; i++) items[i] = json_array_get(arr, i);
    } else {
        items[0] = pt;
        n = 1;
    }
    int saw_split = 0, saw_bl = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ty = json_string_value(json_object_get(items[i], "type"));
        if (ty && strcmp(ty, "Split") == 0 && i == 0) {
            const char *re = json_string_value(json_object_get(json_object_get(items[i], "pattern"), "Regex"));
            const char *beh = json_string_value(json_object_get(items[i], "behavior"));
            if (!re || strcmp(re, LLAMA3_PATTERN) != 0 || !beh || strcmp(beh, "Isolated") != 0 ||
                json_is_true(json_object_get(items[i], "invert")))
                return sd_seterr(err, SD_ENOTSUP,
                                 "tokenizer_new: only the Llama-3 Split regex (Isolated) is implemented");
            saw_split = 1;
        } else if (ty && strcmp(ty, "ByteLevel") == 0 && i == n - 1) {
            if (json_is_true(json_object_get(items[i], "add_prefix_space")) ||
                json_is_true(json_object_get(items[i], "use_regex")))
                return sd_seterr(err, SD_ENOTSUP,
                                 "tokenizer_new: ByteLevel with add_prefix_space/use_regex is not implemented");
            saw_bl = 1;
        } else {
            return sd_seterr(err, SD_ENOTSUP, "tokenizer_new: unsupported pre_tokenizer %s", ty ? ty : "?");
        }
    }
    if (!saw_bl) return sd_seterr(err, SD_ENOTSUP, "tokenizer_new: pre_tokenizer lacks ByteLevel");
    t->use_regex = saw_split;
    return 0;
}

/* Looks a vocab token up by its tokenizer.json spelling. */
static int32_t vocab_id_of_string(const tokenizer *t, const char *s, size_t n, uint8_t *scratch) {
    long bl = bytelevel_decode(t, s, n, scratch);
    if (bl >= 0) return vocab_find(t, scratch, (size_t)bl);
    for (size_t i = 0; i < t->n_odd; i++)
        if (strlen(t->odd[i].str) == n && memcmp(t->odd[i].str, s, n) == 0) return t->odd[i].id;
    return -1;
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

tokenizer *tokenizer_new(const char *path, sd_err *err) {
    tokenizer *t = NULL;
    json_t *root = NULL;
    uint8_t *scratch = NULL;
    char **json_str = NULL; /* (n_ids) tokenizer.json spelling of each id, borrowed */
    size_t *json_len = NULL;
    int rc = 0;
    json_error_t je;

    if (!path) { sd_seterr(err, SD_EINVAL, "tokenizer_new: NULL path"); return NULL; }
    {
        /* Whole-file read then json_loadb: json_load_file reads by getc, 2x slower. */
        char *buf = NULL;
        size_t blen = 0;
        int frc = sd_read_file(path, (size_t)1 << 31, &buf, &blen, err);
        if (frc) return NULL;
        root = json_loadb(buf, blen, JSON_REJECT_DUPLICATES, &je);
        free(buf);
        if (!root) {
            sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s:%d: %s", path, je.line, je.text);
            return NULL;
        }
    }
    t = xcalloc(1, sizeof *t);
    init_byte_map(t);

    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model) || !json_is_object(vocab) || !json_is_array(merges) ||
        (mtype && strcmp(mtype, "BPE") != 0)) {
        rc = sd_seterr(err, SD_ENOTSUP, "tokenizer_new: %s: model is not BPE with vocab and merges", path);
        goto fail;
    }
    json_t *dropout = json_object_get(model, "dropout");
    const char *cont = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    const char *eow = json_string_value(json_object_get(model, "end_of_word_suffix"));
    if ((!is_null_or_absent(dropout) && json_number_value(dropout) != 0.0) ||
        json_is_true(json_object_get(model, "byte_fallback")) || (cont && *cont) || (eow && *eow)) {
        rc = sd_seterr(err, SD_ENOTSUP, "tokenizer_new: %s: BPE dropout/byte_fallback/affixes not implemented", path);
        goto fail;
    }
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    if (!is_null_or_absent(json_object_get(root, "normalizer"))) {
        rc = sd_seterr(err, SD_ENOTSUP, "tokenizer_new: %s: normalizers are not implemented", path);
        goto fail;
    }
    json_t *dec = json_object_get(root, "decoder");
    const char *dtype = json_string_value(json_object_get(dec, "type"));
    if (!dtype || strcmp(dtype, "ByteLevel") != 0) {
        rc = sd_seterr(err, SD_ENOTSUP, "tokenizer_new: %s: decoder must be ByteLevel", path);
        goto fail;
    }
    if ((rc = check_pre_tokenizer(t, json_object_get(root, "pre_tokenizer"), err))) goto fail;

    /* ids */
    json_t *added = json_object_get(root, "added_tokens");
    if (!is_null_or_absent(added) && !json_is_array(added)) {
        rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: added_tokens is not an array", path);
        goto fail;
    }
    size_t n_ids = 0, max_len = 1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (!json_is_integer(val) || id < 0 || id >= MAX_IDS) {
            rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: bad id for vocab entry", path);
            goto fail;
        }
        if ((size_t)id + 1 > n_ids) n_ids = (size_t)id + 1;
        if (strlen(key) > max_len) max_len = strlen(key);
    }
    size_t ai;
    json_array_foreach(added, ai, val) {
        json_t *jid = json_object_get(val, "id");
        json_int_t id = json_integer_value(jid);
        const char *content = json_string_value(json_object_get(val, "content"));
        if (!json_is_integer(jid) || id < 0 || id >= MAX_IDS || !content || !*content) {
            rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: bad added token #%zu", path, ai);
            goto fail;
        }
        if (json_is_true(json_object_get(val, "lstrip")) || json_is_true(json_object_get(val, "rstrip")) ||
            json_is_true(json_object_get(val, "single_word"))) {
            rc = sd_seterr(err, SD_ENOTSUP, "tokenizer_new: %s: added token %s uses lstrip/rstrip/single_word",
                           path, content);
            goto fail;
        }
        if ((size_t)id + 1 > n_ids) n_ids = (size_t)id + 1;
        if (strlen(content) > max_len) max_len = strlen(content);
    }
    if (n_ids == 0) {
        rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: empty vocabulary", path);
        goto fail;
    }
    t->n_ids = n_ids;
    t->flags = xcalloc(n_ids, 1);
    t->off = xcalloc(n_ids + 1, sizeof *t->off);
    json_str = xcalloc(n_ids, sizeof *json_str);
    json_len = xcalloc(n_ids, sizeof *json_len);
    scratch = xmalloc(max_len * 2 + 8);

    /* Spelling of each id: vocab first, added tokens override (HF decodes an id
     * through the added vocabulary first). */
    json_object_foreach(vocab, key, val) {
        size_t id = (size_t)json_integer_value(val);
        if (t->flags[id]) {
            rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: id %zu used twice in vocab", path, id);
            goto fail;
        }
        t->flags[id] = TF_PRESENT;
        json_str[id] = (char *)key;
        json_len[id] = strlen(key);
    }
    size_t n_added = json_array_size(added);
    t->added = xcalloc(n_added ? n_added : 1, sizeof *t->added);
    for (int b = 0; b < 256; b++) t->added_head[b] = -1;
    json_array_foreach(added, ai, val) {
        size_t id = (size_t)json_integer_value(json_object_get(val, "id"));
        const char *content = json_string_value(json_object_get(val, "content"));
        int special = json_is_true(json_object_get(val, "special"));
        added_tok *a = &t->added[t->n_added++];
        a->content = xstrdup(content);
        a->len = strlen(content);
        a->id = (int32_t)id;
        a->special = special;
        a->normalized = json_is_true(json_object_get(val, "normalized"));
        t->flags[id] = (uint8_t)(TF_PRESENT | TF_ADDED | (special ? TF_SPECIAL : 0));
        json_str[id] = a->content;
        json_len[id] = a->len;
    }
    /* Buckets by first byte, longest first so the first hit is the longest. */
    for (size_t i = t->n_added; i-- > 0;) {
        added_tok *a = &t->added[i];
        uint8_t b = (uint8_t)a->content[0];
        int *pp = &t->added_head[b];
        while (*pp >= 0 && t->added[*pp].len > a->len) pp = &t->added[*pp].next;
        a->next = *pp;
        *pp = (int)i;
    }

    /* Decoded bytes of every id. */
    size_t total = 0;
    for (size_t id = 0; id < n_ids; id++) total += json_len[id];
    t->bytes = xmalloc(total + 1);
    size_t pos = 0;
    for (size_t id = 0; id < n_ids; id++) {
        t->off[id] = (uint32_t)pos;
        if (!json_str[id]) continue;
        long bl = bytelevel_decode(t, json_str[id], json_len[id], (uint8_t *)t->bytes + pos);
        if (bl < 0) {
            memcpy(t->bytes + pos, json_str[id], json_len[id]);
            pos += json_len[id];
            if (!(t->flags[id] & TF_ADDED)) {
                t->odd = xrealloc(t->odd, (t->n_odd + 1) * sizeof *t->odd);
                t->odd[t->n_odd].str = xstrdup(json_str[id]);
                t->odd[t->n_odd++].id = (int32_t)id;
            }
        } else {
            pos += (size_t)bl;
        }
    }
    t->off[n_ids] = (uint32_t)pos;

    /* Hash of encodable vocab entries (byte-level spelled, not added tokens). */
    t->vh_mask = pow2_at_least(n_ids * 2) - 1;
    t->vh = xmalloc((t->vh_mask + 1) * sizeof *t->vh);
    for (size_t i = 0; i <= t->vh_mask; i++) t->vh[i].id = -1;
    json_object_foreach(vocab, key, val) {
        size_t id = (size_t)json_integer_value(val);
        /* The slot points at the id's decoded bytes: an added token with the
         * same id would shadow them, so only plain vocab ids are indexed. */
        if (t->flags[id] & TF_ADDED) continue;
        size_t bl = t->off[id + 1] - t->off[id];
        if (bytelevel_decode(t, key, strlen(key), scratch) < 0) continue;
        const uint8_t *tb = (const uint8_t *)t->bytes + t->off[id];
        if (vocab_find(t, tb, bl) >= 0) continue;
        uint64_t h = hash_bytes(tb, bl);
        size_t i = h & t->vh_mask;
        while (t->vh[i].id >= 0) i = (i + 1) & t->vh_mask;
        t->vh[i].tag = (uint32_t)(h >> 32);
        t->vh[i].id = (int32_t)id;
        t->vh[i].off = t->off[id];
        t->vh[i].len = (uint32_t)bl;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = vocab_find(t, &c, 1);
        if (t->byte_id[b] < 0) {
            rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: byte 0x%02x has no token", path, b);
            goto fail;
        }
    }

    /* Merges: rank = position; a later duplicate replaces an earlier one (as HF's
     * HashMap collect does). */
    size_t n_merges = json_array_size(merges);
    t->mh_mask = pow2_at_least(n_merges * 2 + 2) - 1;
    t->mh = xcalloc(t->mh_mask + 1, sizeof *t->mh);
    uint8_t *cat = xmalloc(max_len * 2 + 8);
    size_t mi;
    json_array_foreach(merges, mi, val) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (json_is_string(val)) {
            const char *s = json_string_value(val);
            const char *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = s; la = (size_t)(sp - s);
                b = sp + 1; lb = strlen(b);
            }
        } else if (json_is_array(val) && json_array_size(val) == 2) {
            a = json_string_value(json_array_get(val, 0));
            b = json_string_value(json_array_get(val, 1));
            if (a && b) { la = strlen(a); lb = strlen(b); }
            else a = b = NULL;
        }
        if (!a || la + lb > max_len * 2) {
            free(cat);
            rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: malformed merge #%zu", path, mi);
            goto fail;
        }
        int32_t ia = vocab_id_of_string(t, a, la, scratch);
        int32_t ib = vocab_id_of_string(t, b, lb, scratch);
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        int32_t in = vocab_id_of_string(t, (const char *)cat, la + lb, scratch);
        if (ia < 0 || ib < 0 || in < 0) {
            free(cat);
            rc = sd_seterr(err, SD_EFORMAT, "tokenizer_new: %s: merge #%zu uses a token not in the vocab",
                           path, mi);
            goto fail;
        }
        uint64_t mkey = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
        size_t i = hash_u64(mkey) & t->mh_mask;
        while (t->mh[i].key && t->mh[i].key != mkey) i = (i + 1) & t->mh_mask;
        t->mh[i].key = mkey;
        t->mh[i].rank = (uint32_t)mi;
        t->mh[i].nid = in;
    }
    free(cat);
    free(scratch);
    free(json_str);
    free(json_len);
    json_decref(root);
    return t;

fail:
    (void)rc;
    free(scratch);
    free(json_str);
    free(json_len);
    json_decref(root);
    tokenizer_free(t);
    return NULL;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    for (size_t i = 0; i < t->n_odd; i++) free(t->odd[i].str);
    free(t->added);
    free(t->odd);
    free(t->flags);
    free(t->off);
    free(t->bytes);
    free(t->vh);
    free(t->mh);
    free(t);
}

/* ---------- encoding ---------- */

typedef struct heap_ent {
    uint32_t rank;
    uint32_t pos;
    int32_t left, right, nid;
} heap_ent;

/* Per-call cache of words that needed BPE: the word's bytes stay in the input
 * and its ids in the output, so an entry is just two references. */
#define WCACHE_SIZE 4096
typedef struct wcache_ent {
    const uint8_t *word; /* NULL: empty */
    uint32_t len;
    uint32_t ids_off;
    uint32_t n_ids;
} wcache_ent;

typedef struct enc_ctx {
    const tokenizer *t;
    wcache_ent *wc;       /* (WCACHE_SIZE) or NULL */
    int32_t *ids;
    size_t n, cap;
    /* BPE workspace, grown on demand */
    int32_t *sym, *prev, *next;
    size_t sym_cap;
    heap_ent *heap;
    size_t heap_n, heap_cap;
} enc_ctx;

static int emit(enc_ctx *c, int32_t id) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int32_t *p = realloc(c->ids, cap * sizeof *p);
        if (!p) return SD_ENOMEM;
        c->ids = p;
        c->cap = cap;
    }
    c->ids[c->n++] = id;
    return 0;
}

static inline int heap_less(const heap_ent *a, const heap_ent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(enc_ctx *c, heap_ent e) {
    if (c->heap_n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        heap_ent *p = realloc(c->heap, cap * sizeof *p);
        if (!p) return SD_ENOMEM;
        c->heap = p;
        c->heap_cap = cap;
    }
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!heap_less(&e, &c->heap[par])) break;
        c->heap[i] = c->heap[par];
        i = par;
    }
    c->heap[i] = e;
    return 0;
}

static heap_ent heap_pop(enc_ctx *c) {
    heap_ent top = c->heap[0];
    heap_ent last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = (l + 1 < n && heap_less(&c->heap[l + 1], &c->heap[l])) ? l + 1 : l;
        if (!heap_less(&c->heap[m], &last)) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = last;
    return top;
}

static int push_pair(enc_ctx *c, int32_t pos) {
    if (pos < 0) return 0;
    int32_t nx = c->next[pos];
    if (nx < 0) return 0;
    uint32_t rank;
    int32_t nid;
    if (!merge_find(c->t, c->sym[pos], c->sym[nx], &rank, &nid)) return 0;
    heap_ent e = {rank, (uint32_t)pos, c->sym[pos], c->sym[nx], nid};
    return heap_push(c, e);
}

/* BPE over one pre-token (bytes w[0..m)), merging the lowest-ranked pair first
 * and the leftmost among equals, exactly as HF's Word::merge_all. */
static int bpe_word(enc_ctx *c, const uint8_t *w, size_t m) {
    const tokenizer *t = c->t;
    if (m == 1) return emit(c, t->byte_id[w[0]]);
    if (t->ignore_merges) {
        int32_t id = vocab_find(t, w, m);
        if (id >= 0) return emit(c, id);
    }
    if (m > INT32_MAX) return SD_ERANGE;
    wcache_ent *ce = NULL;
    if (c->wc && m <= 64) {
        ce = &c->wc[hash_bytes(w, m) & (WCACHE_SIZE - 1)];
        if (ce->word && ce->len == m && memcmp(ce->word, w, m) == 0) {
            for (uint32_t k = 0; k < ce->n_ids; k++)
                if (emit(c, c->ids[ce->ids_off + k])) return SD_ENOMEM;
            return 0;
        }
    }
    size_t first = c->n;
    if (m > c->sym_cap) {
        size_t cap = m < 64 ? 64 : m;
        int32_t *a = realloc(c->sym, cap * sizeof *a);
        if (a) c->sym = a;
        int32_t *b = a ? realloc(c->prev, cap * sizeof *b) : NULL;
        if (b) c->prev = b;
        int32_t *d = b ? realloc(c->next, cap * sizeof *d) : NULL;
        if (d) c->next = d;
        if (!d) return SD_ENOMEM;
        c->sym_cap = cap;
    }
    for (size_t i = 0; i < m; i++) {
        c->sym[i] = t->byte_id[w[i]];
        c->prev[i] = (int32_t)i - 1;
        c->next[i] = (i + 1 < m) ? (int32_t)i + 1 : -1;
    }
    c->heap_n = 0;
    for (size_t i = 0; i + 1 < m; i++)
        if (push_pair(c, (int32_t)i)) return SD_ENOMEM;
    while (c->heap_n) {
        heap_ent e = heap_pop(c);
        int32_t p = (int32_t)e.pos, nx = c->next[p];
        if (c->sym[p] != e.left || nx < 0 || c->sym[nx] != e.right) continue;
        c->sym[p] = e.nid;
        c->sym[nx] = -1;
        int32_t nn = c->next[nx];
        c->next[p] = nn;
        if (nn >= 0) c->prev[nn] = p;
        if (push_pair(c, c->prev[p]) || push_pair(c, p)) return SD_ENOMEM;
    }
    for (int32_t i = 0; i >= 0; i = c->next[i])
        if (emit(c, c->sym[i])) return SD_ENOMEM;
    if (ce && c->n <= UINT32_MAX) {
        ce->word = w;
        ce->len = (uint32_t)m;
        ce->ids_off = (uint32_t)first;
        ce->n_ids = (uint32_t)(c->n - first);
    }
    return 0;
}

static inline unsigned ucls(uint32_t cp) { return tok_unicode_flags(cp) & 7u; }

#define CL_L TOK_UNI_L
#define CL_N TOK_UNI_N
#define CL_WS TOK_UNI_WS

static inline size_t letters_end(const uint8_t *s, size_t j, size_t n) {
    while (j < n) {
        int l;
        uint32_t c = cp_at(s + j, &l);
        if (!(ucls(c) & CL_L)) break;
        j += (size_t)l;
    }
    return j;
}

static inline int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* End of the pre-token starting at s[i] (valid UTF-8, i < n) under the Llama-3
 * regex, alternatives tried in order as Oniguruma does:
 *   1 (?i:'s|'t|'re|'ve|'m|'ll|'d)   2 [^\r\n\p{L}\p{N}]?\p{L}+   3 \p{N}{1,3}
 *   4  ?[^\s\p{L}\p{N}]+[\r\n]*      5 \s*[\r\n]+   6 \s+(?!\S)   7 \s+ */
static size_t pretok_next(const uint8_t *s, size_t i, size_t n) {
    int l, l2;
    uint32_t c = cp_at(s + i, &l);
    size_t j = i + (size_t)l;
    if (c == '\'' && j < n) {
        uint32_t c2 = cp_at(s + j, &l2);
        int lc = c2 < 128 ? ascii_lower((int)c2) : 0;
        /* U+017F LATIN SMALL LETTER LONG S case-folds to 's'. */
        if (lc == 's' || lc == 't' || lc == 'm' || lc == 'd' || c2 == 0x17F) return j + (size_t)l2;
        if (j + 1 < n && c2 < 128) {
            int d = ascii_lower(s[j + 1]);
            if ((lc == 'r' && d == 'e') || (lc == 'v' && d == 'e') || (lc == 'l' && d == 'l')) return j + 2;
        }
    }
    unsigned f = ucls(c);
    if (f & CL_L) return letters_end(s, j, n);
    if (!(f & CL_N) && c != '\r' && c != '\n' && j < n) {
        uint32_t c2 = cp_at(s + j, &l2);
        if (ucls(c2) & CL_L) return letters_end(s, j + (size_t)l2, n);
    }
    if (f & CL_N) {
        for (int k = 1; k < 3 && j < n; k++) {
            uint32_t c2 = cp_at(s + j, &l2);
            if (!(ucls(c2) & CL_N)) break;
            j += (size_t)l2;
        }
        return j;
    }
    if (f == 0 || (c == ' ' && j < n && ucls(cp_at(s + j, &l2)) == 0)) {
        size_t k = (f == 0) ? j : j + (size_t)l2;
        while (k < n) {
            uint32_t c2 = cp_at(s + k, &l2);
            if (ucls(c2) != 0) break;
            k += (size_t)l2;
        }
        while (k < n && (s[k] == '\r' || s[k] == '\n')) k++;
        return k;
    }
    /* c is whitespace: alternatives 5, 6, 7 over the whole run. */
    size_t e = j, last_start = i, after_nl = (c == '\r' || c == '\n') ? j : 0;
    while (e < n) {
        uint32_t c2 = cp_at(s + e, &l2);
        if (!(ucls(c2) & CL_WS)) break;
        last_start = e;
        e += (size_t)l2;
        if (c2 == '\r' || c2 == '\n') after_nl = e;
    }
    if (after_nl) return after_nl;
    if (e == n || last_start == i) return e;
    return last_start;
}

static int encode_plain(enc_ctx *c, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t e = c->t->use_regex ? pretok_next(s, i, n) : n;
        int rc = bpe_word(c, s + i, e - i);
        if (rc) return rc;
        i = e;
    }
    return 0;
}

/* Splits out added tokens leftmost-longest: pass 0 matches non-normalized ones
 * and hands the gaps to pass 1 (normalized ones; there is no normalizer), whose
 * gaps are pre-tokenized. */
static int encode_added(enc_ctx *c, const uint8_t *s, size_t n, int pass, int parse_special) {
    const tokenizer *t = c->t;
    size_t i = 0, gap = 0;
    if (pass == 2) return encode_plain(c, s, n);
    while (i < n) {
        int k = t->added_head[s[i]];
        const added_tok *hit = NULL;
        for (; k >= 0; k = t->added[k].next) {
            const added_tok *a = &t->added[k];
            if (a->normalized != pass || (a->special && !parse_special)) continue;
            if (a->len <= n - i && memcmp(a->content, s + i, a->len) == 0) { hit = a; break; }
        }
        if (!hit) { i++; continue; }
        if (i > gap) {
            int rc = encode_added(c, s + gap, i - gap, pass + 1, parse_special);
            if (rc) return rc;
        }
        if (emit(c, hit->id)) return SD_ENOMEM;
        i += hit->len;
        gap = i;
    }
    if (n > gap) return encode_added(c, s + gap, n - gap, pass + 1, parse_special);
    return 0;
}

int tokenizer_encode(tokenizer *t, const char *text, size_t len, int parse_special,
                     int32_t **ids, size_t *n_ids, sd_err *err) {
    if (!t || (!text && len) || !ids || !n_ids)
        return sd_seterr(err, SD_EINVAL, "tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    const uint8_t *s = (const uint8_t *)text;
    bbuf clean = {0};
    enc_ctx c = {0};
    int rc = 0;
    /* Invalid UTF-8 becomes U+FFFD first (what a Rust &str caller would pass). */
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) { i++; continue; }
        size_t bad;
        int inc;
        int l = utf8_scan(s + i, len - i, &bad, &inc);
        if (l <= 0) break;
        i += (size_t)l;
    }
    if (i < len) {
        size_t used;
        if (utf8_lossy(s, len, 1, &clean, &used)) { rc = SD_ENOMEM; goto out; }
        s = clean.p;
        len = clean.n;
    }
    c.t = t;
    c.cap = len / 4 + 16;
    if (len >= 256) c.wc = calloc(WCACHE_SIZE, sizeof *c.wc); /* optional: NULL just disables it */
    c.ids = malloc(c.cap * sizeof *c.ids);
    if (!c.ids) { rc = SD_ENOMEM; goto out; }
    if (len) rc = encode_added(&c, s, len, 0, parse_special ? 1 : 0);
out:
    free(clean.p);
    free(c.wc);
    free(c.sym);
    free(c.prev);
    free(c.next);
    free(c.heap);
    if (rc) {
        free(c.ids);
        if (rc == SD_ENOMEM) return sd_seterr(err, rc, "tokenizer_encode: out of memory (%zu bytes of text)", len);
        return sd_seterr(err, rc, "tokenizer_encode: failed (%s)", sd_strerror(rc));
    }
    *ids = c.ids;
    *n_ids = c.n;
    return 0;
}

/* ---------- decoding ---------- */

char *tokenizer_decode(tokenizer *t, const int32_t *ids, size_t n, int skip_special) {
    size_t len;
    return tokenizer_decode_len(t, ids, n, skip_special, &len);
}

char *tokenizer_decode_len(tokenizer *t, const int32_t *ids, size_t n, int skip_special, size_t *len) {
    bbuf raw = {0}, out = {0};
    size_t used;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n_ids || !(t->flags[id] & TF_PRESENT)) continue;
        if (skip_special && (t->flags[id] & TF_SPECIAL)) continue;
        if (bbuf_put(&raw, t->bytes + t->off[id], t->off[id + 1] - t->off[id])) goto oom;
    }
    if (utf8_lossy(raw.p ? raw.p : (const uint8_t *)"", raw.n, 1, &out, &used) || bbuf_put(&out, "", 1))
        goto oom;
    free(raw.p);
    *len = out.n - 1;
    return (char *)out.p;
oom:
    free(raw.p);
    free(out.p);
    return NULL;
}

int32_t tokenizer_token_id(tokenizer *t, const char *s) {
    if (!t || !s) return -1;
    size_t n = strlen(s);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0) return t->added[i].id;
    uint8_t stackbuf[256];
    uint8_t *tmp = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!tmp) return -1;
    int32_t id = vocab_id_of_string(t, s, n, tmp);
    if (tmp != stackbuf) free(tmp);
    return id;
}

size_t tokenizer_vocab_size(tokenizer *t) { return t ? t->n_ids : 0; }

int tokenizer_token_bytes(tokenizer *t, int32_t id, const char **bytes, size_t *len) {
    if (!t || id < 0 || (size_t)id >= t->n_ids || !(t->flags[id] & TF_PRESENT)) return SD_ENOTFOUND;
    *bytes = t->bytes + t->off[id];
    *len = t->off[id + 1] - t->off[id];
    return 0;
}

int tokenizer_is_special(tokenizer *t, int32_t id) {
    if (!t || id < 0 || (size_t)id >= t->n_ids) return 0;
    return (t->flags[id] & TF_SPECIAL) ? 1 : 0;
}

/* ---------- streaming ---------- */

struct tokenizer_stream {
    tokenizer *t;
    int skip_special;
    bbuf pend;  /* bytes of an incomplete UTF-8 sequence (at most 3) */
    bbuf q;     /* resolved text not yet handed out (valid UTF-8) */
    size_t q_off;
    bbuf work;
};

tokenizer_stream *tokenizer_stream_new(tokenizer *t) {
    tokenizer_stream *s = calloc(1, sizeof *s);
    if (s) s->t = t;
    return s;
}

void tokenizer_stream_set_skip_special(tokenizer_stream *s, int skip_special) {
    if (s) s->skip_special = skip_special;
}

void tokenizer_stream_free(tokenizer_stream *s) {
    if (!s) return;
    free(s->pend.p);
    free(s->q.p);
    free(s->work.p);
    free(s);
}

/* Hands out up to cap bytes of q, cut at a character boundary. */
static size_t stream_deliver(tokenizer_stream *s, char *out, size_t cap) {
    size_t avail = s->q.n - s->q_off;
    size_t k = avail < cap ? avail : cap;
    if (k < avail)
        while (k > 0 && (s->q.p[s->q_off + k] & 0xC0) == 0x80) k--;
    if (k) memcpy(out, s->q.p + s->q_off, k);
    s->q_off += k;
    if (s->q_off == s->q.n) s->q_off = s->q.n = 0;
    return k;
}

/* Moves pend + data into q; keeps a trailing incomplete sequence unless final. */
static int stream_resolve(tokenizer_stream *s, const char *data, size_t n, int final) {
    s->work.n = 0;
    if (bbuf_put(&s->work, s->pend.p ? s->pend.p : (const uint8_t *)"", s->pend.n) ||
        bbuf_put(&s->work, data ? data : "", n))
        return SD_ENOMEM;
    if (s->q_off) { /* compact */
        memmove(s->q.p, s->q.p + s->q_off, s->q.n - s->q_off);
        s->q.n -= s->q_off;
        s->q_off = 0;
    }
    size_t used;
    if (utf8_lossy(s->work.p, s->work.n, final, &s->q, &used)) return SD_ENOMEM;
    s->pend.n = 0;
    return bbuf_put(&s->pend, s->work.p + used, s->work.n - used);
}

size_t tokenizer_stream_put(tokenizer_stream *s, int32_t id, char *out, size_t cap) {
    if (!s) return 0;
    tokenizer *t = s->t;
    if (id >= 0 && (size_t)id < t->n_ids && (t->flags[id] & TF_PRESENT) &&
        !(s->skip_special && (t->flags[id] & TF_SPECIAL))) {
        if (stream_resolve(s, t->bytes + t->off[id], t->off[id + 1] - t->off[id], 0)) return 0;
    }
    return stream_deliver(s, out, cap);
}

size_t tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap) {
    if (!s) return 0;
    if (s->pend.n && stream_resolve(s, NULL, 0, 1)) return 0;
    return stream_deliver(s, out, cap);
}
