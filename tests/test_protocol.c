/* test_protocol.c - the protocol decoder on valid and every kind of invalid
 * request header, frame limits, event encoders, and encode/decode round trips. */
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "protocol_client.h"
#include "test.h"

#include <zmq.h>

/* Decodes s (n_binary binary frames) and returns the rc; *code gets the wire code. */
static int dec(const char *s, size_t n_binary, protocol_request **r, protocol_code *code) {
    protocol_error pe;
    int rc = protocol_decode_request(s, strlen(s), n_binary, NULL, r, &pe);
    *code = rc ? pe.code : PROTOCOL_CODE_NONE;
    if (rc) CHECK(*r == NULL);
    return rc;
}

/* Expects s to be rejected with the wire code `want`. */
static void bad(const char *s, size_t n_binary, protocol_code want) {
    protocol_request *r = NULL;
    protocol_code code;
    int rc = dec(s, n_binary, &r, &code);
    CHECK_MSG(rc < 0 && code == want, "%s -> rc %d code %s (want %s)", s, rc,
              protocol_code_name(code), protocol_code_name(want));
    protocol_request_free(r);
}

static void test_valid(void) {
    protocol_request *r = NULL;
    protocol_code code;
    CHECK_EQ(dec("{\"v\":1,\"id\":\"a1\",\"op\":\"ping\"}", 0, &r, &code), 0);
    CHECK(r && r->op == PROTOCOL_OP_PING && strcmp(r->id, "a1") == 0);
    protocol_request_free(r);

    CHECK_EQ(dec("{\"v\":1,\"id\":\"q\",\"op\":\"ask\",\"doc\":\"7\",\"question\":\"Who pays?\","
                 "\"think\":true,\"max_tokens\":64,\"temperature\":0,\"top_p\":0.5,\"top_k\":40,"
                 "\"min_p\":0.05,\"repetition_penalty\":1.1,\"seed\":42,\"deadline_ms\":1500,"
                 "\"unknown_field\":[1,2,{\"x\":3}]}", 0, &r, &code), 0);
    CHECK(r && r->op == PROTOCOL_OP_ASK);
    if (r) {
        CHECK(strcmp(r->doc, "7") == 0 && strcmp(r->question, "Who pays?") == 0);
        CHECK(r->opt.think);
        CHECK_EQ(r->opt.max_tokens, 64);
        CHECK_NEAR(r->opt.temperature, 0.0, 1e-9);
        CHECK_NEAR(r->opt.top_p, 0.5, 1e-6);
        CHECK_EQ(r->opt.top_k, 40);
        CHECK_NEAR(r->opt.min_p, 0.05, 1e-6);
        CHECK_NEAR(r->opt.repetition_penalty, 1.1, 1e-6);
        CHECK(r->opt.has_seed && r->opt.seed == 42);
        CHECK_EQ(r->opt.deadline_ms, 1500);
    }
    protocol_request_free(r);

    /* Defaults applied; doc given as an integer. */
    CHECK_EQ(dec("{\"op\":\"summarize\",\"id\":\"s\",\"v\":1,\"doc\":12}", 0, &r, &code), 0);
    if (r) {
        CHECK(strcmp(r->doc, "12") == 0);
        CHECK_EQ(r->style, PROTOCOL_STYLE_BRIEF);
        CHECK(!r->opt.think && r->opt.max_tokens == 0 && !r->opt.has_seed);
        CHECK_NEAR(r->opt.temperature, 0.6, 1e-6);
        CHECK_NEAR(r->opt.top_p, 0.95, 1e-6);
    }
    protocol_request_free(r);

    CHECK_EQ(dec("{\"v\":1,\"id\":\"e\",\"op\":\"extract\",\"doc\":\"abc\",\"categories\":"
                 "[\"Governing Law\",{\"name\":\"Pets\",\"description\":\"Clauses on pets\"}]}",
                 0, &r, &code), 0);
    if (r) {
        CHECK_EQ(r->n_categories, 2);
        CHECK(strcmp(r->categories[0].name, "Governing Law") == 0 && !r->categories[0].description);
        CHECK(strcmp(r->categories[1].name, "Pets") == 0 &&
              strcmp(r->categories[1].description, "Clauses on pets") == 0);
    }
    protocol_request_free(r);
    CHECK_EQ(dec("{\"v\":1,\"id\":\"e\",\"op\":\"extract\",\"doc\":\"abc\"}", 0, &r, &code), 0);
    CHECK(r && r->n_categories == 0 && r->categories == NULL);
    protocol_request_free(r);

    CHECK_EQ(dec("{\"v\":1,\"id\":\"i\",\"op\":\"ingest\",\"name\":\"c.pdf\"}", 1, &r, &code), 0);
    CHECK(r && r->n_binary == 1 && !r->path && strcmp(r->name, "c.pdf") == 0);
    protocol_request_free(r);
    CHECK_EQ(dec("{\"v\":1,\"id\":\"i\",\"op\":\"ingest\",\"path\":\"/tmp/x.pdf\"}", 0, &r, &code), 0);
    CHECK(r && r->n_binary == 0 && strcmp(r->path, "/tmp/x.pdf") == 0);
    protocol_request_free(r);

    CHECK_EQ(dec("{\"v\":1,\"id\":\"g\",\"op\":\"get\",\"doc\":\"d\",\"pages\":true,\"sections\":false}",
                 0, &r, &code), 0);
    CHECK(r && r->pages && !r->sections);
    protocol_request_free(r);
    CHECK_EQ(dec("{\"v\":1,\"id\":\"l\",\"op\":\"list\"}", 0, &r, &code), 0);
    CHECK(r && r->limit == 100 && r->offset == 0);
    protocol_request_free(r);
    CHECK_EQ(dec("{\"v\":1,\"id\":\"c\",\"op\":\"cancel\",\"target\":\"q-17\"}", 0, &r, &code), 0);
    CHECK(r && strcmp(r->target, "q-17") == 0);
    protocol_request_free(r);
    CHECK_EQ(dec(" \n{\"v\":1,\"id\":\"st\",\"op\":\"status\"}\n ", 0, &r, &code), 0);
    CHECK(r && r->op == PROTOCOL_OP_STATUS);
    protocol_request_free(r);
    /* Depth exactly at the limit (16) is accepted. */
    char deep[256] = "{\"v\":1,\"id\":\"d\",\"op\":\"ping\",\"x\":";
    for (int i = 0; i < 15; i++) strcat(deep, "[");
    for (int i = 0; i < 15; i++) strcat(deep, "]");
    strcat(deep, "}");
    CHECK_EQ(dec(deep, 0, &r, &code), 0);
    protocol_request_free(r);
}

