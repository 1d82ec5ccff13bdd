/* protocol.c - strict decoding of smoldoc request headers, encoding of the
 * streamed events, and the client-side request encoder and event decoder.
 * The wire format is specified in protocol/PROTOCOL.md. */
#include "protocol.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

static const char *const op_names[PROTOCOL_OP_COUNT_] = {
    [PROTOCOL_OP_NONE] = "",
    [PROTOCOL_OP_INGEST] = "ingest",
    [PROTOCOL_OP_LIST] = "list",
    [PROTOCOL_OP_GET] = "get",
    [PROTOCOL_OP_DELETE] = "delete",
    [PROTOCOL_OP_SUMMARIZE] = "summarize",
    [PROTOCOL_OP_EXTRACT] = "extract",
    [PROTOCOL_OP_ASK] = "ask",
    [PROTOCOL_OP_STATUS] = "status",
    [PROTOCOL_OP_CANCEL] = "cancel",
    [PROTOCOL_OP_PING] = "ping",
};

static const char *const code_names[PROTOCOL_CODE_COUNT_] = {
    [PROTOCOL_CODE_NONE] = "",
    [PROTOCOL_CODE_BAD_JSON] = "bad_json",
    [PROTOCOL_CODE_BAD_REQUEST] = "bad_request",
    [PROTOCOL_CODE_UNKNOWN_OP] = "unknown_op",
    [PROTOCOL_CODE_VERSION] = "version",
    [PROTOCOL_CODE_TOO_LARGE] = "too_large",
    [PROTOCOL_CODE_TOO_MANY_FRAMES] = "too_many_frames",
    [PROTOCOL_CODE_TOO_DEEP] = "too_deep",
    [PROTOCOL_CODE_BUSY] = "busy",
    [PROTOCOL_CODE_NOT_FOUND] = "not_found",
    [PROTOCOL_CODE_CANCELED] = "canceled",
    [PROTOCOL_CODE_DEADLINE] = "deadline",
    [PROTOCOL_CODE_FORBIDDEN] = "forbidden",
    [PROTOCOL_CODE_BAD_DOCUMENT] = "bad_document",
    [PROTOCOL_CODE_SHUTTING_DOWN] = "shutting_down",
    [PROTOCOL_CODE_INTERNAL] = "internal",
};

static const char *const style_names[] = {"brief", "detailed", "bullets"};

const char *protocol_op_name(protocol_op op) {
    if ((int)op <= 0 || op >= PROTOCOL_OP_COUNT_) return "";
    return op_names[op];
}

protocol_op protocol_op_parse(const char *name) {
    if (!name || !*name) return PROTOCOL_OP_NONE;
    for (int i = 1; i < PROTOCOL_OP_COUNT_; i++)
        if (strcmp(op_names[i], name) == 0) return (protocol_op)i;
    return PROTOCOL_OP_NONE;
}

const char *protocol_code_name(protocol_code code) {
    if ((int)code < 0 || code >= PROTOCOL_CODE_COUNT_) return "internal";
    return code_names[code];
}

protocol_code protocol_code_parse(const char *name) {
    if (!name) return PROTOCOL_CODE_NONE;
    for (int i = 1; i < PROTOCOL_CODE_COUNT_; i++)
        if (strcmp(code_names[i], name) == 0) return (protocol_code)i;
    return PROTOCOL_CODE_INTERNAL;
}

protocol_code protocol_code_from_sd(int rc) {
    switch (rc) {
    case SD_OK: return PROTOCOL_CODE_NONE;
    case SD_ENOTFOUND: return PROTOCOL_CODE_NOT_FOUND;
    case SD_EBUSY: return PROTOCOL_CODE_BUSY;
    case SD_ECANCELED: return PROTOCOL_CODE_CANCELED;
    case SD_ETIMEOUT: return PROTOCOL_CODE_DEADLINE;
    case SD_EFORMAT: return PROTOCOL_CODE_BAD_DOCUMENT;
    case SD_EPASSWORD: return PROTOCOL_CODE_BAD_DOCUMENT;
    case SD_EINVAL: return PROTOCOL_CODE_BAD_REQUEST;
    case SD_EPROTO: return PROTOCOL_CODE_BAD_REQUEST;
    case SD_ERANGE: return PROTOCOL_CODE_TOO_LARGE;
    case SD_EREADONLY: return PROTOCOL_CODE_FORBIDDEN;
    default: return PROTOCOL_CODE_INTERNAL;
    }
}

const char *protocol_style_name(protocol_style s) {
    if ((int)s < 0 || (size_t)s >= sizeof style_names / sizeof style_names[0]) return "brief";
    return style_names[s];
}

