/* protocol_client.c - DEALER connection to smoldocd (send a request, receive
 * decoded events with a timeout) and CurveZMQ key files. */
#include "protocol_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

struct protocol_client {
    void *ctx;
    void *sock;
};

protocol_client_params protocol_client_params_default(void) {
    protocol_client_params p = {0};
    p.linger_ms = 0;
    return p;
}

/* True if s is a 40-character Z85 text that decodes to a 32-byte key. */
static bool key_valid(const char *s) {
    if (!s || strlen(s) != PROTOCOL_KEY_Z85_LEN) return false;
    uint8_t raw[32];
    return zmq_z85_decode(raw, s) != NULL;
}

protocol_client *protocol_client_new(const protocol_client_params *p, sd_err *err) {
    protocol_client *c = NULL;
    char gpub[PROTOCOL_KEY_Z85_LEN + 1], gsec[PROTOCOL_KEY_Z85_LEN + 1];
    if (!p || !p->endpoint || !*p->endpoint) {
        sd_seterr(err, SD_EINVAL, "protocol_client_new: no endpoint");
        return NULL;
    }
    c = xcalloc(1, sizeof *c);
    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        sd_seterr(err, SD_EIO, "protocol_client_new: zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->sock) {
        sd_seterr(err, SD_EIO, "protocol_client_new: zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = p->linger_ms;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (p->server_public_z85) {
        const char *cpub = p->client_public_z85, *csec = p->client_secret_z85;
        if (!zmq_has("curve")) {
            sd_seterr(err, SD_ENOTSUP, "protocol_client_new: this libzmq has no CURVE support");
            goto fail;
        }
        if (!key_valid(p->server_public_z85)) {
            sd_seterr(err, SD_EINVAL, "protocol_client_new: server public key is not 40 chars of Z85");
            goto fail;
        }
        if (!cpub || !csec) {
            if (zmq_curve_keypair(gpub, gsec) != 0) {
                sd_seterr(err, SD_ENOTSUP, "protocol_client_new: zmq_curve_keypair: %s",
                          zmq_strerror(errno));
                goto fail;
            }
            cpub = gpub;
            csec = gsec;
        }
        if (!key_valid(cpub) || !key_valid(csec)) {
            sd_seterr(err, SD_EINVAL, "protocol_client_new: client key pair is not valid Z85");
            goto fail;
        }
        if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, p->server_public_z85, 41) ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, cpub, 41) ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, csec, 41)) {
            sd_seterr(err, SD_EINVAL, "protocol_client_new: setting CURVE keys: %s",
                      zmq_strerror(errno));
            goto fail;
        }
    }
    if (zmq_connect(c->sock, p->endpoint) != 0) {
        sd_seterr(err, SD_EINVAL, "protocol_client_new: connect %s: %s", p->endpoint,
                  zmq_strerror(errno));
        goto fail;
    }
    memset(gsec, 0, sizeof gsec);
    return c;
fail:
    memset(gsec, 0, sizeof gsec);
    protocol_client_free(c);
    return NULL;
}

void protocol_client_free(protocol_client *c) {
    if (!c) return;
    if (c->sock) zmq_close(c->sock);
    if (c->ctx) zmq_ctx_term(c->ctx);
    free(c);
}

int protocol_client_send(protocol_client *c, const char *header, const void *const *frames,
                         const size_t *sizes, size_t n, int timeout_ms, sd_err *err) {
    int to = timeout_ms < 0 ? -1 : timeout_ms;
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &to, sizeof to);
    if (zmq_send(c->sock, header, strlen(header), n ? ZMQ_SNDMORE : 0) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (zmq_send(c->sock, frames[i], sizes[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0) goto fail;
    return 0;
fail:
    if (errno == EAGAIN)
        return sd_seterr(err, SD_ETIMEOUT, "protocol_client_send: timed out after %d ms",
                         timeout_ms);
    return sd_seterr(err, SD_EIO, "protocol_client_send: %s", zmq_strerror(errno));
}

int protocol_client_recv(protocol_client *c, int timeout_ms, protocol_event **out, sd_err *err) {
    *out = NULL;
    zmq_pollitem_t it = {.socket = c->sock, .events = ZMQ_POLLIN};
    int n;
    do {
        n = zmq_poll(&it, 1, timeout_ms < 0 ? -1 : timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return sd_seterr(err, SD_EIO, "protocol_client_recv: poll: %s", zmq_strerror(errno));
    if (n == 0)
        return sd_seterr(err, SD_ETIMEOUT, "protocol_client_recv: no reply within %d ms",
                         timeout_ms);
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, c->sock, 0) < 0) {
        zmq_msg_close(&m);
        return sd_seterr(err, SD_EIO, "protocol_client_recv: %s", zmq_strerror(errno));
    }
    int more = zmq_msg_more(&m);
    while (more) { /* events are one frame: drop any extra frames */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, c->sock, 0) < 0) more = 0;
        else more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    int rc = protocol_decode_event(zmq_msg_data(&m), zmq_msg_size(&m), out, err);
    zmq_msg_close(&m);
    return rc;
}

/* ---- keys ---- */

int protocol_keygen(char pub[PROTOCOL_KEY_Z85_LEN + 1], char sec[PROTOCOL_KEY_Z85_LEN + 1],
                    sd_err *err) {
    if (!zmq_has("curve") || zmq_curve_keypair(pub, sec) != 0)
        return sd_seterr(err, SD_ENOTSUP, "protocol_keygen: this libzmq cannot make CURVE keys");
    return 0;
}

static int write_new(const char *path, int mode, const char *text, sd_err *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return sd_seterr(err, SD_EINVAL, "protocol_keyfile_write: %s exists, not overwriting",
                             path);
        return sd_seterr(err, SD_EIO, "protocol_keyfile_write: %s: %s", path, strerror(errno));
    }
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    if (close(fd) != 0 || w != (ssize_t)n)
        return sd_seterr(err, SD_EIO, "protocol_keyfile_write: write %s: %s", path, strerror(e));
    return 0;
}

