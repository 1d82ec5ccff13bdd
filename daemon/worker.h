/* worker.h - the two worker threads. Each connects a PAIR socket to the
 * loop's inproc endpoint, receives job pointers (8-byte frames; NULL = stop)
 * and answers with two-frame messages [job pointer][kind + payload]:
 *   'E' + event JSON  an event to forward to the job's client
 *   'D'               the job is done (rc, code, msg, result filled)
 *   'R' + JSON        the worker is ready (job pointer NULL)
 *   'F' + message     the worker could not start (job pointer NULL)
 *   'S' + JSON        engine status snapshot (job pointer NULL) */
#ifndef WORKER_H
#define WORKER_H

#include "settings.h"

typedef struct worker_args {
    void *zctx;             /* the daemon's ZeroMQ context */
    const char *endpoint;   /* inproc endpoint bound by the loop */
    const settings *s;      /* read-only while workers run */
} worker_args;

/* Thread entry points (pthread_create); arg is a worker_args*. */
void *worker_ingest_main(void *arg);
void *worker_engine_main(void *arg);

/* Sends [job pointer][kind + payload] on a worker's socket. Returns 0 or -1. */
int worker_send(void *sock, const void *job, char kind, const char *payload, size_t len);

#endif
