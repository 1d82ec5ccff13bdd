/* safetensors.h - read-only, mmap'd access to a .safetensors file, with every
 * header field checked against the file (the file is untrusted input). */
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include "dtype.h"
#include "sd.h"

#define SAFETENSORS_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    sd_dtype dtype;
    int n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    const void *data; /* borrowed: points into the mapping */
    size_t nbytes;
} st_tensor;

typedef struct safetensors safetensors;

/* Maps path and validates its header: length within the file, JSON well
 * formed, known dtypes (F32, F16, BF16), shape x element size == byte range,
 * ranges inside the data section and not overlapping.
 * Returns 0, SD_ENOTFOUND, SD_EIO or SD_EFORMAT (message names file and tensor). */
int safetensors_open(const char *path, safetensors **out, sd_err *err);
void safetensors_close(safetensors *st);

size_t safetensors_count(const safetensors *st);
const st_tensor *safetensors_at(const safetensors *st, size_t i);
/* Borrowed pointer, or NULL when the file has no tensor of that name. */
const st_tensor *safetensors_find(const safetensors *st, const char *name);
const char *safetensors_path(const safetensors *st);
/* Tells the kernel the mapped pages are no longer needed (after a copy). */
void safetensors_drop_cache(safetensors *st);

#endif
