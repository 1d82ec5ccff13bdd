/* protocol.h - the smoldoc wire format (see protocol/PROTOCOL.md): strict
 * decoding of request frames into a typed struct, encoding of the events the
 * daemon streams back, and the client-side counterparts (request encoding,
 * event decoding). Pure data: no sockets here (see protocol_client.h). */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sd.h"

/* Version of the wire format; every request and event carries it as "v". */
#define PROTOCOL_VERSION 1

/* Hard bounds that do not depend on configuration. */
#define PROTOCOL_ID_MAX 64            /* request id: 1..64 bytes of 0x21..0x7e */
#define PROTOCOL_DOC_MAX 128          /* document reference: 1..128 bytes */
#define PROTOCOL_NAME_MAX 1024        /* ingest display name */
#define PROTOCOL_PATH_MAX 4096        /* ingest path on the daemon's machine */
#define PROTOCOL_QUESTION_MAX 16384   /* ask question, bytes */
#define PROTOCOL_CATEGORY_MAX 512     /* one category name or description, bytes */
#define PROTOCOL_CATEGORIES_MAX 128   /* extract: number of categories */

/* Request operations. */
typedef enum protocol_op {
    PROTOCOL_OP_NONE = 0,
    PROTOCOL_OP_INGEST,
    PROTOCOL_OP_LIST,
    PROTOCOL_OP_GET,
    PROTOCOL_OP_DELETE,
    PROTOCOL_OP_SUMMARIZE,
    PROTOCOL_OP_EXTRACT,
    PROTOCOL_OP_ASK,
    PROTOCOL_OP_STATUS,
    PROTOCOL_OP_CANCEL,
    PROTOCOL_OP_PING,
    PROTOCOL_OP_COUNT_
} protocol_op;

/* Stable wire error codes, sent as the "code" string of an error event. */
typedef enum protocol_code {
    PROTOCOL_CODE_NONE = 0,        /* "" (no error) */
    PROTOCOL_CODE_BAD_JSON,        /* "bad_json": header is not one JSON object text */
    PROTOCOL_CODE_BAD_REQUEST,     /* "bad_request": missing field, wrong type, bad value */
    PROTOCOL_CODE_UNKNOWN_OP,      /* "unknown_op" */
    PROTOCOL_CODE_VERSION,         /* "version": "v" missing or not supported */
    PROTOCOL_CODE_TOO_LARGE,       /* "too_large": a frame or a field over its limit */
    PROTOCOL_CODE_TOO_MANY_FRAMES, /* "too_many_frames" (or too few for the op) */
    PROTOCOL_CODE_TOO_DEEP,        /* "too_deep": JSON nesting over the limit */
    PROTOCOL_CODE_BUSY,            /* "busy": queue full, retry later */
    PROTOCOL_CODE_NOT_FOUND,       /* "not_found": unknown document or request id */
    PROTOCOL_CODE_CANCELED,        /* "canceled": stopped by a cancel request */
    PROTOCOL_CODE_DEADLINE,        /* "deadline": deadline_ms passed */
    PROTOCOL_CODE_FORBIDDEN,       /* "forbidden": e.g. ingest by path not allowed */
    PROTOCOL_CODE_BAD_DOCUMENT,    /* "bad_document": the file could not be read */
    PROTOCOL_CODE_SHUTTING_DOWN,   /* "shutting_down": the daemon is stopping */
    PROTOCOL_CODE_INTERNAL,        /* "internal": anything else (a bug or I/O) */
    PROTOCOL_CODE_COUNT_
} protocol_code;

/* Limits enforced before and while parsing. Get defaults from
 * protocol_limits_default() and change what you need. */
typedef struct protocol_limits {
    size_t max_frames;       /* frames per request, header included (default 2) */
    size_t max_header_bytes; /* header frame (default 65536) */
    size_t max_frame_bytes;  /* each binary frame (default 256 MiB) */
    size_t max_depth;        /* JSON nesting of [ and { (default 16) */
} protocol_limits;

/* Summary styles. */
typedef enum protocol_style {
    PROTOCOL_STYLE_BRIEF = 0, /* default */
    PROTOCOL_STYLE_DETAILED,
    PROTOCOL_STYLE_BULLETS,
} protocol_style;

/* Per-request generation options; protocol_options_default() gives the
 * defaults that the decoder applies to absent fields. */
