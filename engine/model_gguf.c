/* model_gguf.c - SmolLM3 from a GGUF file (placeholder until the GGUF loader lands). */
#include "model.h"

int model_load_gguf(const char *path, model **out, sd_err *err) {
    *out = NULL;
    return sd_seterr(err, SD_ENOTSUP, "model: %s: GGUF models are not supported by this build yet", path);
}
