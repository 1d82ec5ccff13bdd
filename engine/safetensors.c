/* safetensors.c - mmap a .safetensors file and validate its JSON header. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20) /* 100 MiB, as the reference implementation limits it */

struct safetensors {
    char *path;
    void *map;
    size_t map_len;
    st_tensor *t;
    size_t n;
};

static int parse_dtype(const char *s, sd_dtype *dt) {
    if (!strcmp(s, "F32")) *dt = SD_DT_F32;
    else if (!strcmp(s, "F16")) *dt = SD_DT_F16;
    else if (!strcmp(s, "BF16")) *dt = SD_DT_BF16;
    else return -1;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;
    return px < py ? -1 : px > py;
}

int safetensors_open(const char *path, safetensors **out, sd_err *err) {
    int rc = 0, fd = -1;
    json_t *root = NULL;
    st_tensor **order = NULL;
    safetensors *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    *out = NULL;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = sd_seterr(err, errno == ENOENT ? SD_ENOTFOUND : SD_EIO, "safetensors: cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) { rc = sd_seterr(err, SD_EIO, "safetensors: stat %s: %s", path, strerror(errno)); goto fail; }
    if (sb.st_size < 8) { rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: file of %lld bytes has no header", path, (long long)sb.st_size); goto fail; }
    st->map_len = (size_t)sb.st_size;
    st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) { st->map = NULL; rc = sd_seterr(err, SD_EIO, "safetensors: mmap %s: %s", path, strerror(errno)); goto fail; }

    uint64_t hlen;
    memcpy(&hlen, st->map, 8); /* little-endian host assumed (x86-64, aarch64) */
    if (hlen > st->map_len - 8 || hlen > ST_MAX_HEADER) {
        rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: header length %llu exceeds the file (%zu bytes)", path, (unsigned long long)hlen, st->map_len);
        goto fail;
    }
    const char *hdr = (const char *)st->map + 8;
    const uint8_t *data = (const uint8_t *)st->map + 8 + hlen;
    size_t data_len = st->map_len - 8 - hlen;
    json_error_t je;
    root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: malformed JSON header: %s", path, root ? "not an object" : je.text);
        goto fail;
    }
    st->t = xcalloc(json_object_size(root) + 1, sizeof *st->t);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) continue;
        st_tensor *t = &st->t[st->n];
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"), *jo = json_object_get(val, "data_offsets");
        if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2) {
            rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': entry needs dtype, shape and data_offsets[2]", path, key);
            goto fail;
        }
        if (parse_dtype(json_string_value(jd), &t->dtype)) {
            rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': unsupported dtype '%s' (F32, F16, BF16 are)", path, key, json_string_value(jd));
            goto fail;
        }
        size_t nd = json_array_size(js);
        if (nd > SAFETENSORS_MAX_DIMS) { rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': %zu dimensions", path, key, nd); goto fail; }
        size_t numel = 1;
        for (size_t d = 0; d < nd; d++) {
            json_t *x = json_array_get(js, d);
            if (!json_is_integer(x) || json_integer_value(x) < 0) { rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': bad shape", path, key); goto fail; }
            t->shape[d] = json_integer_value(x);
            if (sd_mul_overflow(numel, (size_t)t->shape[d], &numel)) { rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': shape overflows", path, key); goto fail; }
        }
        t->n_dims = (int)nd;
        json_t *b0 = json_array_get(jo, 0), *b1 = json_array_get(jo, 1);
        if (!json_is_integer(b0) || !json_is_integer(b1)) { rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': bad data_offsets", path, key); goto fail; }
        json_int_t beg = json_integer_value(b0), end = json_integer_value(b1);
        if (beg < 0 || end < beg || (uint64_t)end > data_len) {
            rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': data_offsets [%lld, %lld] outside the data section (%zu bytes)", path, key, (long long)beg, (long long)end, data_len);
            goto fail;
        }
        size_t want;
        if (sd_mul_overflow(numel, t->dtype == SD_DT_F32 ? 4 : 2, &want) || want != (size_t)(end - beg)) {
            rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensor '%s': shape needs %zu bytes but data_offsets span %lld", path, key, want, (long long)(end - beg));
            goto fail;
        }
        t->name = xstrdup(key);
        t->data = data + beg;
        t->nbytes = want;
        st->n++;
    }
    /* Overlap check: sort by start, each must begin at or after the previous end. */
    order = xmalloc((st->n + 1) * sizeof *order);
    for (size_t i = 0; i < st->n; i++) order[i] = &st->t[i];
    qsort(order, st->n, sizeof *order, cmp_by_offset);
    for (size_t i = 1; i < st->n; i++) {
        const uint8_t *prev_end = (const uint8_t *)order[i - 1]->data + order[i - 1]->nbytes;
        if ((const uint8_t *)order[i]->data < prev_end) {
            rc = sd_seterr(err, SD_EFORMAT, "safetensors: %s: tensors '%s' and '%s' overlap", path, order[i - 1]->name, order[i]->name);
            goto fail;
        }
    }
    free(order);
    json_decref(root);
    close(fd);
    *out = st;
    return 0;
fail:
    free(order);
    json_decref(root);
    if (fd >= 0) close(fd);
    safetensors_close(st);
    return rc;
}

void safetensors_close(safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    if (st->map) munmap(st->map, st->map_len);
    free(st->path);
    free(st);
}

size_t safetensors_count(const safetensors *st) { return st->n; }
const st_tensor *safetensors_at(const safetensors *st, size_t i) { return i < st->n ? &st->t[i] : NULL; }
const char *safetensors_path(const safetensors *st) { return st->path; }

const st_tensor *safetensors_find(const safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

void safetensors_drop_cache(safetensors *st) {
    if (!st->map) return;
    madvise(st->map, st->map_len, MADV_DONTNEED);
    int fd = open(st->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}
