/* gguf.h - GGUF (versions 2 and 3) reader and writer, as used by llama.cpp.
 * The reader mmaps an untrusted file and checks every count, length and offset
 * against its size; the writer builds a file in a temp file and renames it.
 * Also: element-type sizes, f16/bf16 conversion, Q8_0 and Q4_K (dequant) blocks,
 * and the Q/K row permutation that llama.cpp's converter applies for RoPE. */
#ifndef GGUF_H
#define GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "sd.h"

/* Metadata value types (numbering as in the GGUF spec). */
typedef enum gguf_vtype {
    GGUF_VTYPE_UINT8 = 0,
    GGUF_VTYPE_INT8 = 1,
    GGUF_VTYPE_UINT16 = 2,
    GGUF_VTYPE_INT16 = 3,
    GGUF_VTYPE_UINT32 = 4,
    GGUF_VTYPE_INT32 = 5,
    GGUF_VTYPE_FLOAT32 = 6,
    GGUF_VTYPE_BOOL = 7,
    GGUF_VTYPE_STRING = 8,
    GGUF_VTYPE_ARRAY = 9,
    GGUF_VTYPE_UINT64 = 10,
    GGUF_VTYPE_INT64 = 11,
    GGUF_VTYPE_FLOAT64 = 12,
    GGUF_VTYPE_COUNT = 13,
} gguf_vtype;

/* Tensor element types (ggml numbering). Only those with a known block size
 * are accepted by the reader; the others fail with SD_ENOTSUP. */
typedef enum gguf_ttype {
    GGUF_TTYPE_F32 = 0,
    GGUF_TTYPE_F16 = 1,
    GGUF_TTYPE_Q4_0 = 2,
    GGUF_TTYPE_Q4_1 = 3,
    GGUF_TTYPE_Q5_0 = 6,
    GGUF_TTYPE_Q5_1 = 7,
    GGUF_TTYPE_Q8_0 = 8,
    GGUF_TTYPE_Q2_K = 10,
    GGUF_TTYPE_Q3_K = 11,
    GGUF_TTYPE_Q4_K = 12,
    GGUF_TTYPE_Q5_K = 13,
    GGUF_TTYPE_Q6_K = 14,
    GGUF_TTYPE_BF16 = 30,
} gguf_ttype;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_Q8_0_BLOCK 32   /* elements per Q8_0 block */
#define GGUF_Q8_0_BYTES 34   /* f16 scale + 32 int8 */
#define GGUF_QK_K 256        /* elements per K-quant super-block */
#define GGUF_Q4_K_BYTES 144  /* 2 f16 + 12 scale bytes + 128 nibble bytes */

/* Name of a value or tensor type ("u32", "Q8_0", ...); "?" when unknown. */
const char *gguf_vtype_name(int vtype);
const char *gguf_ttype_name(int ttype);

/* Block size (elements) and bytes per block of tensor type t. Returns 0, or
 * SD_ENOTSUP for a type this module does not know. */
int gguf_ttype_block(int t, size_t *block_elems, size_t *block_bytes);

/* Bytes of a tensor of type t with dims[0..n_dims) (dims[0] is the fastest,
 * ggml order). Returns 0; SD_ENOTSUP (unknown type), SD_EINVAL (dims[0] not a
 * multiple of the block size, n_dims out of 1..4) or SD_ERANGE (overflow). */
int gguf_tensor_nbytes(int t, uint32_t n_dims, const uint64_t *dims, size_t *out);

/* ---------------------------------------------------------------- reader */

typedef struct gguf gguf;

/* One tensor as described in the file. Borrowed from the gguf; valid until
 * gguf_free. */
typedef struct gguf_tensor {
    const char *name;            /* NUL-terminated */
    uint32_t n_dims;             /* 1..4 */
    uint64_t dims[GGUF_MAX_DIMS];/* ggml order: dims[0] is the row length; unused = 1 */
    int type;                    /* gguf_ttype */
    uint64_t offset;             /* from the start of the data section */
    uint64_t n_elems;
    size_t nbytes;
    const void *data;            /* into the mapping; aligned to the file's alignment */
} gguf_tensor;

