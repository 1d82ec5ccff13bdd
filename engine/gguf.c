/* gguf.c - GGUF v2/v3 reader (mmap, bounds-checked cursor over untrusted bytes),
 * GGUF v3 writer (temp file + fsync + rename), f16/bf16 and Q8_0/Q4_K numbers,
 * and the Q/K row permutation of llama.cpp's HF converter. */
#include "gguf.h"

#include "dtype.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- types */

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};
static const size_t vtype_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_vtype_name(int t) {
    return (t >= 0 && t < GGUF_VTYPE_COUNT) ? vtype_names[t] : "?";
}

static int vtype_is_num(int t) {
    return t >= 0 && t < GGUF_VTYPE_COUNT && t != GGUF_VTYPE_STRING && t != GGUF_VTYPE_ARRAY;
}

static int vtype_is_int(int t) {
    return vtype_is_num(t) && t != GGUF_VTYPE_FLOAT32 && t != GGUF_VTYPE_FLOAT64;
}

typedef struct ttype_info {
    int type;
    const char *name;
    size_t blck, bytes;
} ttype_info;

static const ttype_info ttypes[] = {
    {GGUF_TTYPE_F32, "F32", 1, 4},         {GGUF_TTYPE_F16, "F16", 1, 2},
    {GGUF_TTYPE_Q4_0, "Q4_0", 32, 18},     {GGUF_TTYPE_Q4_1, "Q4_1", 32, 20},
    {GGUF_TTYPE_Q5_0, "Q5_0", 32, 22},     {GGUF_TTYPE_Q5_1, "Q5_1", 32, 24},
    {GGUF_TTYPE_Q8_0, "Q8_0", 32, 34},     {GGUF_TTYPE_Q2_K, "Q2_K", 256, 84},
    {GGUF_TTYPE_Q3_K, "Q3_K", 256, 110},   {GGUF_TTYPE_Q4_K, "Q4_K", 256, 144},
    {GGUF_TTYPE_Q5_K, "Q5_K", 256, 176},   {GGUF_TTYPE_Q6_K, "Q6_K", 256, 210},
    {GGUF_TTYPE_BF16, "BF16", 1, 2},
};

static const ttype_info *ttype_find(int t) {
    for (size_t i = 0; i < sizeof ttypes / sizeof ttypes[0]; i++)
        if (ttypes[i].type == t) return &ttypes[i];
    return NULL;
}

const char *gguf_ttype_name(int t) {
    const ttype_info *ti = ttype_find(t);
    return ti ? ti->name : "?";
}

int gguf_ttype_block(int t, size_t *block_elems, size_t *block_bytes) {
    const ttype_info *ti = ttype_find(t);
    if (!ti) return SD_ENOTSUP;
    if (block_elems) *block_elems = ti->blck;
    if (block_bytes) *block_bytes = ti->bytes;
    return 0;
}

int gguf_tensor_nbytes(int t, uint32_t n_dims, const uint64_t *dims, size_t *out) {
    const ttype_info *ti = ttype_find(t);
    if (!ti) return SD_ENOTSUP;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) return SD_EINVAL;
    if (dims[0] % ti->blck) return SD_EINVAL;
    size_t n = (size_t)(dims[0] / ti->blck) * ti->bytes;
    if (dims[0] / ti->blck > SIZE_MAX / ti->bytes) return SD_ERANGE;
    for (uint32_t i = 1; i < n_dims; i++) {
        if (dims[i] > SIZE_MAX || sd_mul_overflow(n, (size_t)dims[i], &n)) return SD_ERANGE;
    }
    if (n > (size_t)INT64_MAX) return SD_ERANGE;
    *out = n;
    return 0;
}

/* ---------------------------------------------------------------- reader */

typedef struct sstr {
    char *s;
    size_t len;
} sstr;

typedef struct kv {
    char *key;
    int type;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num;           /* scalar numbers and bools, widened */
    sstr str;        /* STRING */
    int arr_type;    /* ARRAY */
    size_t arr_n;
    const uint8_t *arr_raw; /* numeric array elements, in the file */
    sstr *arr_strs;         /* string array elements */
} kv;

/* Chunked arena for NUL-terminated copies of file strings. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

struct gguf {
    char *name;
    const uint8_t *base;
    size_t len;
    void *map;  /* non-NULL when we mmap'd */
    uint32_t version;
    size_t align;
    size_t data_off;
    kv *kvs;
    size_t n_kv;
    gguf_tensor *tensors;
    size_t n_tensors;
    size_t *kv_hash, kv_hcap;      /* open addressing, slot = index+1 */
    size_t *t_hash, t_hcap;
    chunk *arena;
};

typedef struct cursor {
    const uint8_t *p;
    size_t pos, len;
} cursor;

static size_t cur_left(const cursor *c) { return c->len - c->pos; }

