/* chat.h - SmolLM3's chat template (chat_template.jinja) rendered in C, byte for
 * byte as Jinja2 renders it: system/metadata header, reasoning mode flags, tools,
 * message turns and the generation prompt. tests/t_chat_ref.sh checks it. */
#ifndef CHAT_H
#define CHAT_H

#include <jansson.h>
#include <stddef.h>

#include "sd.h"

/* One turn. role: "system" (only as the first message), "user", "assistant" or
 * "tool" (rendered as a user turn); other roles are skipped, as the template
 * does. content: UTF-8, borrowed; NULL renders as "" (the template's "not a
 * string" case), except for a leading system message, where it is an error. */
typedef struct chat_message {
    const char *role;
    const char *content;
} chat_message;

typedef struct chat_options {
    int add_generation_prompt; /* append "<|im_start|>assistant\n" (+ empty think) */
    int enable_thinking;       /* 1: /think unless the system text says /no_think */
    const char *date;          /* "Today Date" text, "DD Month YYYY"; NULL: today, local */
    const json_t *xml_tools;   /* JSON array (or NULL): printed as Python reprs */
    const json_t *python_tools;/* JSON array (or NULL) */
} chat_options;

/* Defaults: add_generation_prompt 1, enable_thinking 1, date NULL, no tools. */
chat_options chat_options_default(void);

/* Renders n messages (n >= 1) into a NUL-terminated malloc'd prompt the caller
 * frees. opt NULL means the defaults. Returns NULL with err set: SD_EINVAL (no
 * messages, NULL role, a system message whose content is NULL, tools that are not
 * arrays), SD_ENOMEM. */
char *chat_render(const chat_message *msgs, size_t n, const chat_options *opt, sd_err *err);

/* Same from a JSON array of {"role": ..., "content": ...} objects (the CLI's
 * --messages file; a missing or non-string content renders as "" like the
 * template, except for a leading system message). */
char *chat_render_json(const json_t *messages, const chat_options *opt, sd_err *err);

/* Appends Python's repr() of a JSON value (dict/list/str/int/float/True/False/
 * None) to a malloc'd string the caller frees: what Jinja's |string prints for
 * a tool loaded with json.load. Returns NULL when out of memory. */
char *chat_python_repr(const json_t *v);

#endif
