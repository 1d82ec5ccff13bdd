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

#endif