static int cur_read(cursor *c, void *out, size_t n) {
    if (cur_left(c) < n) return -1;
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static char *arena_copy(gguf *g, const uint8_t *src, size_t len) {
    if (!g->arena || g->arena->cap - g->arena->used < len + 1) {
        size_t cap = len + 1 > (1u << 20) ? len + 1 : (1u << 20);
        chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = g->arena;
        c->used = 0;
        c->cap = cap;
        g->arena = c;
    }
    char *d = g->arena->data + g->arena->used;
    memcpy(d, src, len);
    d[len] = 0;
    g->arena->used += len + 1;
    return d;
}

/* Looks name up in a hash of indices; names(i) gives the i-th name. */
static long hash_find(const size_t *tab, size_t cap, const char *name, const gguf *g, int tensors) {
    if (!cap) return -1;
    for (size_t h = hash_str(name) & (cap - 1);; h = (h + 1) & (cap - 1)) {
        size_t slot = tab[h];
        if (!slot) return -1;
        const char *n = tensors ? g->tensors[slot - 1].name : g->kvs[slot - 1].key;
        if (strcmp(n, name) == 0) return (long)(slot - 1);
    }
}

static int hash_build(gguf *g, int tensors, size_t **tab_out, size_t *cap_out, sd_err *err) {
    size_t n = tensors ? g->n_tensors : g->n_kv;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    size_t *tab = calloc(cap, sizeof *tab);
    if (!tab) return sd_seterr(err, SD_ENOMEM, "gguf_open: %s: out of memory", g->name);
    *tab_out = tab;
    *cap_out = cap;
    for (size_t i = 0; i < n; i++) {
        const char *name = tensors ? g->tensors[i].name : g->kvs[i].key;
        if (hash_find(tab, cap, name, g, tensors) >= 0)
            return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: duplicate %s '%s'", g->name,
                             tensors ? "tensor" : "key", name);
        size_t h = hash_str(name) & (cap - 1);
        while (tab[h]) h = (h + 1) & (cap - 1);
        tab[h] = i + 1;
    }
    return 0;
}

/* Reads a u64-length string into the arena. what names it in errors. */
static int read_str(gguf *g, cursor *c, sstr *out, const char *what, sd_err *err) {
    uint64_t n;
    size_t at = c->pos;
    if (cur_read(c, &n, 8))
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: truncated at offset %zu reading %s length",
                         g->name, at, what);
    if (n > cur_left(c))
        return sd_seterr(err, SD_EFORMAT,
                         "gguf_open: %s: %s length %llu at offset %zu runs past end of file", g->name,
                         what, (unsigned long long)n, at);
    out->s = arena_copy(g, c->p + c->pos, (size_t)n);
    if (!out->s) return sd_seterr(err, SD_ENOMEM, "gguf_open: %s: out of memory", g->name);
    out->len = (size_t)n;
    c->pos += (size_t)n;
    return 0;
}

static void widen(kv *k, int t, const uint8_t *p) {
    switch (t) {
    case GGUF_VTYPE_UINT8: k->num.u = p[0]; break;
    case GGUF_VTYPE_BOOL: k->num.u = p[0] != 0; break;
    case GGUF_VTYPE_INT8: { int8_t v; memcpy(&v, p, 1); k->num.i = v; break; }
    case GGUF_VTYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); k->num.u = v; break; }
    case GGUF_VTYPE_INT16: { int16_t v; memcpy(&v, p, 2); k->num.i = v; break; }
    case GGUF_VTYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); k->num.u = v; break; }
    case GGUF_VTYPE_INT32: { int32_t v; memcpy(&v, p, 4); k->num.i = v; break; }
    case GGUF_VTYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); k->num.u = v; break; }
    case GGUF_VTYPE_INT64: { int64_t v; memcpy(&v, p, 8); k->num.i = v; break; }
    case GGUF_VTYPE_FLOAT32: { float v; memcpy(&v, p, 4); k->num.f = v; break; }
    case GGUF_VTYPE_FLOAT64: { double v; memcpy(&v, p, 8); k->num.f = v; break; }
    }
}

static int read_kv(gguf *g, cursor *c, kv *k, sd_err *err) {
    sstr key;
    int rc = read_str(g, c, &key, "key", err);
    if (rc) return rc;
    k->key = key.s;
    uint32_t t;
    if (cur_read(c, &t, 4))
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: key '%s': truncated value type", g->name,
                         k->key);
    if (t >= GGUF_VTYPE_COUNT)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: key '%s': unknown value type %u", g->name,
                         k->key, t);
    k->type = (int)t;
    if (vtype_is_num(k->type)) {
        uint8_t buf[8];
        if (cur_read(c, buf, vtype_size[t]))
            return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: key '%s': truncated value", g->name,
                             k->key);
        widen(k, k->type, buf);
        return 0;
    }
    if (t == GGUF_VTYPE_STRING) return read_str(g, c, &k->str, k->key, err);
    /* array */
    uint32_t et;
    uint64_t n;
    if (cur_read(c, &et, 4) || cur_read(c, &n, 8))
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: key '%s': truncated array header",
                         g->name, k->key);
    if (et == GGUF_VTYPE_ARRAY)
        return sd_seterr(err, SD_ENOTSUP, "gguf_open: %s: key '%s': nested arrays not supported",
                         g->name, k->key);
    if (et >= GGUF_VTYPE_COUNT)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: key '%s': unknown array element type %u",
                         g->name, k->key, et);
    k->arr_type = (int)et;
    if (et == GGUF_VTYPE_STRING) {
        if (n > cur_left(c) / 8)
            return sd_seterr(err, SD_EFORMAT,
                             "gguf_open: %s: key '%s': array of %llu strings runs past end of file",
                             g->name, k->key, (unsigned long long)n);
        k->arr_strs = malloc((size_t)(n ? n : 1) * sizeof *k->arr_strs);
        if (!k->arr_strs) return sd_seterr(err, SD_ENOMEM, "gguf_open: %s: out of memory", g->name);
        k->arr_n = (size_t)n;
        for (size_t i = 0; i < k->arr_n; i++) {
            rc = read_str(g, c, &k->arr_strs[i], k->key, err);
            if (rc) return rc;
        }
        return 0;
    }
    if (n > cur_left(c) / vtype_size[et])
        return sd_seterr(err, SD_EFORMAT,
                         "gguf_open: %s: key '%s': array of %llu %s runs past end of file", g->name,
                         k->key, (unsigned long long)n, vtype_names[et]);
    k->arr_n = (size_t)n;
    k->arr_raw = c->p + c->pos;
    c->pos += k->arr_n * vtype_size[et];
    return 0;
}

