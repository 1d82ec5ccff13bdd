/* protocol_client.h - a small ZeroMQ DEALER connection to smoldocd: connect
 * (optionally with CurveZMQ keys), send a request (header + binary frames),
 * receive decoded events with a timeout. Also CurveZMQ key files. Used by the
 * C client and by tests that drive the daemon. One thread per connection. */
#ifndef PROTOCOL_CLIENT_H
#define PROTOCOL_CLIENT_H

#include <stddef.h>

#include "protocol.h"
#include "sd.h"

#define PROTOCOL_KEY_Z85_LEN 40 /* a Curve25519 key in Z85 text */

typedef struct protocol_client protocol_client;

typedef struct protocol_client_params {
    const char *endpoint;           /* e.g. "ipc:///run/smoldocd.sock", "tcp://host:5555" */
    const char *server_public_z85;  /* CurveZMQ: server public key (40 chars) or NULL */
    const char *client_public_z85;  /* CurveZMQ: client key pair; generated for this */
    const char *client_secret_z85;  /*   connection when NULL and server key is set */
    int linger_ms;                  /* ZMQ_LINGER on close (default 0) */
} protocol_client_params;

protocol_client_params protocol_client_params_default(void);

/* Connects a DEALER socket to p->endpoint (connect is asynchronous: an
 * absent daemon shows up as a receive timeout). Returns NULL and fills err
 * (SD_EINVAL bad endpoint or key, SD_ENOTSUP no CURVE in libzmq, SD_EIO). */
protocol_client *protocol_client_new(const protocol_client_params *p, sd_err *err);

/* Closes the socket and its context; NULL is fine. */
void protocol_client_free(protocol_client *c);

/* Sends one request: the header text (NUL-terminated) followed by n binary
 * frames frames[i][0..sizes[i]) (frames may be NULL when n == 0). Blocks at
 * most timeout_ms (< 0: forever) while the send queue is full.
 * Returns 0, SD_ETIMEOUT or SD_EIO. */
int protocol_client_send(protocol_client *c, const char *header,
                         const void *const *frames, const size_t *sizes, size_t n,
                         int timeout_ms, sd_err *err);

/* Receives and decodes the next event, waiting at most timeout_ms (< 0:
 * forever). Returns 0 and *out (free with protocol_event_free), SD_ETIMEOUT,
 * SD_EIO, or the protocol_decode_event codes for a malformed event. */
int protocol_client_recv(protocol_client *c, int timeout_ms, protocol_event **out, sd_err *err);

/* Generates a CurveZMQ key pair (Z85, NUL-terminated). Returns 0 or SD_ENOTSUP. */
int protocol_keygen(char pub[PROTOCOL_KEY_Z85_LEN + 1], char sec[PROTOCOL_KEY_Z85_LEN + 1],
                    sd_err *err);

/* Writes a key pair as two files: PREFIX.key (mode 0600, "public-key = ..."
 * and "secret-key = ..." lines) and PREFIX.pub (mode 0644, the public line).
 * Refuses to overwrite existing files (SD_EINVAL). Returns 0 or SD_EIO. */
int protocol_keyfile_write(const char *prefix, const char *pub, const char *sec, sd_err *err);

/* Reads a key file: lines "public-key = Z85", "secret-key = Z85", a bare
 * 40-char Z85 line (a public key), '#' comments and blank lines. pub and sec
 * may be NULL; a wanted key that is absent gives SD_ENOTFOUND (pub[0]/sec[0]
 * are set to 0 first). Returns 0, SD_ENOTFOUND, SD_EIO or SD_EFORMAT. */
int protocol_keyfile_read(const char *path, char pub[PROTOCOL_KEY_Z85_LEN + 1],
                          char sec[PROTOCOL_KEY_Z85_LEN + 1], sd_err *err);

/* Reads every public key of a file (same line syntax as protocol_keyfile_read;
 * "secret-key" lines are skipped), e.g. a daemon's list of allowed clients.
 * *keys is a malloc'd array of *n NUL-terminated Z85 keys (caller frees; NULL
 * when *n == 0). Returns 0, SD_ENOTFOUND (no file), SD_EIO or SD_EFORMAT. */
int protocol_keylist_read(const char *path, char (**keys)[PROTOCOL_KEY_Z85_LEN + 1],
                          size_t *n, sd_err *err);

#endif
