/* test_gguf.c - GGUF reader/writer round trip, hand-built files, malformed
 * inputs (each must fail cleanly), f16/bf16, Q8_0/Q4_K and Q/K row permutation. */
#include "gguf.h"
#include "test.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static float rndf(void) { return (float)((rnd() >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; }

static char tmpdir[256];

static char *path_in(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* ------------------------------------------------------------ byte builder */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;
static void bb_put(bb *b, const void *d, size_t n) {
    if (b->cap - b->n < n) {
        b->cap = (b->cap + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s) { bb_u64(b, strlen(s)); bb_put(b, s, strlen(s)); }
static void bb_pad(bb *b, size_t a) { while (b->n % a) bb_put(b, "", 1); }

/* Knobs for a hand-built file with one u32 kv and tensors "a" (F32 [4]) and
 * "b" (F32 [4]); each field can be corrupted. */
typedef struct spec {
    const char *magic;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    uint64_t key_len;        /* 0: real */
    uint32_t kv_type;
    uint32_t n_dims;
    uint64_t dim0, dim1;
    uint32_t ttype;
    uint64_t off_b;
    const char *name_b;
    const char *key2;        /* second kv (u32 value 64) or NULL */
    uint32_t key2_type;
    int truncate_data;
} spec;

static spec spec_default(void) {
    spec s = {"GGUF", 3, 2, 1, 0, GGUF_VTYPE_UINT32, 1, 4, 0, GGUF_TTYPE_F32, 32, "b", NULL,
              GGUF_VTYPE_UINT32, 0};
    return s;
}

static bb build(spec s) {
    bb b = {0};
    bb_put(&b, s.magic, 4);
    bb_u32(&b, s.version);
    bb_u64(&b, s.n_tensors);
    bb_u64(&b, s.n_kv + (s.key2 ? 1 : 0));
    if (s.key_len) bb_u64(&b, s.key_len), bb_put(&b, "test.k", 6);
    else bb_str(&b, "test.k");
    bb_u32(&b, s.kv_type);
    bb_u32(&b, 7);
    if (s.key2) {
        bb_str(&b, s.key2);
        bb_u32(&b, s.key2_type);
        if (s.key2_type == GGUF_VTYPE_ARRAY) { bb_u32(&b, GGUF_VTYPE_ARRAY); bb_u64(&b, 1); }
        else bb_u32(&b, 64);
    }
    /* tensor a */
    bb_str(&b, "a");
    bb_u32(&b, 1);
    bb_u64(&b, 4);
    bb_u32(&b, GGUF_TTYPE_F32);
    bb_u64(&b, 0);
    /* tensor b */
    bb_str(&b, s.name_b);
    bb_u32(&b, s.n_dims);
    bb_u64(&b, s.dim0);
    for (uint32_t i = 1; i < s.n_dims && i < 8; i++) bb_u64(&b, s.dim1);
    bb_u32(&b, s.ttype);
    bb_u64(&b, s.off_b);
    size_t align = s.key2 && strcmp(s.key2, "general.alignment") == 0 ? 64 : 32;
    bb_pad(&b, align);
    float data[32];
    for (int i = 0; i < 32; i++) data[i] = (float)i;
    bb_put(&b, data, s.truncate_data ? 40 : (align == 64 ? 64 + 16 : 48));
    return b;
}

/* Opens s from memory; returns the error code (0 = opened) and leaves the message in err. */
static int try_open(spec s, sd_err *err) {
    bb b = build(s);
    gguf *g = gguf_open_mem(b.p, b.n, "bad.gguf", err);
    int rc = g ? 0 : err->code;
    gguf_free(g);
    free(b.p);
    return rc;
}

static void test_hand_built(void) {
    sd_err err = {0};
    spec s = spec_default();
    bb b = build(s);
    gguf *g = gguf_open_mem(b.p, b.n, "hand.gguf", &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (g) {
        CHECK_EQ(gguf_version(g), 3);
        CHECK_EQ(gguf_n_tensors(g), 2);
        CHECK_EQ(gguf_data_offset(g) % 32, 0);
        uint32_t v = 0;
        CHECK_EQ(gguf_get_u32(g, "test.k", &v, &err), 0);
        CHECK_EQ(v, 7);
        const gguf_tensor *t = gguf_find_tensor(g, "b");
        CHECK(t != NULL);
        if (t) {
            CHECK_EQ(t->nbytes, 16);
            CHECK_EQ(((const float *)t->data)[0], 8);
            CHECK_EQ(((const float *)t->data)[3], 11);
        }
        CHECK(gguf_find_tensor(g, "c") == NULL);
    }
    gguf_free(g);
    free(b.p);
    /* version 2 is accepted too */
    s.version = 2;
    CHECK_EQ(try_open(s, &err), 0);
    /* general.alignment = 64 moves the data section */
    s = spec_default();
    s.key2 = "general.alignment";
    s.off_b = 64;
    b = build(s);
    g = gguf_open_mem(b.p, b.n, "al.gguf", &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (g) {
        CHECK_EQ(gguf_alignment(g), 64);
        CHECK_EQ(gguf_data_offset(g) % 64, 0);
        CHECK_EQ(((const float *)gguf_find_tensor(g, "b")->data)[0], 16);
    }
    gguf_free(g);
    free(b.p);
}

static void expect_bad(spec s, int code, const char *needle, const char *what) {
    sd_err err = {0};
    int rc = try_open(s, &err);
    CHECK_MSG(rc == code, "%s: got %d (%s), want %d", what, rc, err.msg, code);
    CHECK_MSG(strstr(err.msg, "bad.gguf") != NULL, "%s: message lacks file name: %s", what, err.msg);
    if (needle) CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, err.msg);
}

static void test_malformed(void) {
    spec s;
    s = spec_default(); s.magic = "GGUG"; expect_bad(s, SD_EFORMAT, "magic", "bad magic");
    s = spec_default(); s.version = 1; expect_bad(s, SD_EFORMAT, "version", "version 1");
    s = spec_default(); s.version = 4; expect_bad(s, SD_EFORMAT, "version", "version 4");
    s = spec_default(); s.version = 0x03000000; expect_bad(s, SD_ENOTSUP, "big-endian", "big-endian");
    s = spec_default(); s.n_tensors = 1ull << 62; expect_bad(s, SD_EFORMAT, "tensors", "absurd tensor count");
    s = spec_default(); s.n_kv = UINT64_MAX; expect_bad(s, SD_EFORMAT, "metadata", "absurd kv count");
    s = spec_default(); s.n_tensors = 3; expect_bad(s, SD_EFORMAT, NULL, "one tensor too many");
    s = spec_default(); s.key_len = 1ull << 40; expect_bad(s, SD_EFORMAT, "past end", "key length past EOF");
    s = spec_default(); s.key_len = UINT64_MAX; expect_bad(s, SD_EFORMAT, "past end", "key length 2^64-1");
    s = spec_default(); s.kv_type = 13; expect_bad(s, SD_EFORMAT, "value type", "unknown kv type");
    s = spec_default(); s.off_b = 4096; expect_bad(s, SD_EFORMAT, "'b'", "tensor offset out of range");
    s = spec_default(); s.off_b = UINT64_MAX - 31; expect_bad(s, SD_EFORMAT, "'b'", "tensor offset near 2^64");
    s = spec_default(); s.off_b = 16; expect_bad(s, SD_EFORMAT, "alignment", "misaligned offset");
    s = spec_default(); s.n_dims = 2; s.dim0 = 1ull << 40; s.dim1 = 1ull << 40;
    expect_bad(s, SD_EFORMAT, "overflow", "dim product overflow");
    s = spec_default(); s.n_dims = 4; s.dim0 = 1ull << 20; s.dim1 = 1ull << 20;
    expect_bad(s, SD_EFORMAT, "'b'", "dims 2^80 elements");
    s = spec_default(); s.dim0 = 1ull << 63; expect_bad(s, SD_EFORMAT, "'b'", "negative dim");
    s = spec_default(); s.n_dims = 5; expect_bad(s, SD_EFORMAT, "dimensions", "5 dims");
    s = spec_default(); s.n_dims = 0; expect_bad(s, SD_EFORMAT, "dimensions", "0 dims");
    s = spec_default(); s.ttype = 99; expect_bad(s, SD_ENOTSUP, "'b'", "unknown tensor type");
    s = spec_default(); s.ttype = 4; expect_bad(s, SD_ENOTSUP, "type", "removed tensor type 4");
    s = spec_default(); s.ttype = GGUF_TTYPE_Q8_0; s.dim0 = 33; expect_bad(s, SD_EFORMAT, "block", "Q8_0 row not multiple of 32");
    s = spec_default(); s.ttype = GGUF_TTYPE_Q8_0; s.dim0 = 32; expect_bad(s, SD_EFORMAT, "'b'", "Q8_0 data past EOF");
    s = spec_default(); s.truncate_data = 1; expect_bad(s, SD_EFORMAT, "'b'", "truncated tensor data");
    s = spec_default(); s.name_b = "a"; expect_bad(s, SD_EFORMAT, "duplicate", "duplicate tensor name");
    s = spec_default(); s.key2 = "test.k"; expect_bad(s, SD_EFORMAT, "duplicate", "duplicate key");
    s = spec_default(); s.key2 = "general.alignment"; s.key2_type = GGUF_VTYPE_INT32;
    expect_bad(s, SD_EFORMAT, "alignment", "alignment wrong type");
    s = spec_default(); s.key2 = "x.nested"; s.key2_type = GGUF_VTYPE_ARRAY;
    expect_bad(s, SD_ENOTSUP, "nested", "nested array");

    /* every truncation of a valid file fails cleanly */
    s = spec_default();
    bb b = build(s);
    int all_fail = 1;
    for (size_t n = 0; n < b.n; n++) {
        sd_err err = {0};
        uint8_t *cp = malloc(n ? n : 1);
        memcpy(cp, b.p, n);
        gguf *g = gguf_open_mem(cp, n, "bad.gguf", &err);
        if (g || err.code != SD_EFORMAT) {
            all_fail = 0;
            fprintf(stderr, "truncation at %zu: g=%p code=%d %s\n", n, (void *)g, err.code, err.msg);
        }
        gguf_free(g);
        free(cp);
    }
    CHECK(all_fail);
    free(b.p);
}

/* ------------------------------------------------------------ writer round trip */

typedef struct fillctx {
    int calls;
    const uint8_t *src;
} fillctx;

static int fill_cb(void *ctx, size_t idx, void *buf, size_t nbytes) {
    fillctx *f = ctx;
    f->calls++;
    (void)idx;
    memcpy(buf, f->src, nbytes);
    return 0;
}

static int fail_cb(void *ctx, size_t idx, void *buf, size_t nbytes) {
    (void)ctx, (void)idx, (void)buf, (void)nbytes;
    return SD_EINVAL;
}

static void test_roundtrip(void) {
    sd_err err = {0};
    const char *path = path_in("rt.gguf");
    gguf_writer *w = gguf_writer_new(path, &err);
    CHECK_MSG(w != NULL, "%s", err.msg);
    if (!w) return;
    CHECK_EQ(gguf_writer_add_u8(w, "v.u8", 200), 0);
    CHECK_EQ(gguf_writer_add_i8(w, "v.i8", -100), 0);
    CHECK_EQ(gguf_writer_add_u16(w, "v.u16", 60000), 0);
    CHECK_EQ(gguf_writer_add_i16(w, "v.i16", -30000), 0);
    CHECK_EQ(gguf_writer_add_u32(w, "v.u32", 4000000000u), 0);
    CHECK_EQ(gguf_writer_add_i32(w, "v.i32", -2000000000), 0);
    CHECK_EQ(gguf_writer_add_u64(w, "v.u64", 18000000000000000000ull), 0);
    CHECK_EQ(gguf_writer_add_i64(w, "v.i64", -9000000000000000000ll), 0);
    CHECK_EQ(gguf_writer_add_f32(w, "v.f32", 1.5e-6f), 0);
    CHECK_EQ(gguf_writer_add_f64(w, "v.f64", 5e6), 0);
    CHECK_EQ(gguf_writer_add_bool(w, "v.bool", 1), 0);
    CHECK_EQ(gguf_writer_add_str(w, "v.str", "h\xc3\xa9llo"), 0);
    CHECK_EQ(gguf_writer_add_str(w, "v.empty", ""), 0);
    int32_t ai[5] = {1, -2, 3, -4, 2147483647};
    float af[3] = {0.25f, -1.0f, 3e38f};
    uint8_t au[2] = {0, 255};
    const char *as[4] = {"a", "", "\xc4\xa0the", "x y"};
    CHECK_EQ(gguf_writer_add_arr(w, "a.i32", GGUF_VTYPE_INT32, ai, 5), 0);
    CHECK_EQ(gguf_writer_add_arr(w, "a.f32", GGUF_VTYPE_FLOAT32, af, 3), 0);
    CHECK_EQ(gguf_writer_add_arr(w, "a.u8", GGUF_VTYPE_UINT8, au, 2), 0);
    CHECK_EQ(gguf_writer_add_arr(w, "a.empty", GGUF_VTYPE_UINT64, NULL, 0), 0);
    CHECK_EQ(gguf_writer_add_arr_str(w, "a.str", as, 4), 0);
    CHECK_EQ(gguf_writer_add_u32(w, "general.alignment", 3), SD_EINVAL);
    CHECK_EQ(gguf_writer_add_u32(w, "v.u32", 1), SD_EINVAL);  /* duplicate */
    CHECK_EQ(gguf_writer_add_arr(w, "a.bad", GGUF_VTYPE_STRING, au, 2), SD_EINVAL);

    /* tensors of every supported type */
    float f32[6 * 3];
    uint16_t f16[64 * 2], bf16[64 * 2];
    float q8src[64 * 3];
    uint8_t q8[2 * 3 * GGUF_Q8_0_BYTES], q4k[GGUF_Q4_K_BYTES * 2];
    for (size_t i = 0; i < 18; i++) f32[i] = rndf();
    for (size_t i = 0; i < 128; i++) f16[i] = gguf_f32_to_f16(rndf()), bf16[i] = gguf_f32_to_bf16(rndf());
    for (size_t i = 0; i < 192; i++) q8src[i] = rndf() * 3;
    gguf_quantize_q8_0(q8src, q8, 192);
    for (size_t i = 0; i < sizeof q4k; i++) q4k[i] = (uint8_t)rnd();
    uint64_t d_f32[2] = {6, 3}, d_16[2] = {64, 2}, d_q8[2] = {64, 3}, d_q4k[1] = {512};
    uint64_t d_3d[3] = {2, 3, 3};
    CHECK_EQ(gguf_writer_add_tensor(w, "t.f32", 2, d_f32, GGUF_TTYPE_F32, f32), 0);
    CHECK_EQ(gguf_writer_add_tensor(w, "t.f16", 2, d_16, GGUF_TTYPE_F16, f16), 0);
    CHECK_EQ(gguf_writer_add_tensor(w, "t.bf16", 2, d_16, GGUF_TTYPE_BF16, bf16), 0);
    CHECK_EQ(gguf_writer_add_tensor(w, "t.q8_0", 2, d_q8, GGUF_TTYPE_Q8_0, q8), 0);
    CHECK_EQ(gguf_writer_add_tensor(w, "t.q4_k", 1, d_q4k, GGUF_TTYPE_Q4_K, q4k), 0);
    fillctx fc = {0, (const uint8_t *)f32};
    CHECK_EQ(gguf_writer_add_tensor_fill(w, "t.3d", 3, d_3d, GGUF_TTYPE_F32, fill_cb, &fc), 0);
    CHECK_EQ(gguf_writer_add_tensor(w, "t.f32", 2, d_f32, GGUF_TTYPE_F32, f32), SD_EINVAL);
    uint64_t d_bad[1] = {33};
    CHECK_EQ(gguf_writer_add_tensor(w, "t.bad", 1, d_bad, GGUF_TTYPE_Q8_0, q8), SD_EINVAL);
    CHECK_EQ(gguf_writer_add_tensor(w, "t.unk", 1, d_bad, 99, q8), SD_ENOTSUP);
    char longname[80];
    memset(longname, 'x', 70);
    longname[70] = 0;
    CHECK_EQ(gguf_writer_add_tensor(w, longname, 1, d_q4k, GGUF_TTYPE_F32, f32), SD_EINVAL);
    int rc = gguf_writer_finish(w, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ(fc.calls, 1);
    gguf_writer_free(w);
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0);

    gguf *g = gguf_open(path, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    CHECK_EQ(gguf_version(g), 3);
    CHECK_EQ(gguf_alignment(g), 32);
    CHECK_EQ(gguf_n_kv(g), 18);
    CHECK(strcmp(gguf_kv_key(g, 0), "v.u8") == 0);
    CHECK_EQ(gguf_kv_type(g, 0), GGUF_VTYPE_UINT8);
    CHECK_EQ(gguf_kv_type(g, 11), GGUF_VTYPE_STRING);
    CHECK_EQ(gguf_kv_type(g, 13), GGUF_VTYPE_ARRAY);
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    double dd = 0;
    int bo = 0;
    CHECK_EQ(gguf_get_u32(g, "v.u8", &u32, &err), 0); CHECK_EQ(u32, 200);
    CHECK_EQ(gguf_get_i32(g, "v.i8", &i32, &err), 0); CHECK_EQ(i32, -100);
    CHECK_EQ(gguf_get_u32(g, "v.u16", &u32, &err), 0); CHECK_EQ(u32, 60000);
    CHECK_EQ(gguf_get_i32(g, "v.i16", &i32, &err), 0); CHECK_EQ(i32, -30000);
    CHECK_EQ(gguf_get_u32(g, "v.u32", &u32, &err), 0); CHECK_EQ(u32, 4000000000u);
    CHECK_EQ(gguf_get_i32(g, "v.i32", &i32, &err), 0); CHECK_EQ(i32, -2000000000);
    CHECK_EQ(gguf_get_u64(g, "v.u64", &u64, &err), 0); CHECK(u64 == 18000000000000000000ull);
    CHECK_EQ(gguf_get_i64(g, "v.i64", &i64, &err), 0); CHECK(i64 == -9000000000000000000ll);
    CHECK_EQ(gguf_get_f32(g, "v.f32", &f, &err), 0); CHECK(f == 1.5e-6f);
    CHECK_EQ(gguf_get_f64(g, "v.f64", &dd, &err), 0); CHECK(dd == 5e6);
    CHECK_EQ(gguf_get_bool(g, "v.bool", &bo, &err), 0); CHECK_EQ(bo, 1);
    const char *str = NULL;
    size_t len = 0;
    CHECK_EQ(gguf_get_str(g, "v.str", &str, &len, &err), 0);
    CHECK(str && strcmp(str, "h\xc3\xa9llo") == 0 && len == 6);
    CHECK_EQ(gguf_get_str(g, "v.empty", &str, &len, &err), 0);
    CHECK(str && str[0] == 0 && len == 0);
    /* type and range checks */
    CHECK_EQ(gguf_get_u32(g, "v.i8", &u32, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_i32(g, "v.u32", &i32, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_u32(g, "v.u64", &u32, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_i64(g, "v.u64", &i64, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_u32(g, "v.str", &u32, &err), SD_EFORMAT);
    CHECK(strstr(err.msg, "v.str") != NULL);
    CHECK_EQ(gguf_get_f32(g, "v.u8", &f, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_str(g, "v.u8", &str, NULL, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_u32(g, "no.such", &u32, &err), SD_ENOTFOUND);
    CHECK_EQ(gguf_find_key(g, "no.such"), -1);
    CHECK_EQ(gguf_find_key(g, "v.bool"), 10);
    /* arrays */
    int et = -1;
    size_t n = 0;
    CHECK_EQ(gguf_get_arr(g, "a.i32", &et, &n, &err), 0);
    CHECK_EQ(et, GGUF_VTYPE_INT32);
    CHECK_EQ(n, 5);
    int ok = 1;
    for (size_t i = 0; i < 5; i++) {
        int64_t v = 0;
        if (gguf_get_arr_int(g, "a.i32", i, &v, &err) || v != ai[i]) ok = 0;
    }
    CHECK(ok);
    CHECK(memcmp(gguf_get_arr_data(g, "a.i32"), ai, sizeof ai) == 0);
    CHECK_EQ(gguf_get_arr_f64(g, "a.f32", 2, &dd, &err), 0);
    CHECK(dd == (double)3e38f);
    int64_t v = 0;
    CHECK_EQ(gguf_get_arr_int(g, "a.u8", 1, &v, &err), 0); CHECK_EQ(v, 255);
    CHECK_EQ(gguf_get_arr_int(g, "a.u8", 2, &v, &err), SD_ERANGE);
    CHECK_EQ(gguf_get_arr_int(g, "a.f32", 0, &v, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_arr(g, "a.empty", &et, &n, &err), 0);
    CHECK_EQ(et, GGUF_VTYPE_UINT64); CHECK_EQ(n, 0);
    CHECK_EQ(gguf_get_arr(g, "a.str", &et, &n, &err), 0);
    CHECK_EQ(et, GGUF_VTYPE_STRING); CHECK_EQ(n, 4);
    ok = 1;
    for (size_t i = 0; i < 4; i++) {
        if (gguf_get_arr_str(g, "a.str", i, &str, &len, &err) || strcmp(str, as[i]) || len != strlen(as[i])) ok = 0;
    }
    CHECK(ok);
    CHECK_EQ(gguf_get_arr_str(g, "a.i32", 0, &str, &len, &err), SD_EFORMAT);
    CHECK_EQ(gguf_get_arr(g, "v.u8", &et, &n, &err), SD_EFORMAT);
    /* tensors */
    CHECK_EQ(gguf_n_tensors(g), 6);
    const gguf_tensor *t = gguf_tensor_at(g, 0);
    CHECK(t && strcmp(t->name, "t.f32") == 0);
    CHECK(gguf_tensor_at(g, 6) == NULL);
    struct { const char *name; int type; uint32_t nd; const uint64_t *dims; const void *data; size_t nb; } exp[] = {
        {"t.f32", GGUF_TTYPE_F32, 2, d_f32, f32, sizeof f32},
        {"t.f16", GGUF_TTYPE_F16, 2, d_16, f16, sizeof f16},
        {"t.bf16", GGUF_TTYPE_BF16, 2, d_16, bf16, sizeof bf16},
        {"t.q8_0", GGUF_TTYPE_Q8_0, 2, d_q8, q8, sizeof q8},
        {"t.q4_k", GGUF_TTYPE_Q4_K, 1, d_q4k, q4k, sizeof q4k},
        {"t.3d", GGUF_TTYPE_F32, 3, d_3d, f32, sizeof f32},
    };
    for (size_t i = 0; i < 6; i++) {
        t = gguf_find_tensor(g, exp[i].name);
        CHECK_MSG(t != NULL, "%s", exp[i].name);
        if (!t) continue;
        CHECK_EQ(t->type, exp[i].type);
        CHECK_EQ(t->n_dims, exp[i].nd);
        int dims_ok = 1;
        for (uint32_t k = 0; k < exp[i].nd; k++) dims_ok &= t->dims[k] == exp[i].dims[k];
        for (uint32_t k = exp[i].nd; k < GGUF_MAX_DIMS; k++) dims_ok &= t->dims[k] == 1;
        CHECK_MSG(dims_ok, "%s dims", exp[i].name);
        CHECK_EQ(t->nbytes, exp[i].nb);
        CHECK_EQ(t->offset % 32, 0);
        CHECK_EQ((uintptr_t)t->data % 32, 0);
        CHECK_MSG(memcmp(t->data, exp[i].data, exp[i].nb) == 0, "%s data", exp[i].name);
    }
    t = gguf_find_tensor(g, "t.q8_0");
    if (t) {
        CHECK_EQ(t->n_elems, 192);
        float y[192];
        CHECK_EQ(gguf_dequantize(t->type, t->data, y, 192), 0);
        double maxe = 0;
        for (int i = 0; i < 192; i++) if (fabs(y[i] - q8src[i]) > maxe) maxe = fabs(y[i] - q8src[i]);
        CHECK(maxe < 3.0 / 127 * 0.57);
    }
    t = gguf_find_tensor(g, "t.bf16");
    if (t) {
        float y[128];
        CHECK_EQ(gguf_dequantize(t->type, t->data, y, 128), 0);
        CHECK(y[5] == gguf_bf16_to_f32(bf16[5]));
    }
    struct stat st;
    CHECK(stat(path, &st) == 0);
    t = gguf_find_tensor(g, "t.3d");
    if (t) CHECK_EQ((size_t)st.st_size, gguf_data_offset(g) + t->offset + (t->nbytes + 31) / 32 * 32);
    gguf_free(g);

    /* a failing fill callback leaves nothing behind */
    const char *p2 = path_in("fail.gguf");
    w = gguf_writer_new(p2, &err);
    CHECK(w != NULL);
    if (w) {
        CHECK_EQ(gguf_writer_add_tensor_fill(w, "x", 1, d_f32, GGUF_TTYPE_F32, fail_cb, NULL), 0);
        CHECK_EQ(gguf_writer_finish(w, &err), SD_EINVAL);
        CHECK(strstr(err.msg, "'x'") != NULL);
        gguf_writer_free(w);
    }
    CHECK(access(p2, F_OK) != 0);
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", p2, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0);

    /* alignment 64 and an empty file (no kv, no tensors) */
    const char *p3 = path_in("al64.gguf");
    w = gguf_writer_new(p3, &err);
    if (w) {
        CHECK_EQ(gguf_writer_add_u32(w, "general.alignment", 64), 0);
        CHECK_EQ(gguf_writer_add_tensor(w, "a", 1, d_f32, GGUF_TTYPE_F32, f32), 0);
        CHECK_EQ(gguf_writer_add_tensor(w, "b", 1, d_f32, GGUF_TTYPE_F32, f32 + 6), 0);
        CHECK_EQ(gguf_writer_finish(w, &err), 0);
        gguf_writer_free(w);
    }
    g = gguf_open(p3, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (g) {
        CHECK_EQ(gguf_alignment(g), 64);
        t = gguf_find_tensor(g, "b");
        CHECK(t && t->offset == 64 && memcmp(t->data, f32 + 6, 24) == 0);
        gguf_free(g);
    }
    const char *p4 = path_in("empty.gguf");
    w = gguf_writer_new(p4, &err);
    if (w) {
        CHECK_EQ(gguf_writer_finish(w, &err), 0);
        gguf_writer_free(w);
    }
    g = gguf_open(p4, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (g) {
        CHECK_EQ(gguf_n_kv(g), 0);
        CHECK_EQ(gguf_n_tensors(g), 0);
        gguf_free(g);
    }
    CHECK(stat(p4, &st) == 0 && st.st_size == 32);  /* header padded to the alignment */
    g = gguf_open(path_in("missing.gguf"), &err);
    CHECK(g == NULL && err.code == SD_ENOTFOUND);
    CHECK(strstr(err.msg, "missing.gguf") != NULL);
    w = gguf_writer_new(path_in("no/such/dir.gguf"), &err);
    CHECK(w == NULL && err.code == SD_EIO);
}

/* Random byte flips of a valid file: opening must never crash and, when it
 * succeeds, every tensor must lie inside the buffer. */
static void test_fuzz(void) {
    sd_err err = {0};
    const char *path = path_in("rt.gguf");
    uint8_t *src = NULL;
    size_t n = 0;
    char *buf = NULL;
    if (sd_read_file(path, 1 << 20, &buf, &n, &err)) {
        SKIP("no round-trip file: %s", err.msg);
        return;
    }
    src = (uint8_t *)buf;
    uint8_t *cp = malloc(n);
    int opened = 0, bad = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(cp, src, n);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rnd() % (it % 2 ? 600 : n));
            if (at >= n) at = n - 1;
            cp[at] = (uint8_t)rnd();
        }
        gguf *g = gguf_open_mem(cp, n, "fuzz.gguf", &err);
        if (g) {
            opened++;
            for (size_t i = 0; i < gguf_n_tensors(g); i++) {
                const gguf_tensor *t = gguf_tensor_at(g, i);
                const uint8_t *d = t->data;
                if (d < cp || d + t->nbytes > cp + n) bad++;
            }
            gguf_free(g);
        }
    }
    CHECK_EQ(bad, 0);
    CHECK(opened > 0);
    free(cp);
    free(buf);
}

/* ------------------------------------------------------------ numbers */

static void test_numbers(void) {
    CHECK_EQ(gguf_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ(gguf_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ(gguf_f32_to_f16(0.1f), 0x2e66);
    CHECK_EQ(gguf_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ(gguf_f32_to_f16(65519.0f), 0x7bff);
    CHECK_EQ(gguf_f32_to_f16(65520.0f), 0x7c00);
    CHECK_EQ(gguf_f32_to_f16(5.9604645e-8f), 0x0001);  /* 2^-24 */
    CHECK_EQ(gguf_f32_to_f16(2.9802322e-8f), 0x0000);  /* 2^-25 ties to even 0 */
    CHECK_EQ(gguf_f32_to_f16(6.1035156e-5f), 0x0400);  /* 2^-14 smallest normal */
    CHECK_EQ(gguf_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);  /* tie to even */
    CHECK_EQ(gguf_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
    CHECK_EQ(gguf_f32_to_f16(INFINITY), 0x7c00);
    CHECK((gguf_f32_to_f16(NAN) & 0x7fff) > 0x7c00);
    CHECK(gguf_f16_to_f32(0x3c00) == 1.0f);
    CHECK(gguf_f16_to_f32(0x0001) == 5.9604645e-8f);
    CHECK(gguf_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(gguf_f16_to_f32(0x8000) == 0.0f && signbit(gguf_f16_to_f32(0x8000)));
    CHECK(isinf(gguf_f16_to_f32(0xfc00)));
    /* every finite f16 survives f16 -> f32 -> f16 */
    int ok = 1;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if (((h >> 10) & 0x1f) == 31) continue;
        if (gguf_f32_to_f16(gguf_f16_to_f32((uint16_t)h)) != h) ok = 0;
    }
    CHECK(ok);
    CHECK_EQ(gguf_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ(gguf_f32_to_bf16(-3.0f), 0xc040);
    CHECK_EQ(gguf_f32_to_bf16(1.00390625f), 0x3f80);  /* 1 + 2^-8: tie to even */
    CHECK_EQ(gguf_f32_to_bf16(1.01171875f), 0x3f82);  /* 1 + 3*2^-8: tie to even (up) */
    CHECK((gguf_f32_to_bf16(NAN) & 0x7f) != 0 && (gguf_f32_to_bf16(NAN) & 0x7f80) == 0x7f80);
    CHECK(gguf_bf16_to_f32(0x4049) == 3.140625f);

    /* Q8_0: one hand-checked block and random error bounds */
    float x[64];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16);  /* amax 16 -> d = 16/127 */
    for (int i = 32; i < 64; i++) x[i] = 0;
    uint8_t q[2 * GGUF_Q8_0_BYTES];
    gguf_quantize_q8_0(x, q, 64);
    uint16_t dh;
    memcpy(&dh, q, 2);
    CHECK_EQ(dh, gguf_f32_to_f16(16.0f / 127));
    CHECK_EQ((int8_t)q[2 + 0], -127);   /* -16 */
    CHECK_EQ((int8_t)q[2 + 16], 0);
    CHECK_EQ((int8_t)q[2 + 20], 32);    /* 4/(16/127) = 31.75 */
    CHECK_EQ((int8_t)q[2 + 31], 119);   /* 15*127/16 = 119.06 */
    float y[64];
    gguf_dequantize_q8_0(q, y, 64);
    CHECK(y[32] == 0 && y[63] == 0);
    memcpy(&dh, q + GGUF_Q8_0_BYTES, 2);
    CHECK_EQ(dh, 0);
    double worst = 0;
    for (int rep = 0; rep < 200; rep++) {
        float scale = (float)(1 << (rep % 10)) / 64;
        for (int i = 0; i < 64; i++) x[i] = rndf() * scale;
        gguf_quantize_q8_0(x, q, 64);
        gguf_dequantize_q8_0(q, y, 64);
        for (int b = 0; b < 2; b++) {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
            float d = amax / 127;
            for (int i = 0; i < 32; i++) {
                double e = fabs(y[32 * b + i] - x[32 * b + i]) / d;
                if (e > worst) worst = e;
            }
        }
    }
    CHECK_MSG(worst <= 0.5 + 127.0 / 2048, "worst Q8_0 error %.4f steps", worst);
    CHECK(worst > 0.3);  /* the bound is not vacuous */

    /* Q4_K: a hand-built block */
    uint8_t blk[GGUF_Q4_K_BYTES];
    memset(blk, 0, sizeof blk);
    uint16_t one = gguf_f32_to_f16(1.0f), half = gguf_f32_to_f16(0.5f);
    memcpy(blk, &one, 2);
    memcpy(blk + 2, &half, 2);
    uint8_t *sc = blk + 4, *qs = blk + 16;
    sc[0] = 0x40 | 2;   /* scale 0 = 2, high bits of scale 4 = 1 */
    sc[4] = 3;          /* min 0 = 3 */
    sc[1] = 5;          /* scale 1 = 5 */
    sc[5] = 1;          /* min 1 = 1 */
    sc[8] = 0x25;       /* scale 4 = 5 | 1<<4 = 21, min 4 = 2 | (sc[4]>>6)<<4 = 2 */
    qs[0] = 0x97;       /* elem 0 low nibble 7, elem 32 high nibble 9 */
    qs[64] = 0x0c;      /* elem 128 (sub-block 4) low nibble 12 */
    float yk[256];
    CHECK_EQ(gguf_dequantize(GGUF_TTYPE_Q4_K, blk, yk, 256), 0);
    CHECK_NEAR(yk[0], 2 * 7 - 0.5 * 3, 1e-6);
    CHECK_NEAR(yk[1], -1.5, 1e-6);
    CHECK_NEAR(yk[32], 5 * 9 - 0.5 * 1, 1e-6);
    CHECK_NEAR(yk[128], 21 * 12 - 0.5 * 2, 1e-6);
    CHECK_NEAR(yk[255], 0, 1e-6);  /* scale 7 = 0, min 7 = 0 */
    CHECK_EQ(gguf_dequantize(GGUF_TTYPE_Q4_K, blk, yk, 100), SD_EINVAL);
    CHECK_EQ(gguf_dequantize(GGUF_TTYPE_Q6_K, blk, yk, 256), SD_ENOTSUP);
    size_t be = 0, bbytes = 0;
    CHECK_EQ(gguf_ttype_block(GGUF_TTYPE_Q8_0, &be, &bbytes), 0);
    CHECK(be == 32 && bbytes == 34);
    CHECK_EQ(gguf_ttype_block(GGUF_TTYPE_Q4_K, &be, &bbytes), 0);
    CHECK(be == 256 && bbytes == 144);
    CHECK_EQ(gguf_ttype_block(5, &be, &bbytes), SD_ENOTSUP);
    CHECK(strcmp(gguf_ttype_name(GGUF_TTYPE_BF16), "BF16") == 0);
    uint64_t dims[2] = {2048, 11008};
    size_t nb = 0;
    CHECK_EQ(gguf_tensor_nbytes(GGUF_TTYPE_Q8_0, 2, dims, &nb), 0);
    CHECK_EQ(nb, 2048 / 32 * 34 * 11008);
}

/* ------------------------------------------------------------ Q/K permutation */

static void test_permute(void) {
    /* hand-worked: 2 heads of 4 rows (head_dim 4), one byte per row.
     * HF row order per head: [x0 x1 | y0 y1]; GGUF pairs them: x0 y0 x1 y1. */
    const uint8_t hf[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    const uint8_t want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    uint8_t out[8], back[8];
    CHECK_EQ(gguf_permute_qk_rows(hf, out, 8, 1, 2), 0);
    CHECK(memcmp(out, want, 8) == 0);
    CHECK_EQ(gguf_unpermute_qk_rows(out, back, 8, 1, 2), 0);
    CHECK(memcmp(back, hf, 8) == 0);
    /* one head of 8 rows: [0 1 2 3 | 4 5 6 7] -> 0 4 1 5 2 6 3 7 */
    const uint8_t hf8[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    const uint8_t want8[8] = {10, 14, 11, 15, 12, 16, 13, 17};
    CHECK_EQ(gguf_permute_qk_rows(hf8, out, 8, 1, 1), 0);
    CHECK(memcmp(out, want8, 8) == 0);
    CHECK_EQ(gguf_permute_qk_rows(hf8, out, 6, 1, 4), SD_EINVAL);
    CHECK_EQ(gguf_permute_qk_rows(hf8, out, 8, 1, 0), SD_EINVAL);
    /* random 4 heads x 16 rows of 6 bf16 each: permute then unpermute is identity */
    enum { R = 64, C = 6 };
    uint16_t m[R * C], p[R * C], u[R * C];
    for (int i = 0; i < R * C; i++) m[i] = (uint16_t)rnd();
    CHECK_EQ(gguf_permute_qk_rows(m, p, R, C * 2, 4), 0);
    CHECK(memcmp(p, m, sizeof m) != 0);
    CHECK_EQ(gguf_unpermute_qk_rows(p, u, R, C * 2, 4), 0);
    CHECK(memcmp(u, m, sizeof m) == 0);
    /* row 1 of GGUF head 2 is HF row 8 of that head (first of the second half) */
    CHECK(memcmp(p + (2 * 16 + 1) * C, m + (2 * 16 + 8) * C, C * 2) == 0);
    /* and unpermute then permute is identity too */
    CHECK_EQ(gguf_unpermute_qk_rows(m, p, R, C * 2, 4), 0);
    CHECK_EQ(gguf_permute_qk_rows(p, u, R, C * 2, 4), 0);
    CHECK(memcmp(u, m, sizeof m) == 0);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_gguf.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_numbers();
    test_permute();
    test_hand_built();
    test_malformed();
    test_roundtrip();
    test_fuzz();
    const char *names[] = {"rt.gguf", "al64.gguf", "empty.gguf"};
    for (size_t i = 0; i < 3; i++) unlink(path_in(names[i]));
    rmdir(tmpdir);
    return test_done();
}