static int read_tensor_info(gguf *g, cursor *c, gguf_tensor *t, sd_err *err) {
    sstr name;
    int rc = read_str(g, c, &name, "tensor name", err);
    if (rc) return rc;
    t->name = name.s;
    if (cur_read(c, &t->n_dims, 4))
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: tensor '%s': truncated", g->name, t->name);
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: tensor '%s': %u dimensions (1..%d allowed)",
                         g->name, t->name, t->n_dims, GGUF_MAX_DIMS);
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->dims[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if (cur_read(c, &t->dims[i], 8))
            return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: tensor '%s': truncated", g->name,
                             t->name);
        if (t->dims[i] > (uint64_t)INT64_MAX)
            return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: tensor '%s': dimension %u is %llu",
                             g->name, t->name, i, (unsigned long long)t->dims[i]);
    }
    uint32_t type;
    if (cur_read(c, &type, 4) || cur_read(c, &t->offset, 8))
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: tensor '%s': truncated", g->name, t->name);
    t->type = (int)type;
    const ttype_info *ti = ttype_find(t->type);
    if (!ti)
        return sd_seterr(err, SD_ENOTSUP, "gguf_open: %s: tensor '%s': unknown tensor type %u",
                         g->name, t->name, type);
    uint64_t ne = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if (__builtin_mul_overflow(ne, t->dims[i], &ne) || ne > (uint64_t)INT64_MAX)
            return sd_seterr(err, SD_EFORMAT,
                             "gguf_open: %s: tensor '%s': element count overflows", g->name,
                             t->name);
    }
    t->n_elems = ne;
    rc = gguf_tensor_nbytes(t->type, t->n_dims, t->dims, &t->nbytes);
    if (rc == SD_EINVAL)
        return sd_seterr(err, SD_EFORMAT,
                         "gguf_open: %s: tensor '%s': row length %llu not a multiple of the %s "
                         "block (%zu)",
                         g->name, t->name, (unsigned long long)t->dims[0], ti->name, ti->blck);
    if (rc)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: tensor '%s': byte size overflows",
                         g->name, t->name);
    return 0;
}

static int parse(gguf *g, sd_err *err) {
    cursor c = {g->base, 0, g->len};
    char magic[4];
    if (cur_read(&c, magic, 4) || memcmp(magic, "GGUF", 4) != 0)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: bad magic (not a GGUF file)", g->name);
    if (cur_read(&c, &g->version, 4))
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: truncated header", g->name);
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && g->version != 0)
            return sd_seterr(err, SD_ENOTSUP, "gguf_open: %s: big-endian GGUF not supported",
                             g->name);
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: unsupported GGUF version %u (2 or 3)",
                         g->name, g->version);
    }
    uint64_t n_tensors, n_kv;
    if (cur_read(&c, &n_tensors, 8) || cur_read(&c, &n_kv, 8))
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: truncated header", g->name);
    /* Every kv takes >= 13 bytes and every tensor info >= 32. */
    if (n_kv > cur_left(&c) / 13)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: %llu metadata entries cannot fit in %zu bytes",
                         g->name, (unsigned long long)n_kv, g->len);
    if (n_tensors > cur_left(&c) / 32)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: %llu tensors cannot fit in %zu bytes",
                         g->name, (unsigned long long)n_tensors, g->len);
    g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return sd_seterr(err, SD_ENOMEM, "gguf_open: %s: out of memory", g->name);
    int rc;
    for (size_t i = 0; i < (size_t)n_kv; i++) {
        g->n_kv = i + 1;  /* so gguf_free releases what was read */
        if ((rc = read_kv(g, &c, &g->kvs[i], err))) return rc;
    }
    if ((rc = hash_build(g, 0, &g->kv_hash, &g->kv_hcap, err))) return rc;
    g->align = GGUF_DEFAULT_ALIGNMENT;
    long ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const kv *k = &g->kvs[ai];
        if (k->type != GGUF_VTYPE_UINT32 || k->num.u == 0 || (k->num.u & (k->num.u - 1)))
            return sd_seterr(err, SD_EFORMAT,
                             "gguf_open: %s: general.alignment must be a u32 power of two", g->name);
        g->align = (size_t)k->num.u;
    }
    for (size_t i = 0; i < (size_t)n_tensors; i++) {
        g->n_tensors = i + 1;
        if ((rc = read_tensor_info(g, &c, &g->tensors[i], err))) return rc;
    }
    g->n_tensors = (size_t)n_tensors;
    if ((rc = hash_build(g, 1, &g->t_hash, &g->t_hcap, err))) return rc;
    size_t pad = (g->align - c.pos % g->align) % g->align;
    g->data_off = c.pos + pad;
    if (g->n_tensors && g->data_off > g->len)
        return sd_seterr(err, SD_EFORMAT, "gguf_open: %s: truncated before the data section",
                         g->name);
    size_t data_len = g->data_off <= g->len ? g->len - g->data_off : 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->align)
            return sd_seterr(err, SD_EFORMAT,
                             "gguf_open: %s: tensor '%s': offset %llu not a multiple of the "
                             "alignment %zu",
                             g->name, t->name, (unsigned long long)t->offset, g->align);
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return sd_seterr(err, SD_EFORMAT,
                             "gguf_open: %s: tensor '%s': data at offset %llu (+%zu bytes) lies "
                             "outside the %zu-byte data section",
                             g->name, t->name, (unsigned long long)t->offset, t->nbytes, data_len);
        t->data = g->base + g->data_off + t->offset;
    }
    return 0;
}