static void test_invalid(void) {
    /* not JSON / not an object */
    bad("", 0, PROTOCOL_CODE_BAD_JSON);
    bad("{", 0, PROTOCOL_CODE_BAD_JSON);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ping\"", 0, PROTOCOL_CODE_BAD_JSON);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ping\"} x", 0, PROTOCOL_CODE_BAD_JSON);
    bad("[1,2]", 0, PROTOCOL_CODE_BAD_JSON);
    bad("\"ping\"", 0, PROTOCOL_CODE_BAD_JSON);
    bad("null", 0, PROTOCOL_CODE_BAD_JSON);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ping\",\"op\":\"list\"}", 0, PROTOCOL_CODE_BAD_JSON);
    bad("{\"v\":1,\"id\":\"a\xff\",\"op\":\"ping\"}", 0, PROTOCOL_CODE_BAD_JSON);
    /* version */
    bad("{\"id\":\"a\",\"op\":\"ping\"}", 0, PROTOCOL_CODE_VERSION);
    bad("{\"v\":2,\"id\":\"a\",\"op\":\"ping\"}", 0, PROTOCOL_CODE_VERSION);
    bad("{\"v\":\"1\",\"id\":\"a\",\"op\":\"ping\"}", 0, PROTOCOL_CODE_VERSION);
    bad("{\"v\":1.0,\"id\":\"a\",\"op\":\"ping\"}", 0, PROTOCOL_CODE_VERSION);
    /* id */
    bad("{\"v\":1,\"op\":\"ping\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":7,\"op\":\"ping\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"\",\"op\":\"ping\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a b\",\"op\":\"ping\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"0123456789012345678901234567890123456789012345678901234567890123X\","
        "\"op\":\"ping\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    /* op */
    bad("{\"v\":1,\"id\":\"a\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":3}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"dance\"}", 0, PROTOCOL_CODE_UNKNOWN_OP);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"\"}", 0, PROTOCOL_CODE_UNKNOWN_OP);
    /* per-op fields: missing, wrong type, out of range */
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"question\":\"q\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":5}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":-1,\"question\":\"q\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":[],\"question\":\"q\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"think\":1}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"max_tokens\":-1}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"max_tokens\":40000}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"max_tokens\":1.5}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"temperature\":\"hot\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"temperature\":2.5}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"top_p\":0}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"min_p\":1}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"top_k\":-3}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"repetition_penalty\":9}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"seed\":-1}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"deadline_ms\":99999999999}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"q\",\"temperature\":1e400}", 0, PROTOCOL_CODE_BAD_JSON);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"summarize\",\"doc\":\"d\",\"style\":\"haiku\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"summarize\",\"doc\":\"d\",\"words\":20000}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"extract\",\"doc\":\"d\",\"categories\":\"Parties\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"extract\",\"doc\":\"d\",\"categories\":[1]}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"extract\",\"doc\":\"d\",\"categories\":[\"\"]}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"extract\",\"doc\":\"d\",\"categories\":[{\"description\":\"x\"}]}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"get\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"get\",\"doc\":\"d\",\"pages\":\"yes\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"delete\",\"doc\":\"\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"list\",\"limit\":0}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"cancel\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"cancel\",\"target\":\"\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ingest\"}", 0, PROTOCOL_CODE_BAD_REQUEST);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ingest\",\"path\":7}", 0, PROTOCOL_CODE_BAD_REQUEST);
    /* frames that do not fit the op */
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ingest\",\"path\":\"/x\"}", 1, PROTOCOL_CODE_TOO_MANY_FRAMES);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ping\"}", 1, PROTOCOL_CODE_TOO_MANY_FRAMES);
    bad("{\"v\":1,\"id\":\"a\",\"op\":\"ingest\"}", 2, PROTOCOL_CODE_TOO_MANY_FRAMES);
    /* too long fields */
    {
        char *q = malloc(PROTOCOL_QUESTION_MAX + 200);
        strcpy(q, "{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"");
        size_t n = strlen(q);
        memset(q + n, 'x', PROTOCOL_QUESTION_MAX + 1);
        strcpy(q + n + PROTOCOL_QUESTION_MAX + 1, "\"}");
        bad(q, 0, PROTOCOL_CODE_TOO_LARGE);
        free(q);
    }
    /* too deep, too large */
    {
        char deep[256] = "{\"v\":1,\"id\":\"d\",\"op\":\"ping\",\"x\":";
        for (int i = 0; i < 16; i++) strcat(deep, "[");
        for (int i = 0; i < 16; i++) strcat(deep, "]");
        strcat(deep, "}");
        bad(deep, 0, PROTOCOL_CODE_TOO_DEEP);
        /* brackets inside strings (with escaped quotes) do not count */
        bad("{\"v\":1,\"id\":\"a\",\"op\":\"dance\",\"x\":\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[\"}", 0,
            PROTOCOL_CODE_UNKNOWN_OP);
        size_t big = 70000;
        char *s = malloc(big + 1);
        memset(s, ' ', big);
        s[big] = 0;
        memcpy(s, "{\"v\":1,\"id\":\"a\",\"op\":\"ping\"}", 28);
        bad(s, 0, PROTOCOL_CODE_TOO_LARGE);
        free(s);
        /* 100000 open brackets: rejected quickly, no recursion */
        s = malloc(100001);
        memset(s, '[', 100000);
        s[100000] = 0;
        protocol_limits lim = protocol_limits_default();
        lim.max_header_bytes = 200000;
        protocol_request *r = NULL;
        protocol_error pe;
        CHECK_EQ(protocol_decode_request(s, 100000, 0, &lim, &r, &pe), SD_ERANGE);
        CHECK_EQ(pe.code, PROTOCOL_CODE_TOO_DEEP);
        free(s);
    }
    /* embedded NUL inside the header */
    {
        const char s[] = "{\"v\":1,\"id\":\"a\",\"op\":\"ping\"}\0junk";
        protocol_request *r = NULL;
        protocol_error pe;
        CHECK(protocol_decode_request(s, sizeof s - 1, 0, NULL, &r, &pe) < 0);
        CHECK_EQ(pe.code, PROTOCOL_CODE_BAD_JSON);
        CHECK(!r);
        const char s2[] = "{\"v\":1,\"id\":\"a\",\"op\":\"ask\",\"doc\":\"d\",\"question\":\"a\\u0000b\"}";
        CHECK(protocol_decode_request(s2, sizeof s2 - 1, 0, NULL, &r, &pe) < 0);
        CHECK(!r);
    }
    /* the id is reported when it could be read */
    {
        protocol_request *r = NULL;
        protocol_error pe;
        const char *s = "{\"v\":1,\"id\":\"req-9\",\"op\":\"ask\",\"doc\":\"d\"}";
        CHECK(protocol_decode_request(s, strlen(s), 0, NULL, &r, &pe) < 0);
        CHECK(strcmp(pe.id, "req-9") == 0);
        CHECK(strstr(pe.err.msg, "question") != NULL);
        char *ev = protocol_event_reject(&pe);
        CHECK(ev && strstr(ev, "\"id\":\"req-9\"") && strstr(ev, "\"code\":\"bad_request\""));
        free(ev);
        s = "{\"v\":1,\"op\":\"ping\"}";
        CHECK(protocol_decode_request(s, strlen(s), 0, NULL, &r, &pe) < 0);
        CHECK(pe.id[0] == 0);
        ev = protocol_event_reject(&pe);
        CHECK(ev && strstr(ev, "\"id\":null"));
        free(ev);
    }
}

