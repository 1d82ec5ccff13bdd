/* settings.c - the settings table and the config-file and flag parsers that
 * it drives. A config file holds "name = value" lines ('#' comments); the
 * same names are flags (--name VALUE, --name=VALUE; booleans also --name and
 * --no-name); "-" and "_" are interchangeable in names. */
#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum stype { ST_STR, ST_INT, ST_BOOL, ST_DOUBLE, ST_LIST } stype;

typedef struct setting {
    const char *name;
    stype type;
    size_t off;
    const char *def;    /* default as text; NULL = unset */
    double min, max;    /* numbers */
    const char *help;
} setting;

#define OFF(f) offsetof(settings, f)
static const setting table[] = {
    {"model", ST_STR, OFF(model), NULL, 0, 0, "model folder (config.json, *.safetensors, tokenizer.json); required"},
    {"data", ST_STR, OFF(data), NULL, 0, 0, "data folder (database, socket, lock), created with mode 0700; required"},
    {"config", ST_STR, OFF(config), NULL, 0, 0, "config file of \"name = value\" lines, read before the flags"},
    {"listen", ST_LIST, OFF(listen), NULL, 0, 0,
     "endpoint to bind, repeatable (default ipc://DATA/smoldocd.sock); tcp:// needs CurveZMQ keys"},
    {"log-file", ST_STR, OFF(log_file), "-", 0, 0, "log file (\"-\" = stderr); SIGHUP reopens it"},
    {"log-level", ST_STR, OFF(log_level), "info", 0, 0, "error, warn, info or debug"},
    {"backend", ST_STR, OFF(backend), "auto", 0, 0, "compute backend: auto, cpu or cuda"},
    {"device", ST_INT, OFF(device), "0", 0, 255, "CUDA device index (backend cuda or auto)"},
    {"threads", ST_INT, OFF(threads), "0", 0, 4096, "CPU threads for the engine (0 = all cores)"},
    {"max-ctx", ST_INT, OFF(max_ctx), "0", 0, 1 << 20, "context length in tokens (0 = the model's)"},
    {"kv-budget-mb", ST_INT, OFF(kv_budget_mb), "0", 0, 1 << 24, "KV cache pool in MiB (0 = room for max-ctx tokens)"},
    {"prefix-budget-mb", ST_INT, OFF(prefix_budget_mb), "4096", 0, 1 << 24,
     "document prefixes kept prefilled, in MiB of KV; least recently used evicted first"},
    {"queue-max", ST_INT, OFF(queue_max), "64", 1, 100000, "jobs waiting per worker before requests get `busy`"},
    {"max-file-mb", ST_INT, OFF(max_file_mb), "256", 1, 4096, "largest document accepted by ingest, MiB"},
    {"allow-path-ingest", ST_BOOL, OFF(allow_path_ingest), "false", 0, 0, "allow ingest by a path on this machine"},
    {"allow-plaintext-tcp", ST_BOOL, OFF(allow_plaintext_tcp), "false", 0, 0,
     "allow tcp:// endpoints without CurveZMQ (unsafe beyond localhost)"},
    {"curve-server-key", ST_STR, OFF(curve_server_key), NULL, 0, 0, "CurveZMQ server key pair file (smoldoc keygen)"},
    {"curve-allowed-keys", ST_STR, OFF(curve_allowed_keys), NULL, 0, 0,
     "file of allowed client public keys (one per line); required with curve-server-key"},
    {"shutdown-grace-s", ST_DOUBLE, OFF(shutdown_grace_s), "10", 0, 3600,
     "on SIGTERM, running work may finish this long before it is canceled"},
    {"ingest-timeout-s", ST_DOUBLE, OFF(ingest_timeout_s), "120", 1, 86400, "PDF text extraction time limit"},
    {"ask-max-tokens", ST_INT, OFF(ask_max_tokens), "512", 1, 32768, "default max_tokens of ask"},
    {"summarize-max-tokens", ST_INT, OFF(summarize_max_tokens), "512", 1, 32768, "default max_tokens of summarize"},
    {"extract-max-tokens", ST_INT, OFF(extract_max_tokens), "96", 1, 32768,
     "default max_tokens of each extract category"},
    {"summary-window-tokens", ST_INT, OFF(summary_window_tokens), "8192", 64, 1 << 20,
     "map window size when a document does not fit the context"},
    {"verify-prompts", ST_BOOL, OFF(verify_prompts), "false", 0, 0,
     "check that every prompt's prefix and suffix tokenize as the whole (tests)"},
    {"help", ST_BOOL, OFF(help), "false", 0, 0, "print this help and exit"},
};
#define N_TABLE (sizeof table / sizeof table[0])