static gguf *gguf_alloc(const char *name) {
    gguf *g = xcalloc(1, sizeof *g);
    g->name = xstrdup(name ? name : "(memory)");
    return g;
}

gguf *gguf_open_mem(const void *buf, size_t len, const char *name, sd_err *err) {
    gguf *g = gguf_alloc(name);
    g->base = buf;
    g->len = len;
    if (parse(g, err)) {
        gguf_free(g);
        return NULL;
    }
    return g;
}

gguf *gguf_open(const char *path, sd_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sd_seterr(err, errno == ENOENT ? SD_ENOTFOUND : SD_EIO, "gguf_open: %s: %s", path,
                  strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        sd_seterr(err, SD_EIO, "gguf_open: %s: not a regular file", path);
        close(fd);
        return NULL;
    }
    gguf *g = gguf_alloc(path);
    g->len = (size_t)st.st_size;
    if (g->len) {
        void *m = mmap(NULL, g->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            sd_seterr(err, SD_EIO, "gguf_open: %s: mmap: %s", path, strerror(errno));
            close(fd);
            gguf_free(g);
            return NULL;
        }
        g->map = m;
        g->base = m;
    } else {
        g->base = (const uint8_t *)"";
    }
    close(fd);
    if (parse(g, err)) {
        gguf_free(g);
        return NULL;
    }
    return g;
}

void gguf_free(gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) free(g->kvs[i].arr_strs);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_hash);
    free(g->t_hash);
    while (g->arena) {
        chunk *n = g->arena->next;
        free(g->arena);
        g->arena = n;
    }
    if (g->map) munmap(g->map, g->len);
    free(g->name);
    free(g);
}

uint32_t gguf_version(const gguf *g) { return g->version; }
size_t gguf_alignment(const gguf *g) { return g->align; }
size_t gguf_data_offset(const gguf *g) { return g->data_off; }
size_t gguf_n_kv(const gguf *g) { return g->n_kv; }
const char *gguf_kv_key(const gguf *g, size_t i) { return i < g->n_kv ? g->kvs[i].key : NULL; }
int gguf_kv_type(const gguf *g, size_t i) { return i < g->n_kv ? g->kvs[i].type : -1; }

long gguf_find_key(const gguf *g, const char *key) {
    return hash_find(g->kv_hash, g->kv_hcap, key, g, 0);
}

size_t gguf_n_tensors(const gguf *g) { return g->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf *g, size_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}
const gguf_tensor *gguf_find_tensor(const gguf *g, const char *name) {
    long i = hash_find(g->t_hash, g->t_hcap, name, g, 1);
    return i < 0 ? NULL : &g->tensors[i];
}

static const kv *get(const gguf *g, const char *key, sd_err *err, int *rc) {
    long i = gguf_find_key(g, key);
    if (i < 0) {
        *rc = sd_seterr(err, SD_ENOTFOUND, "gguf: %s: key '%s' not found", g->name, key);
        return NULL;
    }
    *rc = 0;
    return &g->kvs[i];
}

static int wrong_type(const gguf *g, const kv *k, const char *want, sd_err *err) {
    return sd_seterr(err, SD_EFORMAT, "gguf: %s: key '%s' is %s, expected %s", g->name, k->key,
                     gguf_vtype_name(k->type), want);
}

static int is_signed(int t) {
    return t == GGUF_VTYPE_INT8 || t == GGUF_VTYPE_INT16 || t == GGUF_VTYPE_INT32 ||
           t == GGUF_VTYPE_INT64;
}

/* Integer value of k into [lo, hi] (hi as u64, lo as i64). */
static int get_int(const gguf *g, const char *key, int64_t lo, uint64_t hi, int want_unsigned,
                   uint64_t *u, int64_t *s, sd_err *err) {
    int rc;
    const kv *k = get(g, key, err, &rc);
    if (!k) return rc;
    if (!vtype_is_int(k->type)) return wrong_type(g, k, "an integer", err);
    int ok;
    if (is_signed(k->type))
        ok = k->num.i >= lo && (k->num.i < 0 || (uint64_t)k->num.i <= hi);
    else
        ok = k->num.u <= hi;
    if (!ok)
        return sd_seterr(err, SD_EFORMAT, "gguf: %s: key '%s' value out of range", g->name, key);
    if (want_unsigned) *u = is_signed(k->type) ? (uint64_t)k->num.i : k->num.u;
    else *s = is_signed(k->type) ? k->num.i : (int64_t)k->num.u;
    return 0;
}

