/* chat.c - the SmolLM3 chat template in C: mirrors chat_template.jinja line by
 * line, including Python str semantics (replace, rstrip, lstrip("\n")) and
 * Python repr() of tool dicts as Jinja's |string prints them. */
#include "chat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok_unicode.h"

/* Growable string; on allocation failure it sets oom and stops growing. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static char *sb_finish(sbuf *b) {
    if (!b->oom && !b->p) sb_putn(b, "", 0);
    if (b->oom) { free(b->p); return NULL; }
    return b->p;
}

/* Decodes one code point of valid UTF-8 at s (n bytes available); returns its
 * length, or 0 if the bytes are not a valid sequence. */
static int utf8_get(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char b = s[0];
    int len;
    uint32_t c;
    if (b < 0x80) { *cp = b; return 1; }
    if (b >= 0xC2 && b < 0xE0) { len = 2; c = b & 0x1F; }
    else if (b >= 0xE0 && b < 0xF0) { len = 3; c = b & 0x0F; }
    else if (b >= 0xF0 && b < 0xF5) { len = 4; c = b & 0x07; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) || (len == 4 && (c < 0x10000 || c > 0x10FFFF)))
        return 0;
    *cp = c;
    return len;
}

/* Python str.replace(old, "") applied to s, appended to b. */
static void sb_put_removed(sbuf *b, const char *s, size_t n, const char *old) {
    size_t ol = strlen(old), i = 0, run = 0;
    while (i + ol <= n) {
        if (memcmp(s + i, old, ol) == 0) {
            sb_putn(b, s + run, i - run);
            i += ol;
            run = i;
        } else {
            i++;
        }
    }
    sb_putn(b, s + run, n - run);
}

/* Length of s[0..n) after Python str.rstrip() (Unicode whitespace). */
static size_t py_rstrip_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    while (n > 0) {
        size_t st = n - 1;
        while (st > 0 && n - st < 4 && (u[st] & 0xC0) == 0x80) st--;
        uint32_t cp;
        int l = utf8_get(u + st, n - st, &cp);
        if (l <= 0 || (size_t)l != n - st || !(tok_unicode_flags(cp) & TOK_UNI_PY_SPACE)) break;
        n = st;
    }
    return n;
}

/* ---------- Python repr ---------- */

static void repr_str(sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    char tmp[16];
    sb_putn(b, &q, 1);
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int l = utf8_get(u + i, n - i, &cp);
        if (l <= 0) { cp = 0xFFFD; l = 1; } /* cannot come from JSON */
        if (cp == (uint32_t)q || cp == '\\') { tmp[0] = '\\'; tmp[1] = (char)cp; sb_putn(b, tmp, 2); }
        else if (cp == '\t') sb_puts(b, "\\t");
        else if (cp == '\n') sb_puts(b, "\\n");
        else if (cp == '\r') sb_puts(b, "\\r");
        else if (cp < 0x20 || cp == 0x7F) { snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned)cp); sb_puts(b, tmp); }
        else if (cp < 0x7F) sb_putn(b, s + i, 1);
        else if (tok_unicode_flags(cp) & TOK_UNI_PY_PRINTABLE) sb_putn(b, s + i, (size_t)l);
        else if (cp <= 0xFF) { snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned)cp); sb_puts(b, tmp); }
        else if (cp <= 0xFFFF) { snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)cp); sb_puts(b, tmp); }
        else { snprintf(tmp, sizeof tmp, "\\U%08x", (unsigned)cp); sb_puts(b, tmp); }
        i += (size_t)l;
    }
    sb_putn(b, &q, 1);
}

/* Python repr(float): shortest round-trip digits; fixed notation when the
 * decimal exponent is in [-4, 16), else d.ddde+XX. */