/* Opens and validates a GGUF file (mmap, read-only). Returns NULL with err set:
 * SD_ENOTFOUND (no such file), SD_EIO, SD_EFORMAT (malformed; the message names
 * the file and, for a tensor, the tensor), SD_ENOTSUP (unknown tensor type,
 * nested array), SD_ENOMEM. */
gguf *gguf_open(const char *path, sd_err *err);

/* Same over a caller-owned buffer that must outlive the gguf; name is used in
 * messages. */
gguf *gguf_open_mem(const void *buf, size_t len, const char *name, sd_err *err);

/* Unmaps and frees; accepts NULL. */
void gguf_free(gguf *g);

uint32_t gguf_version(const gguf *g);
size_t gguf_alignment(const gguf *g);
size_t gguf_data_offset(const gguf *g);  /* file offset of the data section */

/* Metadata by index: 0 <= i < gguf_n_kv. */
size_t gguf_n_kv(const gguf *g);
const char *gguf_kv_key(const gguf *g, size_t i);
int gguf_kv_type(const gguf *g, size_t i);
/* Index of key, or -1. */
long gguf_find_key(const gguf *g, const char *key);

/* Typed getters by key. Each returns 0; SD_ENOTFOUND when the key is absent;
 * SD_EFORMAT when it has another type or its value does not fit the result.
 * The integer getters accept any integer type whose value fits; get_f32/f64
 * accept FLOAT32 or FLOAT64. err may be NULL. */
int gguf_get_u32(const gguf *g, const char *key, uint32_t *out, sd_err *err);
int gguf_get_i32(const gguf *g, const char *key, int32_t *out, sd_err *err);
int gguf_get_u64(const gguf *g, const char *key, uint64_t *out, sd_err *err);
int gguf_get_i64(const gguf *g, const char *key, int64_t *out, sd_err *err);
int gguf_get_f32(const gguf *g, const char *key, float *out, sd_err *err);
int gguf_get_f64(const gguf *g, const char *key, double *out, sd_err *err);
int gguf_get_bool(const gguf *g, const char *key, int *out, sd_err *err);
/* *out is borrowed and NUL-terminated; *len (may be NULL) excludes the NUL
 * (a string may itself contain NUL bytes). */
int gguf_get_str(const gguf *g, const char *key, const char **out, size_t *len, sd_err *err);

/* Arrays: element type and count. */
int gguf_get_arr(const gguf *g, const char *key, int *elem_type, size_t *n, sd_err *err);
/* Element i of a STRING array (borrowed, NUL-terminated). */
int gguf_get_arr_str(const gguf *g, const char *key, size_t i, const char **out, size_t *len,
                     sd_err *err);
/* Element i of an integer / bool array as int64 (UINT64 above INT64_MAX fails). */
int gguf_get_arr_int(const gguf *g, const char *key, size_t i, int64_t *out, sd_err *err);
/* Element i of any numeric array as double. */
int gguf_get_arr_f64(const gguf *g, const char *key, size_t i, double *out, sd_err *err);
/* Raw little-endian element bytes of a numeric array (borrowed, unaligned). */
const void *gguf_get_arr_data(const gguf *g, const char *key);

/* Tensors. */
size_t gguf_n_tensors(const gguf *g);
const gguf_tensor *gguf_tensor_at(const gguf *g, size_t i);
/* The tensor called name, or NULL. */
const gguf_tensor *gguf_find_tensor(const gguf *g, const char *name);

/* ---------------------------------------------------------------- writer */

typedef struct gguf_writer gguf_writer;

/* Starts a GGUF v3 file at path (written to "path.tmp.PID", renamed by
 * finish). Returns NULL with err set (SD_EIO, SD_EINVAL). */
