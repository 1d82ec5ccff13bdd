/* fuzz_protocol.c - libFuzzer target for the protocol decoders: request
 * headers (first byte picks the number of binary frames), events, the depth
 * scanner; decoded requests must re-encode and decode to the same request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static void same(const protocol_request *a, const protocol_request *b) {
    if (a->op != b->op || strcmp(a->id, b->id) != 0) abort();
    if (!a->doc != !b->doc || (a->doc && strcmp(a->doc, b->doc) != 0)) abort();
    if (!a->question != !b->question || (a->question && strcmp(a->question, b->question) != 0))
        abort();
    if (a->n_categories != b->n_categories) abort();
    if (a->opt.think != b->opt.think || a->opt.max_tokens != b->opt.max_tokens) abort();
    if (a->opt.has_seed != b->opt.has_seed || a->opt.seed != b->opt.seed) abort();
    if (a->opt.deadline_ms != b->opt.deadline_ms || a->opt.top_k != b->opt.top_k) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n_binary = data[0] & 3;
    const uint8_t *h = data + 1;
    size_t len = size - 1;

    protocol_request *r = NULL;
    protocol_error pe;
    int rc = protocol_decode_request(h, len, n_binary, NULL, &r, &pe);
    if (rc == 0) {
        if (!r) abort();
        sd_err e;
        char *s = protocol_request_encode(r, &e);
        if (!s) abort();
        protocol_request *r2 = NULL;
        /* Path ingest takes no frames; byte ingest exactly one. */
        if (protocol_decode_request(s, strlen(s), r->n_binary, NULL, &r2, &pe) != 0) abort();
        same(r, r2);
        protocol_request_free(r2);
        free(s);
        char *ev = protocol_event_accepted(r->id);
        if (!ev) abort();
        free(ev);
    } else {
        if (r) abort();
        if (pe.code == PROTOCOL_CODE_NONE) abort();
        char *ev = protocol_event_reject(&pe);
        if (!ev) abort();
        protocol_event *pev = NULL;
        sd_err e;
        if (protocol_decode_event(ev, strlen(ev), &pev, &e) != 0) abort();
        if (pev->kind != PROTOCOL_EVENT_ERROR || pev->code != pe.code) abort();
        protocol_event_free(pev);
        free(ev);
    }
    protocol_request_free(r);

    /* The same bytes as an event frame (client side). */
    protocol_event *ev = NULL;
    sd_err e;
    if (protocol_decode_event(h, len, &ev, &e) == 0 && !ev) abort();
    protocol_event_free(ev);

    /* The same bytes as token text: any bytes must encode to a decodable event. */
    char *text = malloc(len + 1);
    memcpy(text, h, len);
    text[len] = 0;
    char *tok = protocol_event_token("fuzz", text);
    if (!tok) abort();
    if (protocol_decode_event(tok, strlen(tok), &ev, &e) != 0) abort();
    protocol_event_free(ev);
    free(tok);
    free(text);
    return 0;
}