int gguf_get_u32(const gguf *g, const char *key, uint32_t *out, sd_err *err) {
    uint64_t v = 0;
    int rc = get_int(g, key, 0, UINT32_MAX, 1, &v, NULL, err);
    if (!rc) *out = (uint32_t)v;
    return rc;
}
int gguf_get_u64(const gguf *g, const char *key, uint64_t *out, sd_err *err) {
    return get_int(g, key, 0, UINT64_MAX, 1, out, NULL, err);
}
int gguf_get_i32(const gguf *g, const char *key, int32_t *out, sd_err *err) {
    int64_t v = 0;
    int rc = get_int(g, key, INT32_MIN, INT32_MAX, 0, NULL, &v, err);
    if (!rc) *out = (int32_t)v;
    return rc;
}
int gguf_get_i64(const gguf *g, const char *key, int64_t *out, sd_err *err) {
    return get_int(g, key, INT64_MIN, INT64_MAX, 0, NULL, out, err);
}
int gguf_get_f64(const gguf *g, const char *key, double *out, sd_err *err) {
    int rc;
    const kv *k = get(g, key, err, &rc);
    if (!k) return rc;
    if (k->type != GGUF_VTYPE_FLOAT32 && k->type != GGUF_VTYPE_FLOAT64)
        return wrong_type(g, k, "a float", err);
    *out = k->num.f;
    return 0;
}
int gguf_get_f32(const gguf *g, const char *key, float *out, sd_err *err) {
    double d = 0;
    int rc = gguf_get_f64(g, key, &d, err);
    if (!rc) *out = (float)d;
    return rc;
}
int gguf_get_bool(const gguf *g, const char *key, int *out, sd_err *err) {
    int rc;
    const kv *k = get(g, key, err, &rc);
    if (!k) return rc;
    if (k->type != GGUF_VTYPE_BOOL) return wrong_type(g, k, "bool", err);
    *out = k->num.u != 0;
    return 0;
}
int gguf_get_str(const gguf *g, const char *key, const char **out, size_t *len, sd_err *err) {
    int rc;
    const kv *k = get(g, key, err, &rc);
    if (!k) return rc;
    if (k->type != GGUF_VTYPE_STRING) return wrong_type(g, k, "str", err);
    *out = k->str.s;
    if (len) *len = k->str.len;
    return 0;
}
int gguf_get_arr(const gguf *g, const char *key, int *elem_type, size_t *n, sd_err *err) {
    int rc;
    const kv *k = get(g, key, err, &rc);
    if (!k) return rc;
    if (k->type != GGUF_VTYPE_ARRAY) return wrong_type(g, k, "arr", err);
    if (elem_type) *elem_type = k->arr_type;
    if (n) *n = k->arr_n;
    return 0;
}

static const kv *get_arr_elem(const gguf *g, const char *key, size_t i, sd_err *err, int *rc) {
    const kv *k = get(g, key, err, rc);
    if (!k) return NULL;
    if (k->type != GGUF_VTYPE_ARRAY) {
        *rc = wrong_type(g, k, "arr", err);
        return NULL;
    }
    if (i >= k->arr_n) {
        *rc = sd_seterr(err, SD_ERANGE, "gguf: %s: key '%s': index %zu out of %zu", g->name, key,
                        i, k->arr_n);
        return NULL;
    }
    return k;
}

int gguf_get_arr_str(const gguf *g, const char *key, size_t i, const char **out, size_t *len,
                     sd_err *err) {
    int rc;
    const kv *k = get_arr_elem(g, key, i, err, &rc);
    if (!k) return rc;
    if (k->arr_type != GGUF_VTYPE_STRING)
        return sd_seterr(err, SD_EFORMAT, "gguf: %s: key '%s' is not a string array", g->name, key);
    *out = k->arr_strs[i].s;
    if (len) *len = k->arr_strs[i].len;
    return 0;
}

int gguf_get_arr_int(const gguf *g, const char *key, size_t i, int64_t *out, sd_err *err) {
    int rc;
    const kv *k = get_arr_elem(g, key, i, err, &rc);
    if (!k) return rc;
    if (!vtype_is_int(k->arr_type))
        return sd_seterr(err, SD_EFORMAT, "gguf: %s: key '%s' is not an integer array", g->name, key);
    kv tmp;
    widen(&tmp, k->arr_type, k->arr_raw + i * vtype_size[k->arr_type]);
    if (!is_signed(k->arr_type) && tmp.num.u > (uint64_t)INT64_MAX)
        return sd_seterr(err, SD_EFORMAT, "gguf: %s: key '%s'[%zu] out of range", g->name, key, i);
    *out = is_signed(k->arr_type) ? tmp.num.i : (int64_t)tmp.num.u;
    return 0;
}

int gguf_get_arr_f64(const gguf *g, const char *key, size_t i, double *out, sd_err *err) {
    int rc;
    const kv *k = get_arr_elem(g, key, i, err, &rc);
    if (!k) return rc;
    if (!vtype_is_num(k->arr_type))
        return sd_seterr(err, SD_EFORMAT, "gguf: %s: key '%s' is not a numeric array", g->name, key);
    kv tmp;
    widen(&tmp, k->arr_type, k->arr_raw + i * vtype_size[k->arr_type]);
    if (k->arr_type == GGUF_VTYPE_FLOAT32 || k->arr_type == GGUF_VTYPE_FLOAT64) *out = tmp.num.f;
    else if (is_signed(k->arr_type)) *out = (double)tmp.num.i;
    else *out = (double)tmp.num.u;
    return 0;
}