static void test_frames(void) {
    protocol_error pe;
    size_t ok[2] = {100, 1000};
    CHECK_EQ(protocol_check_frames(ok, 2, NULL, &pe), 0);
    CHECK_EQ(protocol_check_frames(ok, 0, NULL, &pe), SD_EPROTO);
    CHECK_EQ(pe.code, PROTOCOL_CODE_TOO_MANY_FRAMES);
    size_t three[3] = {10, 10, 10};
    CHECK_EQ(protocol_check_frames(three, 3, NULL, &pe), SD_EPROTO);
    CHECK_EQ(pe.code, PROTOCOL_CODE_TOO_MANY_FRAMES);
    size_t bighead[1] = {65537};
    CHECK_EQ(protocol_check_frames(bighead, 1, NULL, &pe), SD_ERANGE);
    CHECK_EQ(pe.code, PROTOCOL_CODE_TOO_LARGE);
    size_t bigframe[2] = {10, (size_t)256 * 1024 * 1024 + 1};
    CHECK_EQ(protocol_check_frames(bigframe, 2, NULL, &pe), SD_ERANGE);
    CHECK_EQ(pe.code, PROTOCOL_CODE_TOO_LARGE);
    protocol_limits lim = protocol_limits_default();
    lim.max_frames = 3;
    lim.max_frame_bytes = 5;
    CHECK_EQ(protocol_check_frames(three, 3, &lim, &pe), SD_ERANGE);
    lim.max_frame_bytes = 10;
    CHECK_EQ(protocol_check_frames(three, 3, &lim, &pe), 0);
    sd_err e;
    CHECK_EQ(protocol_check_depth("[[\"[[[[\"]]", 10, 2, &e), 0);
    CHECK_EQ(protocol_check_depth("[[[]]]", 6, 2, &e), SD_ERANGE);
    CHECK_EQ(protocol_check_depth("\"\\\\\"[[[", 7, 2, &e), SD_ERANGE); /* "\\" then [[[ */
}

