/* tok_unicode.h - code point property table shared by the tokenizer and the chat
 * renderer: regex classes as Hugging Face tokenizers sees them, and the Python
 * str.isprintable()/isspace() flags the Jinja2 reference relies on. */
#ifndef TOK_UNICODE_H
#define TOK_UNICODE_H

#include <stdint.h>

enum {
    TOK_UNI_L = 1,             /* \p{L} */
    TOK_UNI_N = 2,             /* \p{N} */
    TOK_UNI_WS = 4,            /* \s (Oniguruma, Unicode White_Space) */
    TOK_UNI_PY_PRINTABLE = 8,  /* Python str.isprintable() */
    TOK_UNI_PY_SPACE = 16,     /* Python str.isspace() */
};

/* Generated tables (engine/tok_unicode.c): 128 code points per stage-2 block. */
extern const uint16_t tok_unicode_stage1[0x110000 / 128];
extern const uint8_t tok_unicode_stage2[][128];

/* Property bits of code point cp; 0 for cp > 0x10FFFF. */
static inline unsigned tok_unicode_flags(uint32_t cp) {
    if (cp >= 0x110000) return 0;
    return tok_unicode_stage2[tok_unicode_stage1[cp >> 7]][cp & 127];
}

#endif
