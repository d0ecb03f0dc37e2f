/*
 * ebnf.h: vLLM's structured_outputs.grammar, the GBNF dialect of EBNF that
 * xgrammar reads (`root ::= "yes" | "no"`), restricted to regular grammars,
 * into a byte_dfa.h tree.
 *
 * Supported: rules `name ::= ...` (names of letters, digits, '_' and '-'),
 * the start rule `root`; "strings" and 'strings' with \n \t \r \\ \" \'
 * \xhh \uhhhh \Uhhhhhhhh; character classes [a-z] [^...]; '.' (any
 * character); grouping ( ); alternation |; quantifiers ? * + {m} {m,}
 * {m,n}; # comments.  Rule references are expanded in place, so a rule
 * that refers back to itself, directly or through others, makes a grammar
 * that is not regular: it is refused with a message naming the rule (as
 * are Lark grammars, `rule: ...`).
 */
#ifndef GLM_EBNF_H
#define GLM_EBNF_H

#include <stddef.h>

#include "byte_dfa.h"

/* NULL with err (what is wrong, where: "line L column C"). */
glm_rx *glm_ebnf_parse(const char *grammar, size_t n, glm_err *err);

#endif