static void test_events(void) {
    protocol_event *ev = NULL;
    sd_err e;
    char *s = protocol_event_accepted("r1");
    CHECK(s && strcmp(s, "{\"v\":1,\"id\":\"r1\",\"event\":\"accepted\"}") == 0);
    CHECK_EQ(protocol_decode_event(s, strlen(s), &ev, &e), 0);
    CHECK(ev && ev->kind == PROTOCOL_EVENT_ACCEPTED && strcmp(ev->id, "r1") == 0);
    CHECK(!protocol_event_is_final(ev));
    protocol_event_free(ev);
    free(s);

    s = protocol_event_progress("r1", "prefill", 512, 4096);
    CHECK_EQ(protocol_decode_event(s, strlen(s), &ev, &e), 0);
    CHECK(ev && ev->kind == PROTOCOL_EVENT_PROGRESS && strcmp(ev->stage, "prefill") == 0);
    CHECK(ev && ev->done == 512 && ev->total == 4096);
    protocol_event_free(ev);
    free(s);

    s = protocol_event_token("r1", "caf\xc3\xa9 \"q\"\n");
    CHECK_EQ(protocol_decode_event(s, strlen(s), &ev, &e), 0);
    CHECK(ev && ev->kind == PROTOCOL_EVENT_TOKEN && strcmp(ev->text, "caf\xc3\xa9 \"q\"\n") == 0);
    protocol_event_free(ev);
    free(s);
    /* invalid UTF-8 (a split sequence, an overlong, a surrogate) becomes U+FFFD */
    s = protocol_event_token("r1", "a\xc3" "b\xc0\xaf" "c\xed\xa0\x80");
    CHECK(s != NULL);
    CHECK_EQ(protocol_decode_event(s, strlen(s), &ev, &e), 0);
    CHECK(ev && strcmp(ev->text, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                                 "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") == 0);
    protocol_event_free(ev);
    free(s);

    json_t *res = json_pack("{s:s,s:[i,i]}", "answer", "42", "pages", 3, 4);
    s = protocol_event_result("r1", res);
    CHECK_EQ(protocol_decode_event(s, strlen(s), &ev, &e), 0);
    CHECK(ev && ev->kind == PROTOCOL_EVENT_RESULT && json_equal(ev->result, res));
    CHECK(protocol_event_is_final(ev));
    protocol_event_free(ev);
    free(s);
    CHECK_EQ(res->refcount, 1); /* borrowed, not stolen */
    json_decref(res);

    s = protocol_event_error("r1", "not_found", "no document \"x\"");
    CHECK_EQ(protocol_decode_event(s, strlen(s), &ev, &e), 0);
    CHECK(ev && ev->kind == PROTOCOL_EVENT_ERROR && ev->code == PROTOCOL_CODE_NOT_FOUND);
    CHECK(ev && strcmp(ev->message, "no document \"x\"") == 0);
    CHECK(protocol_event_is_final(ev));
    protocol_event_free(ev);
    free(s);
    s = protocol_event_error(NULL, "busy", NULL);
    CHECK(s && strstr(s, "\"id\":null") && strstr(s, "\"message\":\"busy\""));
    CHECK_EQ(protocol_decode_event(s, strlen(s), &ev, &e), 0);
    CHECK(ev && ev->id[0] == 0 && ev->code == PROTOCOL_CODE_BUSY);
    protocol_event_free(ev);
    free(s);

    CHECK(protocol_event_accepted("bad id") == NULL);
    CHECK(protocol_event_token(NULL, "x") == NULL);
    /* malformed events */
    const char *badev[] = {"", "[]", "{\"v\":1,\"id\":\"a\",\"event\":\"dance\"}",
                           "{\"v\":2,\"id\":\"a\",\"event\":\"accepted\"}",
                           "{\"v\":1,\"id\":\"a\",\"event\":\"token\"}",
                           "{\"v\":1,\"id\":\"a\",\"event\":\"progress\",\"stage\":\"x\",\"done\":-1,\"total\":1}",
                           "{\"v\":1,\"id\":5,\"event\":\"accepted\"}"};
    for (size_t i = 0; i < sizeof badev / sizeof badev[0]; i++) {
        CHECK_MSG(protocol_decode_event(badev[i], strlen(badev[i]), &ev, &e) < 0, "%s", badev[i]);
        CHECK(ev == NULL);
    }
    /* names */
    for (int c = 1; c < PROTOCOL_CODE_COUNT_; c++)
        CHECK_EQ(protocol_code_parse(protocol_code_name((protocol_code)c)), c);
    for (int o = 1; o < PROTOCOL_OP_COUNT_; o++)
        CHECK_EQ(protocol_op_parse(protocol_op_name((protocol_op)o)), o);
    CHECK_EQ(protocol_code_from_sd(SD_ENOTFOUND), PROTOCOL_CODE_NOT_FOUND);
    CHECK_EQ(protocol_code_from_sd(SD_ECANCELED), PROTOCOL_CODE_CANCELED);
    CHECK_EQ(protocol_code_from_sd(SD_EIO), PROTOCOL_CODE_INTERNAL);
}