/* ---- defaults ---- */

protocol_limits protocol_limits_default(void) {
    protocol_limits l = {
        .max_frames = 2,
        .max_header_bytes = 64 * 1024,
        .max_frame_bytes = (size_t)256 * 1024 * 1024,
        .max_depth = 16,
    };
    return l;
}

protocol_options protocol_options_default(void) {
    protocol_options o = {
        .think = false,
        .max_tokens = 0,
        .temperature = 0.6f,
        .top_p = 0.95f,
        .top_k = 0,
        .min_p = 0.0f,
        .repetition_penalty = 1.0f,
        .has_seed = false,
        .seed = 0,
        .deadline_ms = 0,
    };
    return o;
}

/* ---- errors ---- */

/* Fills perr (may be NULL) and returns rc. */
static int fail(protocol_error *perr, int rc, protocol_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(protocol_error *perr, int rc, protocol_code code, const char *fmt, ...) {
    if (perr) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(perr->err.msg, sizeof perr->err.msg, fmt, ap);
        va_end(ap);
        perr->err.code = rc;
        perr->code = code;
    }
    return rc;
}

static void perr_clear(protocol_error *perr) {
    if (!perr) return;
    memset(perr, 0, sizeof *perr);
}

/* ---- frame and depth checks ---- */

int protocol_check_frames(const size_t *frame_sizes, size_t n_frames,
                          const protocol_limits *lim, protocol_error *perr) {
    protocol_limits d = protocol_limits_default();
    if (!lim) lim = &d;
    perr_clear(perr);
    if (n_frames == 0 || !frame_sizes)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_TOO_MANY_FRAMES,
                    "protocol_check_frames: empty message (no header frame)");
    if (n_frames > lim->max_frames)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_TOO_MANY_FRAMES,
                    "protocol_check_frames: %zu frames, at most %zu allowed", n_frames,
                    lim->max_frames);
    if (frame_sizes[0] > lim->max_header_bytes)
        return fail(perr, SD_ERANGE, PROTOCOL_CODE_TOO_LARGE,
                    "protocol_check_frames: header frame of %zu bytes, at most %zu allowed",
                    frame_sizes[0], lim->max_header_bytes);
    for (size_t i = 1; i < n_frames; i++)
        if (frame_sizes[i] > lim->max_frame_bytes)
            return fail(perr, SD_ERANGE, PROTOCOL_CODE_TOO_LARGE,
                        "protocol_check_frames: frame %zu of %zu bytes, at most %zu allowed", i,
                        frame_sizes[i], lim->max_frame_bytes);
    return 0;
}

int protocol_check_depth(const void *buf, size_t len, size_t max_depth, sd_err *err) {
    const unsigned char *p = buf, *end = p + len;
    size_t depth = 0;
    bool in_str = false;
    for (; p < end; p++) {
        unsigned char c = *p;
        if (in_str) {
            if (c == '\\') {
                if (p + 1 < end) p++; /* skip the escaped byte */
            } else if (c == '"') {
                in_str = false;
            }
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return sd_seterr(err, SD_ERANGE,
                                 "protocol_check_depth: JSON nested deeper than %zu", max_depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid (overlong,
 * surrogate, above U+10FFFF, truncated, or NUL). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return len;
}

/* A json string of s with invalid bytes replaced by U+FFFD; NULL on OOM. */
static json_t *json_string_lossy(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    json_t *j = json_stringn(s, n);
    if (j) return j;
    /* Invalid UTF-8: rebuild. Each bad byte becomes 3 bytes. */
    size_t cap;
    if (sd_mul_overflow(n, 3, &cap)) return NULL;
    char *out = malloc(cap + 1);
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t l = utf8_seq(p + i, n - i);
        if (l) {
            memcpy(out + o, p + i, l);
            o += l;
            i += l;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(out, o);
    free(out);
    return j;
}

/* ---- decoding helpers ---- */

static bool id_valid(const char *s, size_t n) {
    if (n == 0 || n > PROTOCOL_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return false;
    return true;
}

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Reads an optional/required string field into a new malloc'd copy (*out
 * stays NULL when absent and optional). minlen 0 allows "". */
static int get_str(json_t *o, const char *key, bool required, size_t minlen, size_t maxlen,
                   char **out, protocol_error *perr) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "missing field \"%s\"", key);
        return 0;
    }
    if (!json_is_string(v))
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"%s\" must be a string",
                    key);
    size_t n = json_string_length(v);
    if (n < minlen)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"%s\" must not be empty",
                    key);
    if (n > maxlen)
        return fail(perr, SD_ERANGE, PROTOCOL_CODE_TOO_LARGE,
                    "field \"%s\" is %zu bytes, at most %zu allowed", key, n, maxlen);
    if (memchr(json_string_value(v), 0, n))
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"%s\" contains NUL", key);
    *out = dupn(json_string_value(v), n);
    if (!*out) return fail(perr, SD_ENOMEM, PROTOCOL_CODE_INTERNAL, "out of memory");
    return 0;
}