const void *gguf_get_arr_data(const gguf *g, const char *key) {
    long i = gguf_find_key(g, key);
    if (i < 0 || g->kvs[i].type != GGUF_VTYPE_ARRAY || !vtype_is_num(g->kvs[i].arr_type))
        return NULL;
    return g->kvs[i].arr_raw;
}

/* ---------------------------------------------------------------- writer */

typedef struct wtensor {
    char *name;
    uint32_t n_dims;
    uint64_t dims[GGUF_MAX_DIMS];
    int type;
    size_t nbytes;
    uint64_t offset;
    const void *data;
    gguf_fill_fn fill;
    void *ctx;
} wtensor;

struct gguf_writer {
    char *path, *tmp;
    int fd;
    size_t align;
    uint8_t *meta;  /* serialised kv pairs */
    size_t meta_len, meta_cap;
    char **keys;
    size_t n_kv;
    wtensor *tensors;
    size_t n_tensors;
    int failed;     /* a previous add failed with out-of-range input */
};

gguf_writer *gguf_writer_new(const char *path, sd_err *err) {
    if (!path || !*path) {
        sd_seterr(err, SD_EINVAL, "gguf_writer_new: empty path");
        return NULL;
    }
    gguf_writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    size_t n = strlen(path) + 32;
    w->tmp = xmalloc(n);
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        sd_seterr(err, SD_EIO, "gguf_writer_new: %s: %s", w->tmp, strerror(errno));
        free(w->tmp);
        free(w->path);
        free(w);
        return NULL;
    }
    w->align = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
    }
    for (size_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->meta);
    free(w->tmp);
    free(w->path);
    free(w);
}

static void meta_put(gguf_writer *w, const void *p, size_t n) {
    if (w->meta_cap - w->meta_len < n) {
        size_t cap = w->meta_cap ? w->meta_cap : 4096;
        while (cap - w->meta_len < n) cap *= 2;
        w->meta = xrealloc(w->meta, cap);
        w->meta_cap = cap;
    }
    memcpy(w->meta + w->meta_len, p, n);
    w->meta_len += n;
}

static void meta_str(gguf_writer *w, const char *s) {
    uint64_t n = strlen(s);
    meta_put(w, &n, 8);
    meta_put(w, s, (size_t)n);
}

static int add_key(gguf_writer *w, const char *key, int type) {
    if (!key || !*key) return SD_EINVAL;
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return SD_EINVAL;
    w->keys = xrealloc(w->keys, (w->n_kv + 1) * sizeof *w->keys);
    w->keys[w->n_kv++] = xstrdup(key);
    meta_str(w, key);
    uint32_t t = (uint32_t)type;
    meta_put(w, &t, 4);
    return 0;
}

static int add_scalar(gguf_writer *w, const char *key, int type, const void *v) {
    int rc = add_key(w, key, type);
    if (rc) return rc;
    meta_put(w, v, vtype_size[type]);
    return 0;
}

int gguf_writer_add_u8(gguf_writer *w, const char *k, uint8_t v) { return add_scalar(w, k, GGUF_VTYPE_UINT8, &v); }
int gguf_writer_add_i8(gguf_writer *w, const char *k, int8_t v) { return add_scalar(w, k, GGUF_VTYPE_INT8, &v); }
int gguf_writer_add_u16(gguf_writer *w, const char *k, uint16_t v) { return add_scalar(w, k, GGUF_VTYPE_UINT16, &v); }
int gguf_writer_add_i16(gguf_writer *w, const char *k, int16_t v) { return add_scalar(w, k, GGUF_VTYPE_INT16, &v); }
int gguf_writer_add_i32(gguf_writer *w, const char *k, int32_t v) { return add_scalar(w, k, GGUF_VTYPE_INT32, &v); }
int gguf_writer_add_u64(gguf_writer *w, const char *k, uint64_t v) { return add_scalar(w, k, GGUF_VTYPE_UINT64, &v); }
int gguf_writer_add_i64(gguf_writer *w, const char *k, int64_t v) { return add_scalar(w, k, GGUF_VTYPE_INT64, &v); }
int gguf_writer_add_f32(gguf_writer *w, const char *k, float v) { return add_scalar(w, k, GGUF_VTYPE_FLOAT32, &v); }
int gguf_writer_add_f64(gguf_writer *w, const char *k, double v) { return add_scalar(w, k, GGUF_VTYPE_FLOAT64, &v); }
int gguf_writer_add_bool(gguf_writer *w, const char *k, int v) {
    uint8_t b = v != 0;
    return add_scalar(w, k, GGUF_VTYPE_BOOL, &b);
}
int gguf_writer_add_u32(gguf_writer *w, const char *k, uint32_t v) {
    if (k && strcmp(k, "general.alignment") == 0) {
        if (v == 0 || (v & (v - 1))) return SD_EINVAL;
    }
    int rc = add_scalar(w, k, GGUF_VTYPE_UINT32, &v);
    if (!rc && strcmp(k, "general.alignment") == 0) w->align = v;
    return rc;
}
int gguf_writer_add_str(gguf_writer *w, const char *k, const char *v) {
    if (!v) return SD_EINVAL;
    int rc = add_key(w, k, GGUF_VTYPE_STRING);
    if (rc) return rc;
    meta_str(w, v);
    return 0;
}
int gguf_writer_add_arr(gguf_writer *w, const char *k, int et, const void *data, size_t n) {
    if (!vtype_is_num(et) || (n && !data)) return SD_EINVAL;
    size_t bytes;
    if (sd_mul_overflow(n, vtype_size[et], &bytes)) return SD_ERANGE;
    int rc = add_key(w, k, GGUF_VTYPE_ARRAY);
    if (rc) return rc;
    uint32_t t = (uint32_t)et;
    uint64_t n64 = n;
    meta_put(w, &t, 4);
    meta_put(w, &n64, 8);
    if (bytes) meta_put(w, data, bytes);
    return 0;
}
int gguf_writer_add_arr_str(gguf_writer *w, const char *k, const char *const *strs, size_t n) {
    if (n && !strs) return SD_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!strs[i]) return SD_EINVAL;
    int rc = add_key(w, k, GGUF_VTYPE_ARRAY);
    if (rc) return rc;
    uint32_t t = GGUF_VTYPE_STRING;
    uint64_t n64 = n;
    meta_put(w, &t, 4);
    meta_put(w, &n64, 8);
    for (size_t i = 0; i < n; i++) meta_str(w, strs[i]);
    return 0;
}