/* Encodes r, decodes it back, and returns the decoded request. */
static protocol_request *roundtrip(const protocol_request *r, size_t n_binary) {
    sd_err e;
    char *s = protocol_request_encode(r, &e);
    CHECK(s != NULL);
    if (!s) return NULL;
    protocol_request *d = NULL;
    protocol_error pe;
    int rc = protocol_decode_request(s, strlen(s), n_binary, NULL, &d, &pe);
    CHECK_MSG(rc == 0, "%s: %s", s, pe.err.msg);
    free(s);
    return d;
}

static void test_roundtrip(void) {
    protocol_request r, *d;
    protocol_request_init(&r, PROTOCOL_OP_ASK, "ask-1");
    r.doc = "doc-abc";
    r.question = "What is the governing law? \xe2\x80\x9cquoted\xe2\x80\x9d";
    r.opt.think = true;
    r.opt.max_tokens = 300;
    r.opt.temperature = 0.25f;
    r.opt.top_p = 0.75f;
    r.opt.top_k = 20;
    r.opt.min_p = 0.125f;
    r.opt.repetition_penalty = 1.5f;
    r.opt.has_seed = true;
    r.opt.seed = 9007199254740991ULL;
    r.opt.deadline_ms = 5000;
    d = roundtrip(&r, 0);
    if (d) {
        CHECK(d->op == PROTOCOL_OP_ASK && strcmp(d->id, "ask-1") == 0);
        CHECK(strcmp(d->doc, r.doc) == 0 && strcmp(d->question, r.question) == 0);
        CHECK(d->opt.think && d->opt.max_tokens == 300 && d->opt.top_k == 20);
        CHECK(d->opt.temperature == 0.25f && d->opt.top_p == 0.75f && d->opt.min_p == 0.125f);
        CHECK(d->opt.repetition_penalty == 1.5f);
        CHECK(d->opt.has_seed && d->opt.seed == 9007199254740991ULL);
        CHECK_EQ(d->opt.deadline_ms, 5000);
    }
    protocol_request_free(d);

    protocol_category cats[2] = {{"Governing Law", NULL}, {"Pets", "Any clause on pets"}};
    protocol_request_init(&r, PROTOCOL_OP_EXTRACT, "x");
    r.doc = "d";
    r.categories = cats;
    r.n_categories = 2;
    d = roundtrip(&r, 0);
    CHECK(d && d->n_categories == 2 && strcmp(d->categories[1].description, cats[1].description) == 0);
    CHECK(d && d->categories[0].description == NULL);
    protocol_request_free(d);

    protocol_request_init(&r, PROTOCOL_OP_SUMMARIZE, "s");
    r.doc = "d";
    r.style = PROTOCOL_STYLE_BULLETS;
    r.words = 250;
    d = roundtrip(&r, 0);
    CHECK(d && d->style == PROTOCOL_STYLE_BULLETS && d->words == 250);
    CHECK(d && !d->opt.has_seed && d->opt.temperature == 0.6f);
    protocol_request_free(d);

    protocol_request_init(&r, PROTOCOL_OP_INGEST, "i");
    r.name = "contract.pdf";
    d = roundtrip(&r, 1);
    CHECK(d && strcmp(d->name, "contract.pdf") == 0 && d->n_binary == 1 && !d->path);
    protocol_request_free(d);

    protocol_request_init(&r, PROTOCOL_OP_LIST, "l");
    r.limit = 7;
    r.offset = 3;
    d = roundtrip(&r, 0);
    CHECK(d && d->limit == 7 && d->offset == 3);
    protocol_request_free(d);

    protocol_request_init(&r, PROTOCOL_OP_GET, "g");
    r.doc = "d";
    r.pages = true;
    r.sections = false;
    d = roundtrip(&r, 0);
    CHECK(d && d->pages && !d->sections);
    protocol_request_free(d);

    protocol_request_init(&r, PROTOCOL_OP_CANCEL, "c");
    strcpy(r.target, "ask-1");
    d = roundtrip(&r, 0);
    CHECK(d && strcmp(d->target, "ask-1") == 0);
    protocol_request_free(d);

    for (int op = 1; op < PROTOCOL_OP_COUNT_; op++) {
        if (op == PROTOCOL_OP_INGEST || op == PROTOCOL_OP_CANCEL) continue;
        protocol_request_init(&r, (protocol_op)op, "any");
        r.doc = "d";
        r.question = "q";
        d = roundtrip(&r, 0);
        CHECK(d && d->op == (protocol_op)op);
        protocol_request_free(d);
    }
    sd_err e;
    protocol_request_init(&r, PROTOCOL_OP_PING, "");
    CHECK(protocol_request_encode(&r, &e) == NULL && e.code == SD_EINVAL);
    protocol_request_init(&r, PROTOCOL_OP_NONE, "x");
    CHECK(protocol_request_encode(&r, &e) == NULL);
}

