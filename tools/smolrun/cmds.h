/* cmds.h - smolrun subcommands. Each takes argv after the subcommand name
 * (argv[0] is the subcommand), prints --help, and returns the exit status. */
#ifndef SMOLRUN_CMDS_H
#define SMOLRUN_CMDS_H

int cmd_mkmodel(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);       /* tools/smolrun/tok.c */
int cmd_tokenize(int argc, char **argv);   /* tools/smolrun/tok.c */
int cmd_detokenize(int argc, char **argv); /* tools/smolrun/tok.c */
/* Writes model_dir's weights as a llama.cpp-loadable GGUF (type bf16, f16, q8_0 or f32;
 * NULL = bf16); tools/smolrun/gguf_export.c. Returns 0 or an SD_E* code with err set. */
struct sd_err;
int mkmodel_write_gguf(const char *model_dir, const char *gguf_path, const char *type, struct sd_err *err);

#endif