static void repr_float(sbuf *b, double x) {
    char buf[64], digits[32], out[80];
    if (isnan(x)) { sb_puts(b, "nan"); return; }
    if (isinf(x)) { sb_puts(b, x < 0 ? "-inf" : "inf"); return; }
    int p;
    for (p = 0; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p, x);
        if (strtod(buf, NULL) == x) break;
    }
    snprintf(buf, sizeof buf, "%.*e", p, x);
    /* buf: [-]d[.ddd]e[+-]XX */
    const char *c = buf;
    int neg = 0, nd = 0;
    if (*c == '-') { neg = 1; c++; }
    while (*c && *c != 'e') {
        if (*c != '.') digits[nd++] = *c;
        c++;
    }
    int e = atoi(c + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (e >= -4 && e < 16) {
        int decpt = e + 1;
        if (decpt <= 0) {
            out[o++] = '0'; out[o++] = '.';
            for (int i = 0; i < -decpt; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
        } else if (decpt >= nd) {
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
            for (int i = nd; i < decpt; i++) out[o++] = '0';
            out[o++] = '.'; out[o++] = '0';
        } else {
            for (int i = 0; i < decpt; i++) out[o++] = digits[i];
            out[o++] = '.';
            for (int i = decpt; i < nd; i++) out[o++] = digits[i];
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    sb_puts(b, out);
}

static void repr_value(sbuf *b, const json_t *v, int depth) {
    char tmp[32];
    if (depth > 200) { sb_puts(b, "..."); return; }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *val;
        int first = 1;
        sb_puts(b, "{");
        json_object_foreach((json_t *)v, k, val) {
            if (!first) sb_puts(b, ", ");
            first = 0;
            repr_str(b, k, strlen(k));
            sb_puts(b, ": ");
            repr_value(b, val, depth + 1);
        }
        sb_puts(b, "}");
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        sb_puts(b, "[");
        json_array_foreach(v, i, val) {
            if (i) sb_puts(b, ", ");
            repr_value(b, val, depth + 1);
        }
        sb_puts(b, "]");
        break;
    }
    case JSON_STRING: repr_str(b, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER:
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_puts(b, tmp);
        break;
    case JSON_REAL: repr_float(b, json_real_value(v)); break;
    case JSON_TRUE: sb_puts(b, "True"); break;
    case JSON_FALSE: sb_puts(b, "False"); break;
    case JSON_NULL: sb_puts(b, "None"); break;
    }
}

char *chat_python_repr(const json_t *v) {
    sbuf b = {0};
    if (v) repr_value(&b, v, 0);
    return sb_finish(&b);
}

/* Jinja's `x | string`: a str prints as itself, anything else as repr(). */
static void put_jinja_string(sbuf *b, const json_t *v) {
    if (json_is_string(v)) sb_putn(b, json_string_value(v), json_string_length(v));
    else repr_value(b, v, 0);
}

/* ---------- the template ---------- */

static const char THINK_DEFAULT[] =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as "
    "an assistant involves thoroughly exploring questions through a systematic thinking "
    "process before providing the final precise and accurate solutions. This requires "
    "engaging in a comprehensive cycle of analysis, summarizing, exploration, "
    "reassessment, reflection, backtracking, and iteration to develop well-considered "
    "thinking process. Please structure your response into two main sections: Thought "
    "and Solution using the specified format: <think> Thought section </think> Solution "
    "section. In the Thought section, detail your reasoning process in steps. Each step "
    "should include detailed considerations such as analysing questions, summarizing "
    "relevant findings, brainstorming new ideas, verifying the accuracy of the current "
    "steps, refining any errors, and revisiting previous steps. In the Solution section, "
    "based on various attempts, explorations, and reflections from the Thought section, "
    "systematically present the final solution that you deem correct. The Solution "
    "section should be logical, accurate, and concise and detail necessary steps needed "
    "to reach the conclusion.\n\n";

static const char NO_THINK_DEFAULT[] =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n";

static const char XML_TOOLS_HEAD[] =
    "You may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n";
static const char XML_TOOLS_TAIL[] =
    "</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";
static const char PY_TOOLS_HEAD[] =
    "When you send a message containing Python code between '<code>' and '</code>' tags, "
    "it will be executed in a stateful Jupyter notebook environment, and you will then be "
    "given the output to continued reasoning in an agentic loop.\n\n"
    "You can use the following tools in your python code like regular functions:\n<tools>\n";
static const char PY_TOOLS_TAIL[] =
    "</tools>\n\nThe state persists between code executions: so variables that you define "
    "in one step are still available thereafter.";

chat_options chat_options_default(void) {
    chat_options o = {1, 1, NULL, NULL, NULL};
    return o;
}

static void put_tools(sbuf *b, const json_t *tools, const char *head, const char *tail) {
    size_t i;
    json_t *v;
    sb_puts(b, head);
    json_array_foreach(tools, i, v) {
        put_jinja_string(b, v);
        sb_puts(b, "\n");
    }
    sb_puts(b, tail);
}

char *chat_render(const chat_message *msgs, size_t n, const chat_options *opt, sd_err *err) {
    chat_options def = chat_options_default();
    sbuf b = {0}, ci = {0}, tmp = {0};
    if (!opt) opt = &def;
    if (!msgs || n == 0) { sd_seterr(err, SD_EINVAL, "chat_render: no messages"); return NULL; }
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role) { sd_seterr(err, SD_EINVAL, "chat_render: message %zu has no role", i); return NULL; }
    if ((opt->xml_tools && !json_is_array(opt->xml_tools)) ||
        (opt->python_tools && !json_is_array(opt->python_tools))) {
        sd_seterr(err, SD_EINVAL, "chat_render: xml_tools/python_tools must be JSON arrays");
        return NULL;
    }
    int think = opt->enable_thinking ? 1 : 0;
    const char *sys = NULL;
    if (strcmp(msgs[0].role, "system") == 0) {
        sys = msgs[0].content;
        if (!sys) { sd_seterr(err, SD_EINVAL, "chat_render: system message content is not a string"); return NULL; }
        if (strstr(sys, "/no_think")) think = 0;
        else if (strstr(sys, "/think")) think = 1;
        /* custom_instructions = sys.replace("/no_think", "").replace("/think", "").rstrip() */
        sb_put_removed(&tmp, sys, strlen(sys), "/no_think");
        sb_put_removed(&ci, tmp.p ? tmp.p : "", tmp.n, "/think");
        if (ci.p) ci.n = py_rstrip_len(ci.p, ci.n);
    }
    sb_puts(&b, "<|im_start|>system\n");
    if (sys && strstr(sys, "/system_override")) {
        sbuf o = {0};
        sb_put_removed(&o, ci.p ? ci.p : "", ci.n, "/system_override");
        sb_putn(&b, o.p ? o.p : "", o.p ? py_rstrip_len(o.p, o.n) : 0);
        if (o.oom) b.oom = 1;
        free(o.p);
        sb_puts(&b, "<|im_end|>\n");
    } else {
        char date[64];
        if (opt->date) {
            snprintf(date, sizeof date, "%s", opt->date);
        } else {
            static const char *months[] = {"January", "February", "March", "April", "May", "June", "July",
                                           "August", "September", "October", "November", "December"};
            time_t now = time(NULL);
            struct tm tm;
            localtime_r(&now, &tm);
            snprintf(date, sizeof date, "%02d %s %d", tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900);
        }
        sb_puts(&b, "## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: ");
        sb_puts(&b, opt->date ? opt->date : date);
        sb_puts(&b, "\nReasoning Mode: ");
        sb_puts(&b, think ? "/think" : "/no_think");
        sb_puts(&b, "\n\n## Custom Instructions\n\n");
        if (sys && ci.n > 0) {
            sb_putn(&b, ci.p, ci.n);
            sb_puts(&b, "\n\n");
        } else {
            sb_puts(&b, think ? THINK_DEFAULT : NO_THINK_DEFAULT);
        }
        int has_xml = opt->xml_tools && json_array_size(opt->xml_tools) > 0;
        int has_py = opt->python_tools && json_array_size(opt->python_tools) > 0;
        if (has_xml || has_py) {
            sb_puts(&b, "### Tools\n\n");
            if (has_xml) put_tools(&b, opt->xml_tools, XML_TOOLS_HEAD, XML_TOOLS_TAIL);
            if (has_py) put_tools(&b, opt->python_tools, PY_TOOLS_HEAD, PY_TOOLS_TAIL);
            sb_puts(&b, "\n\n<|im_end|>\n");
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        const char *c = msgs[i].content ? msgs[i].content : "";
        if (strcmp(role, "user") == 0 || strcmp(role, "tool") == 0) {
            sb_puts(&b, "<|im_start|>user\n");
            sb_puts(&b, c);
            sb_puts(&b, "<|im_end|>\n");
        } else if (strcmp(role, "assistant") == 0) {
            while (*c == '\n') c++;
            sb_puts(&b, think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n");
            sb_puts(&b, c);
            sb_puts(&b, "<|im_end|>\n");
        }
    }
    if (opt->add_generation_prompt)
        sb_puts(&b, think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n");
    int oom = ci.oom || tmp.oom;
    free(ci.p);
    free(tmp.p);
    if (oom) b.oom = 1;
    char *s = sb_finish(&b);
    if (!s) sd_seterr(err, SD_ENOMEM, "chat_render: out of memory");
    return s;
}

char *chat_render_json(const json_t *messages, const chat_options *opt, sd_err *err) {
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        sd_seterr(err, SD_EINVAL, "chat_render_json: messages must be a non-empty JSON array");
        return NULL;
    }
    size_t n = json_array_size(messages);
    chat_message *m = calloc(n, sizeof *m);
    if (!m) { sd_seterr(err, SD_ENOMEM, "chat_render_json: out of memory"); return NULL; }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(o, "role"));
        m[i].role = role ? role : ""; /* a missing role matches no branch */
        m[i].content = json_string_value(json_object_get(o, "content"));
        /* The template reads a string's bytes; embedded NULs would be cut. */
        if (m[i].content && strlen(m[i].content) != json_string_length(json_object_get(o, "content"))) {
            free(m);
            sd_seterr(err, SD_EINVAL, "chat_render_json: message %zu content contains NUL", i);
            return NULL;
        }
    }
    char *s = chat_render(m, n, opt, err);
    free(m);
    return s;
}