static void test_keys(void) {
    char pub[41], sec[41], p2[41], s2[41];
    sd_err e;
    if (protocol_keygen(pub, sec, &e) != 0) {
        SKIP("no CURVE support in libzmq: %s", e.msg);
        return;
    }
    CHECK_EQ(strlen(pub), 40);
    char dir[] = "/tmp/test_protocol_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char prefix[128], path[160];
    snprintf(prefix, sizeof prefix, "%s/k", dir);
    CHECK_EQ(protocol_keyfile_write(prefix, pub, sec, &e), 0);
    CHECK_EQ(protocol_keyfile_write(prefix, pub, sec, &e), SD_EINVAL); /* no overwrite */
    snprintf(path, sizeof path, "%s.key", prefix);
    CHECK_EQ(protocol_keyfile_read(path, p2, s2, &e), 0);
    CHECK(strcmp(p2, pub) == 0 && strcmp(s2, sec) == 0);
    snprintf(path, sizeof path, "%s.pub", prefix);
    CHECK_EQ(protocol_keyfile_read(path, p2, NULL, &e), 0);
    CHECK(strcmp(p2, pub) == 0);
    CHECK_EQ(protocol_keyfile_read(path, p2, s2, &e), SD_ENOTFOUND);
    char (*keys)[41] = NULL;
    size_t n = 0;
    CHECK_EQ(protocol_keylist_read(path, &keys, &n, &e), 0);
    CHECK(n == 1 && strcmp(keys[0], pub) == 0);
    free(keys);
    snprintf(path, sizeof path, "%s/bad", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# list\n%s\npublic-key = short\n", pub);
    fclose(f);
    CHECK_EQ(protocol_keylist_read(path, &keys, &n, &e), SD_EFORMAT);
    CHECK_EQ(protocol_keyfile_read("/nonexistent/k.key", p2, s2, &e), SD_ENOTFOUND);
    unlink(path);
    snprintf(path, sizeof path, "%s.key", prefix);
    unlink(path);
    snprintf(path, sizeof path, "%s.pub", prefix);
    unlink(path);
    rmdir(dir);
}

/* protocol_client against a raw ROUTER: framing both ways, timeouts. */
static void test_client(void) {
    char dir[] = "/tmp/test_protocol_cl_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/s.sock", dir);
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    CHECK_EQ(zmq_bind(router, ep), 0);
    sd_err e;
    protocol_client_params p = protocol_client_params_default();
    p.endpoint = ep;
    protocol_client *c = protocol_client_new(&p, &e);
    CHECK(c != NULL);
    if (!c) goto out;
    protocol_event *ev = NULL;
    double t0 = sd_now();
    CHECK_EQ(protocol_client_recv(c, 100, &ev, &e), SD_ETIMEOUT);
    CHECK(sd_now() - t0 >= 0.09 && sd_now() - t0 < 2.0);
    const char *hdr = "{\"v\":1,\"id\":\"i1\",\"op\":\"ingest\"}";
    const void *frames[1] = {"PDFBYTES"};
    size_t sizes[1] = {8};
    CHECK_EQ(protocol_client_send(c, hdr, frames, sizes, 1, 1000, &e), 0);
    /* The ROUTER sees [identity, header, file]. */
    zmq_msg_t m[4];
    int n = 0, more = 1;
    while (more && n < 4) {
        zmq_msg_init(&m[n]);
        if (zmq_msg_recv(&m[n], router, 0) < 0) break;
        more = zmq_msg_more(&m[n]);
        n++;
    }
    CHECK_EQ(n, 3);
    if (n == 3) {
        CHECK(zmq_msg_size(&m[1]) == strlen(hdr) && memcmp(zmq_msg_data(&m[1]), hdr, strlen(hdr)) == 0);
        CHECK(zmq_msg_size(&m[2]) == 8 && memcmp(zmq_msg_data(&m[2]), "PDFBYTES", 8) == 0);
        size_t fs[2] = {zmq_msg_size(&m[1]), zmq_msg_size(&m[2])};
        protocol_error pe;
        protocol_request *r = NULL;
        CHECK_EQ(protocol_check_frames(fs, 2, NULL, &pe), 0);
        CHECK_EQ(protocol_decode_request(zmq_msg_data(&m[1]), fs[0], 1, NULL, &r, &pe), 0);
        CHECK(r && r->op == PROTOCOL_OP_INGEST && r->n_binary == 1);
        protocol_request_free(r);
        char *evs[2] = {protocol_event_progress("i1", "ingest", 1, 2),
                        protocol_event_result("i1", NULL)};
        for (int k = 0; k < 2; k++) {
            zmq_send(router, zmq_msg_data(&m[0]), zmq_msg_size(&m[0]), ZMQ_SNDMORE);
            zmq_send(router, evs[k], strlen(evs[k]), 0);
            free(evs[k]);
        }
        CHECK_EQ(protocol_client_recv(c, 2000, &ev, &e), 0);
        CHECK(ev && ev->kind == PROTOCOL_EVENT_PROGRESS && ev->done == 1 && ev->total == 2);
        protocol_event_free(ev);
        CHECK_EQ(protocol_client_recv(c, 2000, &ev, &e), 0);
        CHECK(ev && ev->kind == PROTOCOL_EVENT_RESULT && json_object_size(ev->result) == 0);
        protocol_event_free(ev);
        /* a malformed event is an error, not a crash */
        zmq_send(router, zmq_msg_data(&m[0]), zmq_msg_size(&m[0]), ZMQ_SNDMORE);
        zmq_send(router, "{nope", 5, 0);
        CHECK_EQ(protocol_client_recv(c, 2000, &ev, &e), SD_EFORMAT);
        CHECK(ev == NULL);
    }
    for (int k = 0; k < n; k++) zmq_msg_close(&m[k]);
    protocol_client_free(c);
    p.server_public_z85 = "short";
    CHECK(protocol_client_new(&p, &e) == NULL && e.code == SD_EINVAL);
    p.server_public_z85 = NULL;
    p.endpoint = "bogus://x";
    CHECK(protocol_client_new(&p, &e) == NULL);
out:
    zmq_close(router);
    zmq_ctx_term(ctx);
    char path[160];
    snprintf(path, sizeof path, "%s/s.sock", dir);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_valid();
    test_invalid();
    test_frames();
    test_events();
    test_roundtrip();
    test_keys();
    test_client();
    return test_done();
}