/* Optional integer in [lo, hi]; *out keeps its default when absent. */
static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out,
                   bool *present, protocol_error *perr) {
    json_t *v = json_object_get(o, key);
    if (present) *present = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v))
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"%s\" must be an integer",
                    key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                    "field \"%s\" = %lld is outside [%lld, %lld]", key, x, lo, hi);
    *out = x;
    if (present) *present = true;
    return 0;
}

/* Optional number (integer or real) in [lo, hi] (lo excluded when lo_open). */
static int get_num(json_t *o, const char *key, double lo, bool lo_open, double hi, float *out,
                   protocol_error *perr) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v))
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"%s\" must be a number",
                    key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || (lo_open && x == lo) || x > hi)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                    "field \"%s\" = %g is outside %s%g, %g]", key, x, lo_open ? "(" : "[", lo, hi);
    *out = (float)x;
    return 0;
}

static int get_bool(json_t *o, const char *key, bool *out, protocol_error *perr) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"%s\" must be a boolean",
                    key);
    *out = json_is_true(v);
    return 0;
}

/* "doc": a non-empty string, or a non-negative integer (made decimal text). */
static int get_doc(json_t *o, char **out, protocol_error *perr) {
    json_t *v = json_object_get(o, "doc");
    if (v && json_is_integer(v)) {
        long long x = json_integer_value(v);
        if (x < 0)
            return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"doc\" is negative");
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", x);
        *out = dupn(buf, strlen(buf));
        if (!*out) return fail(perr, SD_ENOMEM, PROTOCOL_CODE_INTERNAL, "out of memory");
        return 0;
    }
    return get_str(o, "doc", true, 1, PROTOCOL_DOC_MAX, out, perr);
}

static int decode_options(json_t *o, protocol_options *opt, protocol_error *perr) {
    int rc;
    long long x;
    bool present;
    if ((rc = get_bool(o, "think", &opt->think, perr))) return rc;
    x = opt->max_tokens;
    if ((rc = get_int(o, "max_tokens", 0, 32768, &x, NULL, perr))) return rc;
    opt->max_tokens = (int32_t)x;
    if ((rc = get_num(o, "temperature", 0.0, false, 2.0, &opt->temperature, perr))) return rc;
    if ((rc = get_num(o, "top_p", 0.0, true, 1.0, &opt->top_p, perr))) return rc;
    x = opt->top_k;
    if ((rc = get_int(o, "top_k", 0, 1000000, &x, NULL, perr))) return rc;
    opt->top_k = (int32_t)x;
    if ((rc = get_num(o, "min_p", 0.0, false, 1.0, &opt->min_p, perr))) return rc;
    if (opt->min_p >= 1.0f)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "field \"min_p\" must be < 1");
    if ((rc = get_num(o, "repetition_penalty", 0.5, false, 2.0, &opt->repetition_penalty, perr)))
        return rc;
    x = 0;
    if ((rc = get_int(o, "seed", 0, (1LL << 53) - 1, &x, &present, perr))) return rc;
    if (present) {
        opt->has_seed = true;
        opt->seed = (uint64_t)x;
    }
    x = opt->deadline_ms;
    if ((rc = get_int(o, "deadline_ms", 0, 86400000, &x, NULL, perr))) return rc;
    opt->deadline_ms = (uint32_t)x;
    return 0;
}