typedef struct protocol_options {
    bool think;                /* "think": reasoning mode (default false) */
    int32_t max_tokens;        /* 0 = the task's default; else 1..32768 */
    float temperature;         /* 0..2, default 0.6; 0 = greedy */
    float top_p;               /* (0,1], default 0.95 */
    int32_t top_k;             /* 0 = off (default), else 1..1000000 */
    float min_p;               /* [0,1), default 0 */
    float repetition_penalty;  /* [0.5,2], default 1.0 (off) */
    bool has_seed;             /* "seed" present */
    uint64_t seed;             /* 0..2^53-1 when has_seed */
    uint32_t deadline_ms;      /* 0 = none, else 1..86400000, from receipt */
} protocol_options;

/* One extraction category: a name and an optional description (NULL). */
typedef struct protocol_category {
    char *name;
    char *description;
} protocol_category;

/* A decoded request. From protocol_decode_request every pointer is owned by
 * the struct (free with protocol_request_free). A client may also fill one on
 * the stack (after protocol_request_init) with borrowed strings and pass it to
 * protocol_request_encode; it must not call protocol_request_free then.
 * Fields that do not apply to the op are NULL / 0. */
typedef struct protocol_request {
    protocol_op op;
    char id[PROTOCOL_ID_MAX + 1];   /* "id", always set */
    char *doc;          /* get delete summarize extract ask: document reference */
    /* ingest */
    char *path;         /* "path" on the daemon's machine, or NULL (then bytes) */
    char *name;         /* "name": display name (file name), or NULL */
    size_t n_binary;    /* binary frames after the header: 1 for ingest by bytes */
    /* list */
    uint32_t limit;     /* "limit": default 100, 1..10000 */
    uint32_t offset;    /* "offset": default 0 */
    /* get */
    bool pages;         /* "pages": include page text (default false) */
    bool sections;      /* "sections": include sections (default true) */
    /* summarize */
    protocol_style style;  /* "style": "brief" | "detailed" | "bullets" */
    uint32_t words;        /* "words": target length, 0 = style default, <= 10000 */
    /* extract: NULL/0 = the 41 CUAD categories */
    protocol_category *categories;
    size_t n_categories;
    /* ask */
    char *question;
    /* cancel */
    char target[PROTOCOL_ID_MAX + 1];  /* "target": id of the request to cancel */
    /* summarize extract ask (ignored by other ops) */
    protocol_options opt;
} protocol_request;

/* A failed check or decode: the SD_E* code and message, plus the stable wire
 * code and the request id when it could be read (else id[0] == 0), which is
 * everything needed for the error event (protocol_event_reject). */
typedef struct protocol_error {
    sd_err err;
    protocol_code code;
    char id[PROTOCOL_ID_MAX + 1];
} protocol_error;

/* ---- names ---- */

/* Wire name of an op ("ingest", ...); "" for PROTOCOL_OP_NONE or out of range. */
const char *protocol_op_name(protocol_op op);
/* Op from its wire name; PROTOCOL_OP_NONE if unknown or NULL. */
protocol_op protocol_op_parse(const char *name);
/* Wire name of an error code ("bad_json", ...); "internal" if out of range. */
const char *protocol_code_name(protocol_code code);
/* Code from its wire name; PROTOCOL_CODE_INTERNAL if unknown, NONE for NULL. */
protocol_code protocol_code_parse(const char *name);
/* The wire code a daemon should send for a negative SD_E* code (e.g.
 * SD_ENOTFOUND -> not_found, SD_EBUSY -> busy, SD_EFORMAT -> bad_document). */
protocol_code protocol_code_from_sd(int rc);
/* Wire name of a summary style; "brief" if out of range. */
const char *protocol_style_name(protocol_style s);

/* ---- server side: checking and decoding requests ---- */

protocol_limits protocol_limits_default(void);
protocol_options protocol_options_default(void);

/* Checks the frame count and sizes of one request message (the frames after
 * the ROUTER identity: header first, then binary frames) before any parsing.
 * lim may be NULL (defaults). Returns 0, or SD_EPROTO (no frames, or more than
 * max_frames: code too_many_frames) or SD_ERANGE (header over max_header_bytes
 * or a binary frame over max_frame_bytes: code too_large). perr may be NULL. */
int protocol_check_frames(const size_t *frame_sizes, size_t n_frames,
                          const protocol_limits *lim, protocol_error *perr);

/* Checks, without recursion and without parsing, that the JSON text in
 * buf[0..len) never nests [ and { deeper than max_depth (brackets inside
 * strings do not count). Returns 0 or SD_ERANGE. */
int protocol_check_depth(const void *buf, size_t len, size_t max_depth, sd_err *err);

