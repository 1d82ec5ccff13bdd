/* smolrun.c - the engine on the command line: mkmodel, logits, generate, bench,
 * chat, tokenize, detokenize. Each subcommand lives in tools/smolrun/. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

static const struct {
    const char *name, *help;
    int (*fn)(int, char **);
} cmds[] = {
    {"mkmodel", "write a random-weight SmolLM3-shaped model folder", cmd_mkmodel},
    {"logits", "float32 logits of the last (or every) position", cmd_logits},
    {"generate", "generate token ids through the KV cache", cmd_generate},
    {"bench", "prefill and decode tokens per second, as one JSON line", cmd_bench},
    {"chat", "render the SmolLM3 chat template for a messages file", cmd_chat},
    {"tokenize", "text on stdin to token ids", cmd_tokenize},
    {"detokenize", "token ids on stdin to text", cmd_detokenize},
};

static void usage(FILE *f) {
    fprintf(f, "usage: smolrun COMMAND [options]   (smolrun COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) fprintf(f, "  %-11s %s\n", cmds[i].name, cmds[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "smolrun: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
