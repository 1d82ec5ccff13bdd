/* settings.h - the daemon's one settings table: every setting's name, type,
 * default, bounds and help drive the config file parser, the command-line
 * flags, validation and --help. Config file first, then flags. */
#ifndef SETTINGS_H
#define SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sd.h"

#define SETTINGS_MAX_LISTEN 8

typedef struct settings {
    char *model;              /* model folder (config.json, safetensors, tokenizer.json) */
    char *data;               /* data folder: smoldoc.db, socket, lock */
    char *config;             /* config file read before the flags, or NULL */
    char *listen[SETTINGS_MAX_LISTEN];
    int n_listen;             /* 0: ipc://DATA/smoldocd.sock */
    char *log_file;           /* NULL/"-": stderr */
    char *log_level;
    char *backend;            /* auto | cpu | cuda */
    int64_t device;           /* CUDA device index */
    int64_t threads;          /* CPU threads for the engine, 0 = all */
    int64_t max_ctx;          /* context length in tokens, 0 = the model's */
    int64_t kv_budget_mb;     /* KV pool, 0 = room for max_ctx tokens */
    int64_t prefix_budget_mb; /* document prefixes kept in the KV pool */
    int64_t queue_max;        /* waiting jobs per worker before `busy` */
    int64_t max_file_mb;      /* largest ingest frame */
    bool allow_path_ingest;   /* ingest by a path on this machine */
    bool allow_plaintext_tcp; /* tcp:// without CurveZMQ */
    char *curve_server_key;   /* server key pair file (.key) */
    char *curve_allowed_keys; /* allowed client public keys */
    double shutdown_grace_s;  /* SIGTERM: let running work finish this long, then cancel */
    double ingest_timeout_s;  /* PDF extraction time limit */
    int64_t ask_max_tokens, summarize_max_tokens, extract_max_tokens;
    int64_t summary_window_tokens; /* map window size when a document does not fit */
    bool verify_prompts;      /* check split == whole tokenization of every prompt */
    bool help;
} settings;

/* Fills s with the defaults. */
void settings_init(settings *s);

/* Frees the strings of s (not s). */
void settings_clear(settings *s);

/* Reads --config FILE from argv (if any) and that file, then every flag.
 * Returns 0, or SD_EINVAL / SD_ENOTFOUND / SD_EIO with err naming the
 * setting (or file and line) and the problem. */
int settings_load(settings *s, int argc, char **argv, sd_err *err);

/* Checks cross-setting rules (model and data present). Returns 0 or SD_EINVAL. */
int settings_validate(const settings *s, sd_err *err);

/* Prints the usage text with every setting, its default and help. */
void settings_help(FILE *f);

#endif
