/* tok.c - smolrun chat, tokenize and detokenize: the chat template and the
 * tokenizer on the command line (the model folder's tokenizer.json). */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "chat.h"
#include "cmds.h"
#include "tokenizer.h"

static int has_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* --model DIR (its tokenizer.json) or the path of a tokenizer.json itself. */
static tokenizer *open_tokenizer(const char *cmd, const char *model) {
    char path[PATH_MAX];
    struct stat st;
    sd_err err = {0};
    if (!model) {
        fprintf(stderr, "smolrun %s: --model DIR is required\n", cmd);
        return NULL;
    }
    if (stat(model, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(path, sizeof path, "%s/tokenizer.json", model);
    else snprintf(path, sizeof path, "%s", model);
    tokenizer *t = tokenizer_new(path, &err);
    if (!t) fprintf(stderr, "smolrun %s: %s\n", cmd, err.msg);
    return t;
}

static char *read_stream(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap + 1);
    if (!p) return NULL;
    for (;;) {
        if (n == cap) {
            char *q = cap < SIZE_MAX / 4 ? realloc(p, cap * 2 + 1) : NULL;
            if (!q) { free(p); return NULL; }
            p = q;
            cap *= 2;
        }
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    p[n] = 0;
    *len = n;
    return p;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    int special = 1;
    long repeat = 0;
    if (has_help(argc, argv)) {
        printf("usage: smolrun tokenize --model DIR [--no-special] [--file F] [--repeat N] < text\n"
               "  prints the token ids of the text (stdin or F), space separated, no BOS added.\n"
               "  --no-special  tokenize special-token strings such as <|im_end|> as plain text\n"
               "  --repeat N    also encode N more times and print the median time and MB/s to stderr\n"
               "  DIR may also be the path of a tokenizer.json\n");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--no-special")) special = 0;
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
            char *end;
            repeat = strtol(argv[++i], &end, 10);
            if (*end || repeat < 0 || repeat > 100000) { fprintf(stderr, "smolrun tokenize: bad --repeat\n"); return 2; }
        } else {
            fprintf(stderr, "smolrun tokenize: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    tokenizer *t = open_tokenizer("tokenize", model);
    if (!t) return 1;
    FILE *f = file ? fopen(file, "rb") : stdin;
    if (!f) { fprintf(stderr, "smolrun tokenize: cannot open %s: %s\n", file, strerror(errno)); tokenizer_free(t); return 1; }
    size_t len;
    char *text = read_stream(f, &len);
    if (file) fclose(f);
    if (!text) { fprintf(stderr, "smolrun tokenize: out of memory reading input\n"); tokenizer_free(t); return 1; }
    int32_t *ids = NULL;
    size_t n = 0;
    sd_err err = {0};
    int rc = tokenizer_encode(t, text, len, special, &ids, &n, &err);
    if (rc) {
        fprintf(stderr, "smolrun tokenize: %s\n", err.msg);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        if (repeat > 0) {
            double *ts = malloc((size_t)repeat * 2 * sizeof *ts), *cs = ts ? ts + repeat : NULL;
            for (long r = 0; ts && r < repeat && !rc; r++) {
                int32_t *ids2 = NULL;
                size_t n2 = 0;
                double t0 = sd_now(), c0 = cpu_now();
                rc = tokenizer_encode(t, text, len, special, &ids2, &n2, &err);
                ts[r] = sd_now() - t0;
                cs[r] = cpu_now() - c0;
                free(ids2);
            }
            if (ts && !rc) {
                qsort(ts, (size_t)repeat, sizeof *ts, cmp_double);
                qsort(cs, (size_t)repeat, sizeof *cs, cmp_double);
                double med = ts[repeat / 2], cmed = cs[repeat / 2];
                fprintf(stderr,
                        "tokenize: %zu bytes, %zu tokens, median over %ld runs: wall %.3f ms (%.1f MB/s), "
                        "thread cpu %.3f ms (%.1f MB/s)\n",
                        len, n, repeat, med * 1e3, len / med / 1e6, cmed * 1e3, len / cmed / 1e6);
            }
            free(ts);
        }
    }
    free(ids);
    free(text);
    tokenizer_free(t);
    return rc ? 1 : 0;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL;
    int skip = 0, stream = 0;
    if (has_help(argc, argv)) {
        printf("usage: smolrun detokenize --model DIR [--skip-special] [--stream] < ids\n"
               "  reads token ids (space, comma or newline separated) and prints their text.\n"
               "  --skip-special  leave special tokens out\n"
               "  --stream        decode through the streaming decoder, one id at a time\n");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--skip-special")) skip = 1;
        else if (!strcmp(argv[i], "--stream")) stream = 1;
        else {
            fprintf(stderr, "smolrun detokenize: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    tokenizer *t = open_tokenizer("detokenize", model);
    if (!t) return 1;
    size_t len, n = 0, cap = 256;
    char *text = read_stream(stdin, &len);
    int32_t *ids = malloc(cap * sizeof *ids);
    int rc = 0;
    if (!text || !ids) { fprintf(stderr, "smolrun detokenize: out of memory\n"); rc = 1; goto out; }
    for (char *p = text; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "smolrun detokenize: bad token id near '%.20s'\n", p);
            rc = 2;
            goto out;
        }
        if (n == cap) {
            int32_t *q = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!q) { fprintf(stderr, "smolrun detokenize: out of memory\n"); rc = 1; goto out; }
            ids = q;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (stream) {
        tokenizer_stream *s = tokenizer_stream_new(t);
        char buf[4096];
        size_t k;
        if (!s) { rc = 1; goto out; }
        tokenizer_stream_set_skip_special(s, skip);
        for (size_t i = 0; i < n; i++) {
            k = tokenizer_stream_put(s, ids[i], buf, sizeof buf);
            fwrite(buf, 1, k, stdout);
            fflush(stdout);
        }
        while ((k = tokenizer_stream_flush(s, buf, sizeof buf)) > 0) fwrite(buf, 1, k, stdout);
        tokenizer_stream_free(s);
    } else {
        char *s = tokenizer_decode(t, ids, n, skip);
        if (!s) { fprintf(stderr, "smolrun detokenize: out of memory\n"); rc = 1; goto out; }
        fputs(s, stdout);
        free(s);
    }
out:
    free(ids);
    free(text);
    tokenizer_free(t);
    return rc;
}

static json_t *load_json(const char *what, const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j) fprintf(stderr, "smolrun chat: %s %s:%d: %s\n", what, path, je.line, je.text);
    return j;
}

int cmd_chat(int argc, char **argv) {
    const char *messages = NULL, *xml = NULL, *py = NULL;
    chat_options o = chat_options_default();
    if (has_help(argc, argv)) {
        printf("usage: smolrun chat [--model DIR] --messages FILE.json [--no-think] [--no-generation-prompt]\n"
               "                    [--date \"DD Month YYYY\"] [--xml-tools FILE.json] [--python-tools FILE.json]\n"
               "  prints the SmolLM3 chat prompt for a JSON array of {\"role\", \"content\"} messages.\n"
               "  --model is accepted for symmetry; the template is built in. --date defaults to today.\n");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) i++;
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc) messages = argv[++i];
        else if (!strcmp(argv[i], "--no-think")) o.enable_thinking = 0;
        else if (!strcmp(argv[i], "--no-generation-prompt")) o.add_generation_prompt = 0;
        else if (!strcmp(argv[i], "--date") && i + 1 < argc) o.date = argv[++i];
        else if (!strcmp(argv[i], "--xml-tools") && i + 1 < argc) xml = argv[++i];
        else if (!strcmp(argv[i], "--python-tools") && i + 1 < argc) py = argv[++i];
        else {
            fprintf(stderr, "smolrun chat: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!messages) { fprintf(stderr, "smolrun chat: --messages FILE.json is required\n"); return 2; }
    json_t *m = load_json("messages", messages), *x = NULL, *p = NULL;
    int rc = 1;
    if (!m) goto out;
    if (xml && !(x = load_json("xml tools", xml))) goto out;
    if (py && !(p = load_json("python tools", py))) goto out;
    o.xml_tools = x;
    o.python_tools = p;
    sd_err err = {0};
    char *s = chat_render_json(m, &o, &err);
    if (!s) {
        fprintf(stderr, "smolrun chat: %s\n", err.msg);
        goto out;
    }
    fputs(s, stdout);
    free(s);
    rc = 0;
out:
    json_decref(m);
    json_decref(x);
    json_decref(p);
    return rc;
}