static int add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                      int type, const void *data, gguf_fill_fn fill, void *ctx) {
    if (!name || !*name || strlen(name) >= 64 || !dims || (!data && !fill)) return SD_EINVAL;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return SD_EINVAL;
    size_t nbytes;
    int rc = gguf_tensor_nbytes(type, n_dims, dims, &nbytes);
    if (rc) return rc;
    w->tensors = xrealloc(w->tensors, (w->n_tensors + 1) * sizeof *w->tensors);
    wtensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->n_dims = n_dims;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->dims[i] = i < (int)n_dims ? dims[i] : 1;
    t->type = type;
    t->nbytes = nbytes;
    t->data = data;
    t->fill = fill;
    t->ctx = ctx;
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                           int type, const void *data) {
    return add_tensor(w, name, n_dims, dims, type, data, NULL, NULL);
}

int gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t n_dims,
                                const uint64_t *dims, int type, gguf_fill_fn fill, void *ctx) {
    return add_tensor(w, name, n_dims, dims, type, NULL, fill, ctx);
}

static int write_all(gguf_writer *w, const void *p, size_t n, sd_err *err) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(w->fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return sd_seterr(err, errno == ENOSPC ? SD_EFULL : SD_EIO, "gguf_writer_finish: %s: %s",
                             w->tmp, strerror(errno));
        }
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_pad(gguf_writer *w, uint64_t pos, sd_err *err) {
    static const uint8_t zeros[256];
    size_t pad = (size_t)((w->align - pos % w->align) % w->align);
    while (pad) {
        size_t k = pad > sizeof zeros ? sizeof zeros : pad;
        int rc = write_all(w, zeros, k, err);
        if (rc) return rc;
        pad -= k;
    }
    return 0;
}

int gguf_writer_finish(gguf_writer *w, sd_err *err) {
    if (w->fd < 0) return sd_seterr(err, SD_EINVAL, "gguf_writer_finish: already finished");
    /* header + kv + tensor infos in one buffer */
    uint8_t *saved = w->meta;
    size_t saved_len = w->meta_len, saved_cap = w->meta_cap;
    w->meta = NULL;
    w->meta_len = w->meta_cap = 0;
    uint32_t version = 3;
    uint64_t nt = w->n_tensors, nkv = w->n_kv;
    meta_put(w, "GGUF", 4);
    meta_put(w, &version, 4);
    meta_put(w, &nt, 8);
    meta_put(w, &nkv, 8);
    if (saved_len) meta_put(w, saved, saved_len);
    free(saved);
    (void)saved_cap;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        t->offset = off;
        meta_str(w, t->name);
        meta_put(w, &t->n_dims, 4);
        meta_put(w, t->dims, 8 * (size_t)t->n_dims);
        uint32_t ty = (uint32_t)t->type;
        meta_put(w, &ty, 4);
        meta_put(w, &t->offset, 8);
        off += t->nbytes;
        off += (w->align - off % w->align) % w->align;
    }
    int rc = write_all(w, w->meta, w->meta_len, err);
    if (!rc) rc = write_pad(w, w->meta_len, err);
    for (size_t i = 0; !rc && i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        if (t->data) {
            rc = write_all(w, t->data, t->nbytes, err);
        } else {
            void *buf = malloc(t->nbytes ? t->nbytes : 1);
            if (!buf) {
                rc = sd_seterr(err, SD_ENOMEM, "gguf_writer_finish: tensor '%s': out of memory",
                               t->name);
                break;
            }
            rc = t->fill(t->ctx, i, buf, t->nbytes);
            if (rc) sd_seterr(err, rc, "gguf_writer_finish: tensor '%s': fill failed: %s", t->name,
                              sd_strerror(rc));
            else rc = write_all(w, buf, t->nbytes, err);
            free(buf);
        }
        if (!rc) rc = write_pad(w, t->offset + t->nbytes, err);  /* the last one too, as llama.cpp */
    }
    if (!rc && fsync(w->fd) != 0)
        rc = sd_seterr(err, SD_EIO, "gguf_writer_finish: fsync %s: %s", w->tmp, strerror(errno));
    if (rc) return rc;  /* gguf_writer_free removes the temp file */
    if (close(w->fd) != 0) {
        w->fd = -1;
        unlink(w->tmp);
        return sd_seterr(err, SD_EIO, "gguf_writer_finish: close %s: %s", w->tmp, strerror(errno));
    }
    w->fd = -1;
    if (rename(w->tmp, w->path) != 0) {
        rc = sd_seterr(err, SD_EIO, "gguf_writer_finish: rename to %s: %s", w->path,
                       strerror(errno));
        unlink(w->tmp);
        return rc;
    }
    /* make the rename durable */
    char *dir = xstrdup(w->path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir) slash[1] = 0;
        else *slash = 0;
    }
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    return 0;
}