static const setting *find(const char *name, size_t len) {
    for (size_t i = 0; i < N_TABLE; i++) {
        const char *t = table[i].name;
        if (strlen(t) != len) continue;
        size_t j = 0;
        for (; j < len; j++) {
            char a = name[j] == '_' ? '-' : name[j];
            if (a != t[j]) break;
        }
        if (j == len) return &table[i];
    }
    return NULL;
}

static int parse_bool(const char *v, bool *out) {
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on")) { *out = true; return 0; }
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off")) { *out = false; return 0; }
    return -1;
}

/* Sets one setting from its text value. where names the source for errors. */
static int set_value(settings *s, const setting *t, const char *v, const char *where, sd_err *err) {
    char *base = (char *)s + t->off;
    switch (t->type) {
    case ST_STR: {
        char **p = (char **)base;
        free(*p);
        *p = v ? xstrdup(v) : NULL;
        return 0;
    }
    case ST_LIST: {
        if (s->n_listen >= SETTINGS_MAX_LISTEN)
            return sd_seterr(err, SD_EINVAL, "%s: at most %d %s values", where, SETTINGS_MAX_LISTEN, t->name);
        s->listen[s->n_listen++] = xstrdup(v);
        return 0;
    }
    case ST_BOOL:
        if (parse_bool(v, (bool *)base))
            return sd_seterr(err, SD_EINVAL, "%s: %s wants true or false, not '%s'", where, t->name, v);
        return 0;
    case ST_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < (long long)t->min || x > (long long)t->max)
            return sd_seterr(err, SD_EINVAL, "%s: %s wants an integer in %.0f..%.0f, not '%s'", where, t->name,
                             t->min, t->max, v);
        *(int64_t *)base = x;
        return 0;
    }
    case ST_DOUBLE: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !(x >= t->min && x <= t->max))
            return sd_seterr(err, SD_EINVAL, "%s: %s wants a number in %g..%g, not '%s'", where, t->name, t->min,
                             t->max, v);
        *(double *)base = x;
        return 0;
    }
    }
    return SD_EINVAL;
}

void settings_init(settings *s) {
    memset(s, 0, sizeof *s);
    sd_err e;
    for (size_t i = 0; i < N_TABLE; i++)
        if (table[i].def) set_value(s, &table[i], table[i].def, "default", &e);
}

void settings_clear(settings *s) {
    for (size_t i = 0; i < N_TABLE; i++)
        if (table[i].type == ST_STR) {
            char **p = (char **)((char *)s + table[i].off);
            free(*p);
            *p = NULL;
        }
    for (int i = 0; i < s->n_listen; i++) free(s->listen[i]);
    s->n_listen = 0;
}

static char *trim(char *p) {
    while (isspace((unsigned char)*p)) p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1])) p[--n] = 0;
    return p;
}

static int load_file(settings *s, const char *path, sd_err *err) {
    char *text = NULL;
    size_t len;
    int rc = sd_read_file(path, 1 << 20, &text, &len, err);
    if (rc) return rc;
    int line_no = 0, file_listen = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        char *p = trim(line);
        if (!*p || *p == '#') continue;
        char *eq = strchr(p, '=');
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, line_no);
        if (!eq) { rc = sd_seterr(err, SD_EINVAL, "%s: expected \"name = value\"", where); break; }
        *eq = 0;
        char *name = trim(p), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') { val[vl - 1] = 0; val++; }
        const setting *t = find(name, strlen(name));
        if (!t || !strcmp(t->name, "config") || !strcmp(t->name, "help")) {
            rc = sd_seterr(err, SD_EINVAL, "%s: unknown setting '%s'", where, name);
            break;
        }
        if (t->type == ST_LIST) file_listen++;
        if ((rc = set_value(s, t, val, where, err))) break;
    }
    (void)file_listen;
    free(text);
    return rc;
}