gguf_writer *gguf_writer_new(const char *path, sd_err *err);

/* Discards an unfinished writer (removes the temp file); accepts NULL. */
void gguf_writer_free(gguf_writer *w);

/* Key/value pairs, written in the order added. Keys must be unique and
 * non-empty (SD_EINVAL). Adding u32 "general.alignment" (a power of two)
 * also sets the data alignment. Strings are copied. */
int gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_f64(gguf_writer *w, const char *key, double v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v);
/* Numeric (or bool) array of n elements of elem_type, host layout (copied). */
int gguf_writer_add_arr(gguf_writer *w, const char *key, int elem_type, const void *data, size_t n);
/* Array of n NUL-terminated strings (copied). */
int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *strs, size_t n);

/* Fills buf (nbytes) with the data of tensor index idx; returns 0 or an SD_E*
 * code, which aborts gguf_writer_finish. */
typedef int (*gguf_fill_fn)(void *ctx, size_t idx, void *buf, size_t nbytes);

/* Adds a tensor (name < 64 bytes, as llama.cpp requires; dims in ggml order).
 * data (nbytes as gguf_tensor_nbytes) is borrowed until gguf_writer_finish.
 * Returns 0, SD_EINVAL (duplicate/long name, bad dims), SD_ENOTSUP, SD_ERANGE. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                           int type, const void *data);
/* Same, but the data is produced at finish time by fill(ctx, index, ...), one
 * tensor at a time, so a large model need not be held in memory. */
int gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t n_dims,
                                const uint64_t *dims, int type, gguf_fill_fn fill, void *ctx);

/* Writes header, metadata, tensor infos and aligned data, fsyncs and renames
 * onto the final path. Returns 0 or SD_EIO / SD_EFULL / SD_ENOMEM / a fill
 * callback's code. The writer must still be freed. */
int gguf_writer_finish(gguf_writer *w, sd_err *err);

/* ---------------------------------------------------------------- numbers */

float gguf_f16_to_f32(uint16_t h);
uint16_t gguf_f32_to_f16(float f);     /* round to nearest even */
float gguf_bf16_to_f32(uint16_t h);
uint16_t gguf_f32_to_bf16(float f);    /* round to nearest even; NaN stays NaN */

/* Q8_0: n (a multiple of 32) floats <-> n/32 blocks of 34 bytes
 * (f16 scale d = max|x|/127, then 32 int8 q = round(x/d)). */
void gguf_quantize_q8_0(const float *x, void *dst, size_t n);
void gguf_dequantize_q8_0(const void *src, float *y, size_t n);
/* Q4_K: n (a multiple of 256) elements from n/256 blocks of 144 bytes. */
void gguf_dequantize_q4_k(const void *src, float *y, size_t n);

/* Converts n elements of type t (F32, F16, BF16, Q8_0, Q4_K) to float.
 * n must be a multiple of the block size. Returns 0 or SD_ENOTSUP. */
int gguf_dequantize(int t, const void *src, float *y, size_t n);

/* ---------------------------------------------------------------- Q/K rows */

/* llama.cpp's converter reorders the rows of q_proj/k_proj for adjacent-pair
 * RoPE: within each of n_head heads of R = rows/n_head rows, HF row
 * s*(R/2) + j (s in {0,1}) becomes GGUF row 2*j + s. src and dst are row-major
 * (rows x row_bytes), must not overlap. Returns 0 or SD_EINVAL (rows not a
 * multiple of 2*n_head). Use n_head = n_kv_head for k_proj. */
int gguf_permute_qk_rows(const void *src, void *dst, size_t rows, size_t row_bytes, size_t n_head);
/* The inverse (GGUF order back to HF half-split order). */
int gguf_unpermute_qk_rows(const void *src, void *dst, size_t rows, size_t row_bytes, size_t n_head);

#endif
