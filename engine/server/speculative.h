/*
 * speculative.h: `--speculative-config`, as vLLM spells it.
 *
 *   --speculative-config '{"method": "mtp", "num_speculative_tokens": 1}'
 *
 * GLM-4.5 and GLM-4.5-Air ship one multi-token-prediction layer; with it the
 * engine drafts one token per decoding sequence per step and verifies it in
 * the same step (scheduler.h).  vLLM's method names for it are accepted
 * ("mtp", "glm4_moe_mtp", "deepseek_mtp"); other methods (draft models,
 * n-gram, EAGLE) and more than one speculative token are refused with what
 * to change.
 */
#ifndef GLM_SPECULATIVE_H
#define GLM_SPECULATIVE_H

#include "util/util.h"

/* 1 and *tokens = 1 for MTP; -1 with a message naming the field otherwise. */
int glm_speculative_config_parse(const char *json, int *tokens, glm_err *err);

#endif