static int decode_categories(json_t *o, protocol_request *r, protocol_error *perr) {
    json_t *v = json_object_get(o, "categories");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v))
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                    "field \"categories\" must be an array");
    size_t n = json_array_size(v);
    if (n == 0) return 0; /* [] = the default checklist */
    if (n > PROTOCOL_CATEGORIES_MAX)
        return fail(perr, SD_ERANGE, PROTOCOL_CODE_TOO_LARGE,
                    "%zu categories, at most %d allowed", n, PROTOCOL_CATEGORIES_MAX);
    r->categories = calloc(n, sizeof *r->categories);
    if (!r->categories) return fail(perr, SD_ENOMEM, PROTOCOL_CODE_INTERNAL, "out of memory");
    r->n_categories = n;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(v, i);
        protocol_category *pc = &r->categories[i];
        int rc;
        if (json_is_string(c)) {
            json_t *wrap = json_pack("{sO}", "name", c);
            if (!wrap) return fail(perr, SD_ENOMEM, PROTOCOL_CODE_INTERNAL, "out of memory");
            rc = get_str(wrap, "name", true, 1, PROTOCOL_CATEGORY_MAX, &pc->name, perr);
            json_decref(wrap);
        } else if (json_is_object(c)) {
            rc = get_str(c, "name", true, 1, PROTOCOL_CATEGORY_MAX, &pc->name, perr);
            if (!rc)
                rc = get_str(c, "description", false, 0, PROTOCOL_CATEGORY_MAX, &pc->description,
                             perr);
        } else {
            rc = fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                      "categories[%zu] must be a string or an object", i);
        }
        if (rc) {
            if (perr && perr->code == PROTOCOL_CODE_BAD_REQUEST) {
                char msg[sizeof perr->err.msg];
                snprintf(msg, sizeof msg, "categories[%zu]: %.440s", i, perr->err.msg);
                memcpy(perr->err.msg, msg, sizeof msg);
            }
            return rc;
        }
    }
    return 0;
}

static int decode_style(json_t *o, protocol_style *style, protocol_error *perr) {
    json_t *v = json_object_get(o, "style");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        for (size_t i = 0; i < sizeof style_names / sizeof style_names[0]; i++)
            if (strcmp(json_string_value(v), style_names[i]) == 0) {
                *style = (protocol_style)i;
                return 0;
            }
    }
    return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                "field \"style\" must be \"brief\", \"detailed\" or \"bullets\"");
}

static int decode_op_fields(json_t *o, protocol_request *r, size_t n_binary,
                            protocol_error *perr) {
    int rc = 0;
    long long x;
    /* Binary frames only for ingest by bytes. */
    if (r->op != PROTOCOL_OP_INGEST && n_binary > 0)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_TOO_MANY_FRAMES,
                    "op \"%s\" takes no binary frames, got %zu", protocol_op_name(r->op), n_binary);
    switch (r->op) {
    case PROTOCOL_OP_INGEST:
        if ((rc = get_str(o, "path", false, 1, PROTOCOL_PATH_MAX, &r->path, perr))) return rc;
        if ((rc = get_str(o, "name", false, 1, PROTOCOL_NAME_MAX, &r->name, perr))) return rc;
        if (r->path && n_binary > 0)
            return fail(perr, SD_EPROTO, PROTOCOL_CODE_TOO_MANY_FRAMES,
                        "ingest: give either \"path\" or one file frame, not both");
        if (!r->path && n_binary == 0)
            return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                        "ingest: needs a file frame after the header, or \"path\"");
        if (n_binary > 1)
            return fail(perr, SD_EPROTO, PROTOCOL_CODE_TOO_MANY_FRAMES,
                        "ingest: one file per request, got %zu frames", n_binary);
        r->n_binary = n_binary;
        break;
    case PROTOCOL_OP_LIST:
        x = r->limit;
        if ((rc = get_int(o, "limit", 1, 10000, &x, NULL, perr))) return rc;
        r->limit = (uint32_t)x;
        x = r->offset;
        if ((rc = get_int(o, "offset", 0, UINT32_MAX, &x, NULL, perr))) return rc;
        r->offset = (uint32_t)x;
        break;
    case PROTOCOL_OP_GET:
        if ((rc = get_doc(o, &r->doc, perr))) return rc;
        if ((rc = get_bool(o, "pages", &r->pages, perr))) return rc;
        if ((rc = get_bool(o, "sections", &r->sections, perr))) return rc;
        break;
    case PROTOCOL_OP_DELETE:
        if ((rc = get_doc(o, &r->doc, perr))) return rc;
        break;
    case PROTOCOL_OP_SUMMARIZE:
        if ((rc = get_doc(o, &r->doc, perr))) return rc;
        if ((rc = decode_style(o, &r->style, perr))) return rc;
        x = r->words;
        if ((rc = get_int(o, "words", 0, 10000, &x, NULL, perr))) return rc;
        r->words = (uint32_t)x;
        rc = decode_options(o, &r->opt, perr);
        break;
    case PROTOCOL_OP_EXTRACT:
        if ((rc = get_doc(o, &r->doc, perr))) return rc;
        if ((rc = decode_categories(o, r, perr))) return rc;
        rc = decode_options(o, &r->opt, perr);
        break;
    case PROTOCOL_OP_ASK:
        if ((rc = get_doc(o, &r->doc, perr))) return rc;
        if ((rc = get_str(o, "question", true, 1, PROTOCOL_QUESTION_MAX, &r->question, perr)))
            return rc;
        rc = decode_options(o, &r->opt, perr);
        break;
    case PROTOCOL_OP_CANCEL: {
        json_t *t = json_object_get(o, "target");
        if (!t)
            return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST, "missing field \"target\"");
        if (!json_is_string(t) || !id_valid(json_string_value(t), json_string_length(t)))
            return fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                        "field \"target\" must be a request id (1..%d printable ASCII bytes)",
                        PROTOCOL_ID_MAX);
        memcpy(r->target, json_string_value(t), json_string_length(t) + 1);
        break;
    }
    case PROTOCOL_OP_STATUS:
    case PROTOCOL_OP_PING:
    default:
        break;
    }
    return rc;
}