/* Decodes and validates one request header (header[0..len), not necessarily
 * NUL-terminated), n_binary being the number of binary frames that followed
 * it. Checks size and depth first, then: a JSON object; "v" == PROTOCOL_VERSION
 * (integer); "id" a string of 1..PROTOCOL_ID_MAX bytes in 0x21..0x7e; "op"
 * known; every field of the op with its type and range; options with defaults
 * applied. Unknown fields are ignored. lim may be NULL (defaults).
 * On success *out is a new request (free with protocol_request_free) and 0 is
 * returned; on failure *out is NULL and a negative code is returned (SD_EPROTO,
 * SD_ERANGE, SD_EFORMAT, SD_ENOTSUP, SD_ENOMEM) with perr filled. */
int protocol_decode_request(const void *header, size_t len, size_t n_binary,
                            const protocol_limits *lim, protocol_request **out,
                            protocol_error *perr);

/* Frees a request from protocol_decode_request; NULL is fine. */
void protocol_request_free(protocol_request *r);

/* ---- server side: events. Each returns a malloc'd, NUL-terminated JSON
 * text owned by the caller (free()), one ZeroMQ frame; NULL only if id is
 * invalid or out of memory. id may be NULL only for error events (then "id"
 * is null: the request's id could not be read). ---- */

/* {"v":1,"id":ID,"event":"accepted"} */
char *protocol_event_accepted(const char *id);
/* {"v":1,"id":ID,"event":"progress","stage":STAGE,"done":D,"total":T}
 * stage: "queued" | "ingest" | "prefill" | "decode" | "map" | "reduce" | ... */
char *protocol_event_progress(const char *id, const char *stage, uint64_t done, uint64_t total);
/* {"v":1,"id":ID,"event":"token","text":TEXT}; text must be valid UTF-8
 * (invalid bytes are replaced by U+FFFD). */
char *protocol_event_token(const char *id, const char *text);
/* {"v":1,"id":ID,"event":"result","result":RESULT}; result is borrowed (not
 * stolen); NULL means {}. */
char *protocol_event_result(const char *id, json_t *result);
/* {"v":1,"id":ID|null,"event":"error","code":CODE,"message":MSG}; message may
 * be NULL (then the code's name); invalid UTF-8 is replaced. */
char *protocol_event_error(const char *id, const char *code, const char *message);
/* The error event for a failed protocol_check_frames/protocol_decode_request. */
char *protocol_event_reject(const protocol_error *perr);

/* ---- client side ---- */

/* Sets r to an empty request for op with the given id (copied, truncated to
 * PROTOCOL_ID_MAX) and every default applied. Nothing is allocated. */
void protocol_request_init(protocol_request *r, protocol_op op, const char *id);

/* Encodes r as a request header (malloc'd JSON text, caller frees). Writes
 * only the fields that apply to r->op, and options only where they differ from
 * the defaults. Returns NULL and fills err (SD_EINVAL) if r is not encodable
 * (unknown op, empty id). */
char *protocol_request_encode(const protocol_request *r, sd_err *err);

/* Event kinds. */
typedef enum protocol_event_kind {
    PROTOCOL_EVENT_NONE = 0,
    PROTOCOL_EVENT_ACCEPTED,
    PROTOCOL_EVENT_PROGRESS,
    PROTOCOL_EVENT_TOKEN,
    PROTOCOL_EVENT_RESULT,
    PROTOCOL_EVENT_ERROR,
} protocol_event_kind;

/* A decoded event. Owned by the struct; free with protocol_event_free. */
typedef struct protocol_event {
    protocol_event_kind kind;
    char id[PROTOCOL_ID_MAX + 1]; /* "" when the event's id was null */
    char *stage;             /* progress */
    uint64_t done, total;    /* progress */
    char *text;              /* token */
    json_t *result;          /* result: a new reference owned by the event */
    protocol_code code;      /* error */
    char *code_name;         /* error: the code string as sent */
    char *message;           /* error */
} protocol_event;

/* Decodes one event frame buf[0..len). Returns 0 and *out (free with
 * protocol_event_free), or SD_EFORMAT / SD_EPROTO / SD_ENOMEM with err set.
 * An unknown event kind is SD_EPROTO. Unknown fields are ignored. */
int protocol_decode_event(const void *buf, size_t len, protocol_event **out, sd_err *err);

/* Frees an event; NULL is fine. */
void protocol_event_free(protocol_event *ev);

/* True for the events that end a request (result, error). */
bool protocol_event_is_final(const protocol_event *ev);

#endif
