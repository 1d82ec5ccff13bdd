/* tasks.h - the analysis tasks' text side: SmolLM3 chat prompts split into a
 * cacheable document prefix and a per-request suffix (tokenized so that the
 * two halves give exactly the ids of the whole), the user messages of ask,
 * summarize (one pass, map, reduce) and extract, and the post-processing of
 * answers: cited pages, quotes located in the stored text. */
#ifndef TASKS_H
#define TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sd.h"
#include "tokenizer.h"

/* Fixed text of the system block's metadata (SmolLM3 template). */
#define TASKS_KNOWLEDGE_CUTOFF "June 2025"

/* A document as the prompt shows it: its text with a page map. Borrowed. */
typedef struct tasks_doc {
    const char *name;
    const char *text;           /* body text (UTF-8) */
    size_t len;
    const int64_t *page_start;  /* (n_pages) first byte of each page */
    int n_pages;
    double created_at;          /* Unix time of ingest: pins the prefix date */
} tasks_doc;

/* A prompt half: its text as rendered by the chat template and its ids. */
typedef struct tasks_half {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    char *source;   /* the system instructions (prefix) or user message (suffix) */
    bool think;
    char date[64];  /* prefix: the pinned "Today Date" */
} tasks_half;

void tasks_half_clear(tasks_half *h);

/* The document prefix: "<|im_start|>system\n## Metadata ... Today Date: D\n
 * Reasoning Mode: /think|/no_think\n\n## Custom Instructions\n\n" + the
 * instructions + the bytes [start, end) of the document text (end 0 = all),
 * each page marked by a "[Page N]" line, right-stripped, + "\n\n". doc may be NULL (a prompt
 * without a document, e.g. reduce). The date is the document's ingest date,
 * so the prefix is the same every day. Returns 0, SD_ENOMEM or the tokenizer's
 * errors. */
int tasks_build_prefix(tokenizer *tok, const tasks_doc *doc, size_t start, size_t end, bool think,
                       tasks_half *out, sd_err *err);

/* The suffix of one request: "<|im_start|>user\n" + message + "<|im_end|>\n"
 * + the generation prompt ("<|im_start|>assistant\n", plus an empty think
 * block in no_think mode). message is tokenized as plain text (special-token
 * strings in it are not specials). */
int tasks_build_suffix(tokenizer *tok, const char *message, bool think, tasks_half *out, sd_err *err);

/* Checks that prefix->text + suffix->text is byte for byte what the chat
 * template (chat.h) renders for [system: instructions, user: message], and that
 * prefix->ids ++ suffix->ids equal the ids of tokenizing that text whole
 * (special tokens parsed). Returns 0 when
 * they match, 1 when the check does not apply (the text holds special-token
 * strings, which the prompt deliberately keeps as plain text), SD_EFORMAT on
 * a mismatch (err says where). */
int tasks_verify_split(tokenizer *tok, const tasks_half *prefix, const tasks_half *suffix, sd_err *err);

/* User messages (malloc'd, caller frees). */
char *tasks_ask_message(const char *question);
/* style: "brief" | "detailed" | "bullets"; words 0 = the style's default. */
char *tasks_summarize_message(const char *style, unsigned words);
/* A map step: summarize this part (pages first..last) of a longer document. */
char *tasks_map_message(int first_page, int last_page);
/* The reduce step: combine the partial summaries (n of them). */
char *tasks_reduce_message(const char *style, unsigned words, char *const *partials, size_t n);
char *tasks_extract_message(const char *category, const char *description);

/* Pages cited in text as "p. N", "pp. N-M", "page N" or "[Page N]", within
 * 1..n_pages, sorted and unique: a new JSON array. */
json_t *tasks_cited_pages(const char *text, int n_pages);

/* Reads the quote out of an extract answer: NULL when the answer says the
 * clause is absent ("NONE", empty); else a malloc'd string without the
 * surrounding quote marks and whitespace. */
char *tasks_answer_quote(const char *answer);

/* Locates quote in doc->text: exactly, else ignoring case and runs of
 * whitespace. On success returns 1 with [*start, *end) the byte span and
 * *page its 1-based page; else 0. */
int tasks_locate(const tasks_doc *doc, const char *quote, size_t *start, size_t *end, int *page);

/* Character offsets: the number of Unicode code points in text[0, off) (UTF-8
 * lead and ASCII bytes counted, continuation bytes not). off is clamped to len.
 * The protocol reports offsets this way; the store keeps bytes. */
size_t tasks_char_offset(const char *text, size_t len, size_t off);

/* The same for n byte offsets at once, converted in place, in one pass over
 * text (offs in any order). */
void tasks_char_offsets(const char *text, size_t len, size_t *offs, size_t n);

/* 1-based page of byte offset off (0 if there are no pages). */
int tasks_page_of(const tasks_doc *doc, size_t off);

#endif
