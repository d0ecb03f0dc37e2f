/*
 * regex.h: the regular expressions of vLLM's structured_outputs.regex, read
 * as Python's re.fullmatch(pattern, text, re.ASCII) reads them, into a
 * byte_dfa.h tree.  t/regex_cases.py writes the cases the unit test checks
 * against Python.
 *
 * Supported: literals (any UTF-8), '.', escapes \d \D \w \W \s \S (ASCII
 * classes), \n \t \r \f \v \a \0, \xhh, \uhhhh, \Uhhhhhhhh, an escaped
 * punctuation character; classes [...] and [^...] with ranges and those
 * escapes; groups (...), (?:...), (?P<name>...); alternation |;
 * quantifiers ? * + {m} {m,} {,n} {m,n}, lazy or not (the same language
 * under a full match); '^' at the very start and '$' at the very end (the
 * match is anchored anyway).  A '{' that does not start a quantifier is a
 * literal, as in Python.
 * Refused, each with its position: backreferences, lookaround, inline
 * flags, possessive quantifiers, conditionals, \b \B \A \Z and other
 * anchors, '^'/'$' elsewhere, repetition counts above GLM_RX_MAX_REPEAT.
 */
#ifndef GLM_REGEX_H
#define GLM_REGEX_H

#include <stddef.h>

#include "byte_dfa.h"

/* NULL with err ("unsupported regex construct ... at position N", or
 * Python's own wording for a malformed pattern). */
glm_rx *glm_regex_parse(const char *pattern, size_t n, glm_err *err);

#endif