int protocol_keyfile_write(const char *prefix, const char *pub, const char *sec, sd_err *err) {
    if (!key_valid(pub) || !key_valid(sec))
        return sd_seterr(err, SD_EINVAL, "protocol_keyfile_write: invalid key");
    size_t n = strlen(prefix) + 8;
    char *kpath = xmalloc(n), *ppath = xmalloc(n);
    snprintf(kpath, n, "%s.key", prefix);
    snprintf(ppath, n, "%s.pub", prefix);
    char text[256];
    snprintf(text, sizeof text,
             "# smoldoc CurveZMQ key pair (secret: keep this file private)\n"
             "public-key = %s\nsecret-key = %s\n", pub, sec);
    int rc = write_new(kpath, 0600, text, err);
    if (rc == 0) {
        snprintf(text, sizeof text, "# smoldoc CurveZMQ public key\npublic-key = %s\n", pub);
        rc = write_new(ppath, 0644, text, err);
        if (rc) unlink(kpath);
    }
    memset(text, 0, sizeof text);
    free(kpath);
    free(ppath);
    return rc;
}

/* Parses one line: returns 1 public, 2 secret, 0 skip, -1 malformed; the key
 * goes into key (41 bytes). */
static int key_line(char *line, char *key) {
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\n' || s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
        s[--l] = 0;
    if (!*s || *s == '#') return 0;
    int kind = 1;
    if (strncmp(s, "public-key", 10) == 0 || strncmp(s, "secret-key", 10) == 0) {
        kind = s[0] == 'p' ? 1 : 2;
        s += 10;
        while (*s == ' ' || *s == '\t') s++;
        if (*s != '=') return -1;
        s++;
        while (*s == ' ' || *s == '\t') s++;
    }
    if (!key_valid(s)) return -1;
    memcpy(key, s, PROTOCOL_KEY_Z85_LEN + 1);
    return kind;
}

/* Reads every key line of path, calling back for each. */
static int key_scan(const char *path, const char *fn, int (*cb)(void *, int, const char *),
                    void *ud, sd_err *err) {
    char *buf = NULL;
    size_t len;
    int rc = sd_read_file(path, 1 << 20, &buf, &len, err);
    if (rc) return rc;
    char *save = NULL, key[PROTOCOL_KEY_Z85_LEN + 1];
    int lineno = 0;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        int k = key_line(line, key);
        if (k < 0) {
            rc = sd_seterr(err, SD_EFORMAT, "%s: %s line %d: not a Z85 key line", fn, path, lineno);
            break;
        }
        if (k > 0 && (rc = cb(ud, k, key))) break;
    }
    memset(buf, 0, len);
    memset(key, 0, sizeof key);
    free(buf);
    return rc;
}

struct pair_ud { char *pub, *sec; };

static int pair_cb(void *ud, int kind, const char *key) {
    struct pair_ud *u = ud;
    if (kind == 1 && u->pub) memcpy(u->pub, key, PROTOCOL_KEY_Z85_LEN + 1);
    if (kind == 2 && u->sec) memcpy(u->sec, key, PROTOCOL_KEY_Z85_LEN + 1);
    return 0;
}

int protocol_keyfile_read(const char *path, char pub[PROTOCOL_KEY_Z85_LEN + 1],
                          char sec[PROTOCOL_KEY_Z85_LEN + 1], sd_err *err) {
    if (pub) pub[0] = 0;
    if (sec) sec[0] = 0;
    struct pair_ud u = {pub, sec};
    int rc = key_scan(path, "protocol_keyfile_read", pair_cb, &u, err);
    if (rc) return rc;
    if (pub && !pub[0])
        return sd_seterr(err, SD_ENOTFOUND, "protocol_keyfile_read: %s has no public key", path);
    if (sec && !sec[0])
        return sd_seterr(err, SD_ENOTFOUND, "protocol_keyfile_read: %s has no secret key", path);
    return 0;
}

struct list_ud { char (*keys)[PROTOCOL_KEY_Z85_LEN + 1]; size_t n, cap; };

static int list_cb(void *ud, int kind, const char *key) {
    struct list_ud *u = ud;
    if (kind != 1) return 0;
    if (u->n == u->cap) {
        u->cap = u->cap ? 2 * u->cap : 8;
        u->keys = xrealloc(u->keys, u->cap * sizeof *u->keys);
    }
    memcpy(u->keys[u->n++], key, PROTOCOL_KEY_Z85_LEN + 1);
    return 0;
}

int protocol_keylist_read(const char *path, char (**keys)[PROTOCOL_KEY_Z85_LEN + 1], size_t *n,
                          sd_err *err) {
    struct list_ud u = {0};
    *keys = NULL;
    *n = 0;
    int rc = key_scan(path, "protocol_keylist_read", list_cb, &u, err);
    if (rc) {
        free(u.keys);
        return rc;
    }
    *keys = u.keys;
    *n = u.n;
    return 0;
}