/* ---------------------------------------------------------------- numbers */

/* The element conversions are dtype.h's (shared with the engine). */
float gguf_f16_to_f32(uint16_t h) { return f16_to_f32(h); }
uint16_t gguf_f32_to_f16(float f) { return f32_to_f16(f); }
float gguf_bf16_to_f32(uint16_t h) { return bf16_to_f32(h); }
uint16_t gguf_f32_to_bf16(float f) { return f32_to_bf16(f); }

void gguf_quantize_q8_0(const float *x, void *dst, size_t n) {
    uint8_t *o = dst;
    for (size_t b = 0; b < n / GGUF_Q8_0_BLOCK; b++, x += GGUF_Q8_0_BLOCK, o += GGUF_Q8_0_BYTES) {
        float amax = 0;
        for (int i = 0; i < GGUF_Q8_0_BLOCK; i++) {
            float a = fabsf(x[i]);
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = gguf_f32_to_f16(d);
        memcpy(o, &dh, 2);
        for (int i = 0; i < GGUF_Q8_0_BLOCK; i++) {
            float q = roundf(x[i] * id);
            if (q > 127.0f) q = 127.0f;
            if (q < -127.0f) q = -127.0f;
            int8_t qi = (int8_t)q;
            memcpy(o + 2 + i, &qi, 1);
        }
    }
}

void gguf_dequantize_q8_0(const void *src, float *y, size_t n) {
    const uint8_t *p = src;
    for (size_t b = 0; b < n / GGUF_Q8_0_BLOCK; b++, p += GGUF_Q8_0_BYTES, y += GGUF_Q8_0_BLOCK) {
        uint16_t dh;
        memcpy(&dh, p, 2);
        float d = gguf_f16_to_f32(dh);
        for (int i = 0; i < GGUF_Q8_0_BLOCK; i++) y[i] = d * (float)(int8_t)p[2 + i];
    }
}

/* 6-bit scale and min j (0..7) of a Q4_K block's 12 packed bytes. */
static void q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

void gguf_dequantize_q4_k(const void *src, float *y, size_t n) {
    const uint8_t *p = src;
    for (size_t b = 0; b < n / GGUF_QK_K; b++, p += GGUF_Q4_K_BYTES) {
        uint16_t dh, mh;
        memcpy(&dh, p, 2);
        memcpy(&mh, p + 2, 2);
        float d = gguf_f16_to_f32(dh), dmin = gguf_f16_to_f32(mh);
        const uint8_t *scales = p + 4, *q = p + 16;
        for (int j = 0; j < GGUF_QK_K / 64; j++, q += 32) {
            uint8_t s0, m0, s1, m1;
            q4k_scale_min(2 * j, scales, &s0, &m0);
            q4k_scale_min(2 * j + 1, scales, &s1, &m1);
            float d0 = d * s0, o0 = dmin * m0, d1 = d * s1, o1 = dmin * m1;
            for (int l = 0; l < 32; l++) *y++ = d0 * (float)(q[l] & 0xf) - o0;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] >> 4) - o1;
        }
    }
}

int gguf_dequantize(int t, const void *src, float *y, size_t n) {
    const uint8_t *p = src;
    switch (t) {
    case GGUF_TTYPE_F32: memcpy(y, src, n * sizeof(float)); return 0;
    case GGUF_TTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = gguf_f16_to_f32(h);
        }
        return 0;
    case GGUF_TTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = gguf_bf16_to_f32(h);
        }
        return 0;
    case GGUF_TTYPE_Q8_0:
        if (n % GGUF_Q8_0_BLOCK) return SD_EINVAL;
        gguf_dequantize_q8_0(src, y, n);
        return 0;
    case GGUF_TTYPE_Q4_K:
        if (n % GGUF_QK_K) return SD_EINVAL;
        gguf_dequantize_q4_k(src, y, n);
        return 0;
    }
    return SD_ENOTSUP;
}

/* ---------------------------------------------------------------- Q/K rows */

static int qk_rows(const void *src, void *dst, size_t rows, size_t row_bytes, size_t n_head,
                   int inverse) {
    if (!n_head || rows % (2 * n_head)) return SD_EINVAL;
    size_t r = rows / n_head, half = r / 2;
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (size_t h = 0; h < n_head; h++)
        for (size_t j = 0; j < half; j++)
            for (size_t k = 0; k < 2; k++) {
                size_t hf = h * r + k * half + j, gg = h * r + 2 * j + k;
                size_t to = inverse ? hf : gg, from = inverse ? gg : hf;
                memcpy(d + to * row_bytes, s + from * row_bytes, row_bytes);
            }
    return 0;
}

int gguf_permute_qk_rows(const void *src, void *dst, size_t rows, size_t row_bytes, size_t n_head) {
    return qk_rows(src, dst, rows, row_bytes, n_head, 0);
}

int gguf_unpermute_qk_rows(const void *src, void *dst, size_t rows, size_t row_bytes,
                           size_t n_head) {
    return qk_rows(src, dst, rows, row_bytes, n_head, 1);
}
