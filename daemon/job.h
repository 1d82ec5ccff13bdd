/* job.h - one queued unit of work passed from the event loop to a worker and
 * back over inproc sockets (the pointer travels; ownership moves with it).
 * While a worker holds a job the loop touches only its atomic cancel flag. */
#ifndef JOB_H
#define JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ingest.h"
#include "protocol.h"

/* Why a job was stopped (job.cancel). */
enum { JOB_RUN = 0, JOB_CANCELED = 1, JOB_DEADLINE = 2, JOB_SHUTDOWN = 3 };

/* Control messages to the engine worker that are not requests. */
typedef enum job_kind {
    JOB_REQUEST = 0, /* a decoded request (ingest, summarize, extract, ask) */
    JOB_DROP_DOC,    /* engine: forget the prefixes of doc_id */
    JOB_STATUS,      /* engine: send a status snapshot */
} job_kind;

typedef struct job {
    job_kind kind;
    uint64_t serial;         /* unique per daemon run */
    int sock;                /* index of the ROUTER socket the request came on */
    uint8_t ident[256];      /* ZeroMQ routing identity of the client */
    size_t ident_len;
    protocol_request *req;   /* owned */
    double t_recv;           /* sd_now() at receipt */
    double t_start;          /* when a worker took it */
    double deadline;         /* absolute sd_now() time, 0 = none */
    atomic_int cancel;       /* JOB_RUN or why to stop; set by the loop */
    bool running;            /* handed to a worker (loop's view) */

    /* ingest: input */
    void *data;              /* file bytes (owned), or NULL with req->path */
    size_t len;
    double ingest_timeout_s;
    uint8_t sha[32];         /* SHA-256 of the file bytes (set by the ingest worker) */
    /* ingest: output */
    ingest_doc *doc;         /* owned until stored */

    /* engine: input (owned; loaded from the store by the loop) */
    int64_t doc_id;
    char *doc_name;
    char *text;
    size_t text_len;
    int64_t *page_start;
    int n_pages;
    double created_at;
    int max_tokens;          /* resolved default */
    int summary_window;      /* tokens */
    bool verify_prompts;
    int64_t *sec_start;      /* (n_sec) byte offsets where the document's sections start, ascending */
    int n_sec;
    double *score;           /* (n_score, n_pages) full-text relevance of each page for the question
                              * (ask: 1 row) or each category (extract: one row per category); NULL = none */
    int n_score;
    json_t *map_cache;       /* summarize: map results stored earlier, [{start, end, tokens, text}] (owned) */

    /* summarize: map results computed by this job, same form, for the loop to store (owned) */
    json_t *map_new;

    /* output (worker fills; loop sends and stores) */
    int rc;                  /* 0 or SD_E* */
    protocol_code code;      /* wire code when rc != 0 */
    char msg[512];
    json_t *result;          /* owned */
} job;

#endif