void protocol_request_init(protocol_request *r, protocol_op op, const char *id) {
    memset(r, 0, sizeof *r);
    r->op = op;
    if (id) {
        size_t n = strlen(id);
        if (n > PROTOCOL_ID_MAX) n = PROTOCOL_ID_MAX;
        memcpy(r->id, id, n);
        r->id[n] = 0;
    }
    r->limit = 100;
    r->sections = true;
    r->style = PROTOCOL_STYLE_BRIEF;
    r->opt = protocol_options_default();
}

int protocol_decode_request(const void *header, size_t len, size_t n_binary,
                            const protocol_limits *lim, protocol_request **out,
                            protocol_error *perr) {
    protocol_limits d = protocol_limits_default();
    protocol_request *r = NULL;
    json_t *root = NULL;
    int rc = 0;
    if (!lim) lim = &d;
    *out = NULL;
    perr_clear(perr);
    if (!header && len) {
        return fail(perr, SD_EINVAL, PROTOCOL_CODE_INTERNAL, "protocol_decode_request: NULL header");
    }
    if (len > lim->max_header_bytes)
        return fail(perr, SD_ERANGE, PROTOCOL_CODE_TOO_LARGE,
                    "protocol_decode_request: header of %zu bytes, at most %zu allowed", len,
                    lim->max_header_bytes);
    if (n_binary + 1 > lim->max_frames || n_binary + 1 == 0)
        return fail(perr, SD_EPROTO, PROTOCOL_CODE_TOO_MANY_FRAMES,
                    "protocol_decode_request: %zu frames, at most %zu allowed", n_binary + 1,
                    lim->max_frames);
    {
        sd_err e;
        if (protocol_check_depth(header, len, lim->max_depth, &e) < 0)
            return fail(perr, SD_ERANGE, PROTOCOL_CODE_TOO_DEEP, "protocol_decode_request: %s",
                        e.msg);
    }
    json_error_t jerr;
    root = json_loadb(header ? header : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(perr, SD_EFORMAT, PROTOCOL_CODE_BAD_JSON,
                    "protocol_decode_request: bad JSON at line %d column %d: %s", jerr.line,
                    jerr.column, jerr.text);
    if (!json_is_object(root)) {
        rc = fail(perr, SD_EFORMAT, PROTOCOL_CODE_BAD_JSON,
                  "protocol_decode_request: header must be a JSON object");
        goto done;
    }
    /* The id first, so that later errors can be reported under it. */
    json_t *jid = json_object_get(root, "id");
    bool idok = jid && json_is_string(jid) && id_valid(json_string_value(jid), json_string_length(jid));
    if (idok && perr) memcpy(perr->id, json_string_value(jid), json_string_length(jid) + 1);

    json_t *jv = json_object_get(root, "v");
    if (!jv || !json_is_integer(jv) || json_integer_value(jv) != PROTOCOL_VERSION) {
        rc = fail(perr, SD_ENOTSUP, PROTOCOL_CODE_VERSION,
                  "protocol_decode_request: \"v\" must be the integer %d", PROTOCOL_VERSION);
        goto done;
    }
    if (!idok) {
        rc = fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                  "protocol_decode_request: \"id\" must be a string of 1..%d printable ASCII "
                  "bytes", PROTOCOL_ID_MAX);
        goto done;
    }
    json_t *jop = json_object_get(root, "op");
    if (!jop || !json_is_string(jop)) {
        rc = fail(perr, SD_EPROTO, PROTOCOL_CODE_BAD_REQUEST,
                  "protocol_decode_request: \"op\" must be a string");
        goto done;
    }
    protocol_op op = protocol_op_parse(json_string_value(jop));
    if (op == PROTOCOL_OP_NONE) {
        char shown[40];
        snprintf(shown, sizeof shown, "%s", json_string_value(jop));
        rc = fail(perr, SD_ENOTSUP, PROTOCOL_CODE_UNKNOWN_OP,
                  "protocol_decode_request: unknown op \"%s\"", shown);
        goto done;
    }
    r = malloc(sizeof *r);
    if (!r) {
        rc = fail(perr, SD_ENOMEM, PROTOCOL_CODE_INTERNAL, "protocol_decode_request: out of memory");
        goto done;
    }
    protocol_request_init(r, op, json_string_value(jid));
    rc = decode_op_fields(root, r, n_binary, perr);
    if (rc < 0 && perr && strncmp(perr->err.msg, "protocol_", 9) != 0) {
        char msg[sizeof perr->err.msg];
        snprintf(msg, sizeof msg, "protocol_decode_request: %s: %.440s", protocol_op_name(op),
                 perr->err.msg);
        memcpy(perr->err.msg, msg, sizeof msg);
    }
done:
    json_decref(root);
    if (rc < 0) {
        protocol_request_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void protocol_request_free(protocol_request *r) {
    if (!r) return;
    free(r->doc);
    free(r->path);
    free(r->name);
    free(r->question);
    for (size_t i = 0; i < r->n_categories; i++) {
        free(r->categories[i].name);
        free(r->categories[i].description);
    }
    free(r->categories);
    free(r);
}

/* ---- events ---- */

/* Starts an event object; id NULL gives "id": null. NULL on OOM or bad id. */
static json_t *event_begin(const char *id, const char *kind, bool id_may_be_null) {
    json_t *jid;
    if (id) {
        if (!id_valid(id, strlen(id))) return NULL;
        jid = json_string(id);
    } else {
        if (!id_may_be_null) return NULL;
        jid = json_null();
    }
    json_t *o = json_object();
    if (!o || !jid) {
        json_decref(o);
        json_decref(jid);
        return NULL;
    }
    if (json_object_set_new(o, "v", json_integer(PROTOCOL_VERSION)) ||
        json_object_set_new(o, "id", jid) || json_object_set_new(o, "event", json_string(kind))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Serialises and frees o; NULL in, NULL out. */
static char *event_end(json_t *o) {
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

char *protocol_event_accepted(const char *id) {
    return event_end(event_begin(id, "accepted", false));
}

char *protocol_event_progress(const char *id, const char *stage, uint64_t done, uint64_t total) {
    json_t *o = event_begin(id, "progress", false);
    if (!o) return NULL;
    /* JSON integers are int64 in jansson; clamp (never happens in practice). */
    if (done > INT64_MAX) done = INT64_MAX;
    if (total > INT64_MAX) total = INT64_MAX;
    if (json_object_set_new(o, "stage", json_string_lossy(stage ? stage : "")) ||
        json_object_set_new(o, "done", json_integer((json_int_t)done)) ||
        json_object_set_new(o, "total", json_integer((json_int_t)total))) {
        json_decref(o);
        return NULL;
    }
    return event_end(o);
}

char *protocol_event_token(const char *id, const char *text) {
    json_t *o = event_begin(id, "token", false);
    if (!o) return NULL;
    if (json_object_set_new(o, "text", json_string_lossy(text))) {
        json_decref(o);
        return NULL;
    }
    return event_end(o);
}

char *protocol_event_result(const char *id, json_t *result) {
    json_t *o = event_begin(id, "result", false);
    if (!o) return NULL;
    if (json_object_set_new(o, "result", result ? json_incref(result) : json_object())) {
        json_decref(o);
        return NULL;
    }
    return event_end(o);
}

char *protocol_event_error(const char *id, const char *code, const char *message) {
    /* An invalid id (e.g. from a rejected request) is sent as null. */
    if (id && !id_valid(id, strlen(id))) id = NULL;
    if (id && !*id) id = NULL;
    json_t *o = event_begin(id, "error", true);
    if (!o) return NULL;
    if (!code || !*code) code = "internal";
    if (json_object_set_new(o, "code", json_string_lossy(code)) ||
        json_object_set_new(o, "message", json_string_lossy(message ? message : code))) {
        json_decref(o);
        return NULL;
    }
    return event_end(o);
}

char *protocol_event_reject(const protocol_error *perr) {
    if (!perr) return protocol_event_error(NULL, "internal", NULL);
    protocol_code c = perr->code ? perr->code : PROTOCOL_CODE_INTERNAL;
    return protocol_event_error(perr->id[0] ? perr->id : NULL, protocol_code_name(c),
                                perr->err.msg[0] ? perr->err.msg : NULL);
}

/* ---- client side: request encoding ---- */

static int set_str(json_t *o, const char *key, const char *v) {
    return v ? json_object_set_new(o, key, json_string_lossy(v)) : 0;
}

static int encode_options(json_t *o, const protocol_options *opt) {
    protocol_options d = protocol_options_default();
    int rc = 0;
    if (opt->think != d.think) rc |= json_object_set_new(o, "think", json_boolean(opt->think));
    if (opt->max_tokens != d.max_tokens)
        rc |= json_object_set_new(o, "max_tokens", json_integer(opt->max_tokens));
    if (opt->temperature != d.temperature)
        rc |= json_object_set_new(o, "temperature", json_real(opt->temperature));
    if (opt->top_p != d.top_p) rc |= json_object_set_new(o, "top_p", json_real(opt->top_p));
    if (opt->top_k != d.top_k) rc |= json_object_set_new(o, "top_k", json_integer(opt->top_k));
    if (opt->min_p != d.min_p) rc |= json_object_set_new(o, "min_p", json_real(opt->min_p));
    if (opt->repetition_penalty != d.repetition_penalty)
        rc |= json_object_set_new(o, "repetition_penalty", json_real(opt->repetition_penalty));
    if (opt->has_seed) rc |= json_object_set_new(o, "seed", json_integer((json_int_t)opt->seed));
    if (opt->deadline_ms)
        rc |= json_object_set_new(o, "deadline_ms", json_integer(opt->deadline_ms));
    return rc;
}

char *protocol_request_encode(const protocol_request *r, sd_err *err) {
    if (!r || r->op <= PROTOCOL_OP_NONE || r->op >= PROTOCOL_OP_COUNT_) {
        sd_seterr(err, SD_EINVAL, "protocol_request_encode: unknown op");
        return NULL;
    }
    if (!id_valid(r->id, strlen(r->id))) {
        sd_seterr(err, SD_EINVAL, "protocol_request_encode: invalid id \"%s\"", r->id);
        return NULL;
    }
    json_t *o = json_object();
    if (!o) goto oom;
    int rc = json_object_set_new(o, "v", json_integer(PROTOCOL_VERSION));
    rc |= json_object_set_new(o, "id", json_string(r->id));
    rc |= json_object_set_new(o, "op", json_string(protocol_op_name(r->op)));
    switch (r->op) {
    case PROTOCOL_OP_INGEST:
        rc |= set_str(o, "path", r->path);
        rc |= set_str(o, "name", r->name);
        break;
    case PROTOCOL_OP_LIST:
        if (r->limit != 100) rc |= json_object_set_new(o, "limit", json_integer(r->limit));
        if (r->offset) rc |= json_object_set_new(o, "offset", json_integer(r->offset));
        break;
    case PROTOCOL_OP_GET:
        rc |= set_str(o, "doc", r->doc);
        if (r->pages) rc |= json_object_set_new(o, "pages", json_true());
        if (!r->sections) rc |= json_object_set_new(o, "sections", json_false());
        break;
    case PROTOCOL_OP_DELETE:
        rc |= set_str(o, "doc", r->doc);
        break;
    case PROTOCOL_OP_SUMMARIZE:
        rc |= set_str(o, "doc", r->doc);
        if (r->style != PROTOCOL_STYLE_BRIEF)
            rc |= json_object_set_new(o, "style", json_string(protocol_style_name(r->style)));
        if (r->words) rc |= json_object_set_new(o, "words", json_integer(r->words));
        rc |= encode_options(o, &r->opt);
        break;
    case PROTOCOL_OP_EXTRACT:
        rc |= set_str(o, "doc", r->doc);
        if (r->n_categories) {
            json_t *a = json_array();
            for (size_t i = 0; a && i < r->n_categories; i++) {
                const protocol_category *c = &r->categories[i];
                if (c->description)
                    rc |= json_array_append_new(
                        a, json_pack("{s:o,s:o}", "name", json_string_lossy(c->name),
                                     "description", json_string_lossy(c->description)));
                else
                    rc |= json_array_append_new(a, json_string_lossy(c->name));
            }
            rc |= json_object_set_new(o, "categories", a);
        }
        rc |= encode_options(o, &r->opt);
        break;
    case PROTOCOL_OP_ASK:
        rc |= set_str(o, "doc", r->doc);
        rc |= set_str(o, "question", r->question);
        rc |= encode_options(o, &r->opt);
        break;
    case PROTOCOL_OP_CANCEL:
        rc |= json_object_set_new(o, "target", json_string(r->target));
        break;
    default:
        break;
    }
    if (rc) {
        json_decref(o);
        goto oom;
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) goto oom;
    return s;
oom:
    sd_seterr(err, SD_ENOMEM, "protocol_request_encode: out of memory or invalid field");
    return NULL;
}

/* ---- client side: event decoding ---- */

static const char *const event_names[] = {"", "accepted", "progress", "token", "result", "error"};

void protocol_event_free(protocol_event *ev) {
    if (!ev) return;
    free(ev->stage);
    free(ev->text);
    json_decref(ev->result);
    free(ev->code_name);
    free(ev->message);
    free(ev);
}

bool protocol_event_is_final(const protocol_event *ev) {
    return ev && (ev->kind == PROTOCOL_EVENT_RESULT || ev->kind == PROTOCOL_EVENT_ERROR);
}

static int ev_str(json_t *o, const char *key, char **out, sd_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_string(v))
        return sd_seterr(err, SD_EPROTO, "protocol_decode_event: \"%s\" must be a string", key);
    *out = dupn(json_string_value(v), json_string_length(v));
    if (!*out) return sd_seterr(err, SD_ENOMEM, "protocol_decode_event: out of memory");
    return 0;
}

static int ev_u64(json_t *o, const char *key, uint64_t *out, sd_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_integer(v) || json_integer_value(v) < 0)
        return sd_seterr(err, SD_EPROTO,
                         "protocol_decode_event: \"%s\" must be a non-negative integer", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int protocol_decode_event(const void *buf, size_t len, protocol_event **out, sd_err *err) {
    *out = NULL;
    json_error_t jerr;
    int rc = 0;
    protocol_event *ev = NULL;
    /* Results can be large and nested (sections, clauses); a generous bound. */
    if (protocol_check_depth(buf, len, 64, err) < 0) return SD_ERANGE;
    json_t *o = json_loadb(buf ? buf : "", len, 0, &jerr);
    if (!o) return sd_seterr(err, SD_EFORMAT, "protocol_decode_event: bad JSON: %s", jerr.text);
    if (!json_is_object(o)) {
        rc = sd_seterr(err, SD_EFORMAT, "protocol_decode_event: not a JSON object");
        goto fail;
    }
    json_t *v = json_object_get(o, "v");
    if (!v || !json_is_integer(v) || json_integer_value(v) != PROTOCOL_VERSION) {
        rc = sd_seterr(err, SD_EPROTO, "protocol_decode_event: unsupported version");
        goto fail;
    }
    ev = calloc(1, sizeof *ev);
    if (!ev) {
        rc = sd_seterr(err, SD_ENOMEM, "protocol_decode_event: out of memory");
        goto fail;
    }
    json_t *id = json_object_get(o, "id");
    if (id && json_is_string(id) && id_valid(json_string_value(id), json_string_length(id))) {
        memcpy(ev->id, json_string_value(id), json_string_length(id) + 1);
    } else if (!(id && json_is_null(id))) {
        rc = sd_seterr(err, SD_EPROTO, "protocol_decode_event: bad \"id\"");
        goto fail;
    }
    json_t *k = json_object_get(o, "event");
    const char *kn = k && json_is_string(k) ? json_string_value(k) : "";
    for (size_t i = 1; i < sizeof event_names / sizeof event_names[0]; i++)
        if (strcmp(kn, event_names[i]) == 0) ev->kind = (protocol_event_kind)i;
    switch (ev->kind) {
    case PROTOCOL_EVENT_ACCEPTED:
        break;
    case PROTOCOL_EVENT_PROGRESS:
        if ((rc = ev_str(o, "stage", &ev->stage, err)) || (rc = ev_u64(o, "done", &ev->done, err)) ||
            (rc = ev_u64(o, "total", &ev->total, err)))
            goto fail;
        break;
    case PROTOCOL_EVENT_TOKEN:
        if ((rc = ev_str(o, "text", &ev->text, err))) goto fail;
        break;
    case PROTOCOL_EVENT_RESULT:
        ev->result = json_object_get(o, "result");
        if (!ev->result) {
            rc = sd_seterr(err, SD_EPROTO, "protocol_decode_event: result without \"result\"");
            goto fail;
        }
        json_incref(ev->result);
        break;
    case PROTOCOL_EVENT_ERROR:
        if ((rc = ev_str(o, "code", &ev->code_name, err))) goto fail;
        ev->code = protocol_code_parse(ev->code_name);
        if (json_is_string(json_object_get(o, "message"))) {
            if ((rc = ev_str(o, "message", &ev->message, err))) goto fail;
        } else {
            ev->message = dupn(ev->code_name, strlen(ev->code_name));
            if (!ev->message) {
                rc = sd_seterr(err, SD_ENOMEM, "protocol_decode_event: out of memory");
                goto fail;
            }
        }
        break;
    default:
        rc = sd_seterr(err, SD_EPROTO, "protocol_decode_event: unknown event kind");
        goto fail;
    }
    json_decref(o);
    *out = ev;
    return 0;
fail:
    protocol_event_free(ev);
    json_decref(o);
    return rc;
}
