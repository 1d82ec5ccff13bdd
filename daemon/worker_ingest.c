/* worker_ingest.c - the ingest worker: turns a job's file bytes (or a path)
 * into an ingest_doc (PDFs are read by poppler in a time-limited child
 * process, see ingest.h). The loop stores the result: it owns SQLite. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "ingest.h"
#include "job.h"
#include "log.h"
#include "store.h"
#include "worker.h"

int worker_send(void *sock, const void *jp, char kind, const char *payload, size_t len) {
    uintptr_t p = (uintptr_t)jp;
    if (zmq_send(sock, &p, sizeof p, ZMQ_SNDMORE) < 0) return -1;
    char *buf = xmalloc(len + 1);
    buf[0] = kind;
    if (len) memcpy(buf + 1, payload, len);
    int rc = zmq_send(sock, buf, len + 1, 0);
    free(buf);
    return rc < 0 ? -1 : 0;
}

static void send_event(void *sock, job *j, char *ev) {
    if (!ev) return;
    worker_send(sock, j, 'E', ev, strlen(ev));
    free(ev);
}

void *worker_ingest_main(void *arg) {
    worker_args *a = arg;
    void *sock = zmq_socket(a->zctx, ZMQ_PAIR);
    if (!sock || zmq_connect(sock, a->endpoint)) {
        LOG(LOG_ERROR, "ingest worker: cannot connect %s: %s", a->endpoint, zmq_strerror(zmq_errno()));
        if (sock) zmq_close(sock);
        return NULL;
    }
    worker_send(sock, NULL, 'R', "{}", 2);
    for (;;) {
        uintptr_t p = 0;
        int n = zmq_recv(sock, &p, sizeof p, 0);
        if (n < 0) { if (zmq_errno() == EINTR) continue; break; }
        if (n != (int)sizeof p || !p) break;
        job *j = (job *)p;
        j->t_start = sd_now();
        send_event(sock, j, protocol_event_progress(j->req->id, "ingest", 0, 0));
        ingest_params ip = ingest_params_default();
        ip.timeout_s = j->ingest_timeout_s;
        sd_err err = {0};
        int rc;
        if (atomic_load(&j->cancel)) rc = SD_ECANCELED, sd_seterr(&err, rc, "canceled before it started");
        else {
            rc = 0;
            if (j->req->path) {
                char *buf = NULL;
                size_t len = 0;
                rc = sd_read_file(j->req->path, ip.max_bytes, &buf, &len, &err);
                if (!rc) { free(j->data); j->data = buf; j->len = len; }
            }
            if (!rc && store_sha256(j->data, j->len, j->sha, NULL))
                rc = sd_seterr(&err, SD_EBACKEND, "SHA-256 failed");
            if (!rc) {
                const char *name = j->req->name;
                if (!name && j->req->path) {
                    const char *sl = strrchr(j->req->path, '/');
                    name = sl ? sl + 1 : j->req->path;
                }
                rc = ingest_bytes(j->data, j->len, name, &ip, &j->doc, &err);
            }
        }
        free(j->data);
        j->data = NULL;
        j->rc = rc;
        if (rc) {
            j->code = rc == SD_ENOTFOUND || rc == SD_EIO ? PROTOCOL_CODE_BAD_DOCUMENT : protocol_code_from_sd(rc);
            if (rc == SD_ECANCELED) j->code = PROTOCOL_CODE_CANCELED;
            snprintf(j->msg, sizeof j->msg, "%s", err.msg);
            LOG(LOG_INFO, "ingest %s failed: %s", j->req->id, err.msg);
        } else {
            send_event(sock, j, protocol_event_progress(j->req->id, "ingest", (uint64_t)j->doc->n_pages,
                                                        (uint64_t)j->doc->n_pages));
        }
        worker_send(sock, j, 'D', NULL, 0);
    }
    zmq_close(sock);
    return NULL;
}