int settings_load(settings *s, int argc, char **argv, sd_err *err) {
    /* Pass 1: the config file. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config") && i + 1 < argc) { set_value(s, find("config", 6), argv[i + 1], "--config", err); i++; }
        else if (!strncmp(a, "--config=", 9)) set_value(s, find("config", 6), a + 9, "--config", err);
    }
    int rc;
    if (s->config && (rc = load_file(s, s->config, err))) return rc;
    /* Pass 2: flags; listen flags replace the file's list. */
    int flag_listen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h")) { s->help = true; continue; }
        if (strncmp(a, "--", 2) || !a[2])
            return sd_seterr(err, SD_EINVAL, "unexpected argument '%s' (see --help)", a);
        const char *name = a + 2, *eq = strchr(name, '='), *val = NULL;
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const setting *t = find(name, nl);
        bool negated = false;
        if (!t && nl > 3 && !strncmp(name, "no-", 3)) {
            t = find(name + 3, nl - 3);
            if (t && t->type != ST_BOOL) t = NULL;
            negated = true;
        }
        if (!t) return sd_seterr(err, SD_EINVAL, "unknown flag '%s' (see --help)", a);
        if (eq) val = eq + 1;
        else if (t->type == ST_BOOL) val = negated ? "false" : "true";
        else if (i + 1 < argc) val = argv[++i];
        else return sd_seterr(err, SD_EINVAL, "flag --%s needs a value", t->name);
        if (negated && eq) return sd_seterr(err, SD_EINVAL, "flag %s takes no value", a);
        if (!strcmp(t->name, "config")) continue;
        if (t->type == ST_LIST && !flag_listen++) {
            for (int k = 0; k < s->n_listen; k++) free(s->listen[k]);
            s->n_listen = 0;
        }
        char where[128];
        snprintf(where, sizeof where, "--%s", t->name);
        if ((rc = set_value(s, t, val, where, err))) return rc;
    }
    return 0;
}

int settings_validate(const settings *s, sd_err *err) {
    if (!s->model || !*s->model) return sd_seterr(err, SD_EINVAL, "--model is required (see --help)");
    if (!s->data || !*s->data) return sd_seterr(err, SD_EINVAL, "--data is required (see --help)");
    if (!s->log_level || (strcmp(s->log_level, "error") && strcmp(s->log_level, "warn") &&
                          strcmp(s->log_level, "info") && strcmp(s->log_level, "debug")))
        return sd_seterr(err, SD_EINVAL, "--log-level must be error, warn, info or debug, not '%s'", s->log_level);
    if (strcmp(s->backend, "auto") && strcmp(s->backend, "cpu") && strcmp(s->backend, "cuda"))
        return sd_seterr(err, SD_EINVAL, "--backend must be auto, cpu or cuda, not '%s'", s->backend);
    if (!!s->curve_server_key != !!s->curve_allowed_keys)
        return sd_seterr(err, SD_EINVAL, "--curve-server-key and --curve-allowed-keys go together");
    for (int i = 0; i < s->n_listen; i++) {
        const char *l = s->listen[i];
        if (strncmp(l, "ipc://", 6) && strncmp(l, "tcp://", 6))
            return sd_seterr(err, SD_EINVAL, "--listen %s: only ipc:// and tcp:// endpoints", l);
        if (!strncmp(l, "tcp://", 6) && !s->curve_server_key && !s->allow_plaintext_tcp)
            return sd_seterr(err, SD_EINVAL,
                             "--listen %s: tcp needs --curve-server-key and --curve-allowed-keys "
                             "(or --allow-plaintext-tcp)", l);
    }
    return 0;
}

void settings_help(FILE *f) {
    fprintf(f,
            "usage: smoldocd --model DIR --data DIR [--listen ENDPOINT]... [--config FILE] [SETTINGS]\n"
            "\n"
            "smoldocd holds a SmolLM3 model and a document store and answers smoldoc clients\n"
            "over ZeroMQ (protocol v1). Every setting below is a flag (--name VALUE or\n"
            "--name=VALUE; booleans also --name / --no-name) and a config-file line\n"
            "(name = value); flags override the config file.\n\nSettings:\n");
    for (size_t i = 0; i < N_TABLE; i++) {
        const setting *t = &table[i];
        const char *ty = t->type == ST_STR ? "TEXT" : t->type == ST_INT ? "N" : t->type == ST_BOOL ? "BOOL"
                       : t->type == ST_DOUBLE ? "X" : "ENDPOINT";
        char head[64];
        snprintf(head, sizeof head, "--%s %s", t->name, ty);
        fprintf(f, "  %-34s %s", head, t->help);
        if (t->def) fprintf(f, " (default %s)", t->def);
        if (t->type == ST_INT || t->type == ST_DOUBLE) fprintf(f, " [%g..%g]", t->min, t->max);
        fputc('\n', f);
    }
    fprintf(f,
            "\nSignals: SIGTERM/SIGINT finish or cancel running work within shutdown-grace-s and exit 0;\n"
            "SIGHUP reopens the log file. A second smoldocd on the same data folder refuses to start.\n"
            "Exit status: 0 clean stop, 1 bad settings, 2 start-up failure (model, store, bind, lock).\n");
}
