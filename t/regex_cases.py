#!/usr/bin/env python3
"""Writes t/fixtures/regex/cases.json: regex patterns with strings and what
Python's re.fullmatch(pattern, string, re.ASCII) says of each (the reference
for engine/output/regex.c, checked by t/unit/test_structured.c), patterns
the engine refuses as unsupported (Python accepts them; their language is
not regular or needs look-around), and GBNF grammars (engine/output/ebnf.c)
each with a Python regex of the same language, whose verdicts on the strings
are the expected ones.  Rerun after editing the lists:

    python3 t/regex_cases.py > t/fixtures/regex/cases.json
"""
import json
import random
import re
import sys

# (pattern, strings that should be tried besides the random ones)
PATTERNS = [
    ("", ["", "a"]),
    ("abc", ["abc", "ab", "abcd", "ABC"]),
    ("a|b|", ["a", "b", "", "ab"]),
    (r"\d{3}-\d{4}", ["555-1234", "55-1234", "555-12345", "abc-defg", "\u0663\u0663\u0663-1234"]),
    (r"\d+", ["0", "123456789", "", "12a", "\u0661"]),
    (r"\w+@\w+\.com", ["a@b.com", "foo_1@bar.com", "@b.com", "a@b.org", "é@b.com"]),
    (r"\s*", ["", " ", " \t\n\r\f\v", "\u00a0", " x"]),
    (r"\S+", ["x", "x y", "", "é", "\u00a0"]),
    (r"\W", ["!", "a", "_", "é", " "]),
    (r"\D\D", ["ab", "a1", "é!", ""]),
    (r"[a-z]+", ["hello", "Hello", "", "héllo"]),
    (r"[^a-z]+", ["HELLO", "123", "é", "abc", "\n"]),
    (r"[A-Za-z_][A-Za-z0-9_]*", ["_x1", "1x", "abc_DEF9", ""]),
    (r"[-a]", ["-", "a", "b"]),
    (r"[a-]", ["-", "a", "b"]),
    (r"[]a]", ["]", "a", "b"]),
    (r"[^]a]", ["]", "a", "b"]),
    (r"[\d.]+", ["1.5", "..", "1,5"]),
    (r"[\w-]+", ["a-b_c", "a b"]),
    (r"[\]\\]", ["]", "\\", "["]),
    (r".", ["a", "\n", "é", "\u4e2d", "\U0001f600", ""]),
    (r".*", ["", "anything at all", "line\nbreak"]),
    (r"(yes|no|maybe)", ["yes", "no", "maybe", "yesno", ""]),
    (r"(?:ab)+", ["ab", "abab", "aba", ""]),
    (r"(?P<year>\d{4})-(?P<month>\d{2})", ["2024-01", "24-01"]),
    (r"colou?r", ["color", "colour", "colouur"]),
    (r"a{2,4}", ["a", "aa", "aaa", "aaaa", "aaaaa"]),
    (r"a{3}", ["aaa", "aa", "aaaa"]),
    (r"a{2,}", ["a", "aa", "aaaaaaa"]),
    (r"a{,2}", ["", "a", "aa", "aaa"]),
    (r"a{,}", ["", "aaaa"]),
    (r"x{}", ["x{}", "x"]),
    (r"x{a}", ["x{a}", "xa"]),
    (r"x{2", ["x{2", "xx"]),
    (r"a*?b", ["b", "aaab", "a"]),
    (r"(a|b)*c{1,2}?", ["c", "abcc", "ab"]),
    (r"^abc$", ["abc", "abc\n", "xabc"]),
    (r"a$", ["a", "a\n"]),
    (r"\$\^\.\*\+\?\(\)\[\]\{\}\|\\", ["$^.*+?()[]{}|\\"]),
    (r"\x41\u00e9\U0001F600", ["A\u00e9\U0001f600", "Ae"]),
    (r"\t\n\r\f\v\a\0", ["\t\n\r\f\v\a\0"]),
    (r"\012", ["\n", "12"]),
    (r"caf\u00e9|na\u00efve", ["caf\u00e9", "na\u00efve", "cafe"]),
    ("\u4e2d\u6587+", ["\u4e2d\u6587", "\u4e2d\u6587\u6587\u6587", "\u4e2d"]),
    (r"[\u4e00-\u9fff]{2}", ["\u4e2d\u6587", "ab", "\u4e2d"]),
    (r"[^\x00-\x7f]", ["\u00e9", "a", "\U0001f600"]),
    (r"\d{1,3}(\.\d{1,3}){3}", ["192.168.0.1", "1.2.3", "1234.1.1.1"]),
    (r"(\+|-)?\d+(\.\d+)?([eE][+-]?\d+)?", ["-1.5e10", "+3", "1.", ".5", "2E-3"]),
    (r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}", ["john.doe@example.com", "x@y.z", "a@b.cd"]),
    (r"(true|false|null)", ["true", "false", "null", "True"]),
    (r"(ab|a)(bc|c)?", ["abc", "ab", "a", "ac", "abbc"]),
    (r"((a)(b(c)))", ["abc", "ab"]),
    (r"(a*)*", ["", "aaa", "b"]),
    (r"(a|)+b", ["b", "aab"]),
    (r"a(?#a comment)b", ["ab", "a b"]),
    (r"[\s\S]{0,3}", ["", "\n\n\n", "abcd"]),
    (r"\\d", ["\\d", "1"]),
    (r"[a-c][^\W\d]", ["ab", "a1", "a_", "aé"]),
    (r"\bword", None),
    (r"(a)\1", None),
    (r"a(?=b)b", None),
    (r"(?<=a)b", None),
    (r"(?i)abc", None),
    (r"a++", None),
    (r"x^y", None),
    (r"x$y", None),
    (r"\Aabc\Z", None),
    (r"(?P<n>a)(?P=n)", None),
]

# malformed patterns: Python raises re.error; so must the engine
MALFORMED = [r"a**", r"*a", r"(ab", r"ab)", r"[abc", r"[z-a]", r"\q", r"a{3,2}", r"\x4", r"?", r"a|*"]

# (GBNF grammar, a Python regex of the same language, strings to try)
GRAMMARS = [
    ('root ::= "yes" | "no"', r"yes|no", ["yes", "no", "maybe", ""]),
    ('root ::= answer "." \nanswer ::= ("SELECT " col " FROM " tab)\ncol ::= "a" | "b"\ntab ::= [a-z]+ # a table',
     r"SELECT (a|b) FROM [a-z]+\.", ["SELECT a FROM t.", "SELECT c FROM t.", "SELECT b FROM .", "SELECT b FROM xyz."]),
    ("root ::= digit{2,3} ('-' digit+)?\ndigit ::= [0-9]", r"[0-9]{2,3}(-[0-9]+)?",
     ["12", "123-4", "1", "1234", "12-"]),
    ('root ::= "\\x41\\u00e9\\n" [^a-z]* .', "A\u00e9\n[^a-z]*[\\s\\S]", ["A\u00e9\nXY", "A\u00e9\n", "A\u00e9\nab"]),
    ("root ::= ( [a-c] | \"x\" )* \"!\"", r"([a-c]|x)*!", ["!", "abcx!", "abd!"]),
]

ALPHABET = list("abcxyz019 -_.@\n") + ["\u00e9", "\u4e2d", "\U0001f600"]


def main():
    rnd = random.Random(20240613)
    out = []
    for pattern, strings in PATTERNS:
        rx = re.compile(pattern, re.ASCII)
        if strings is None:
            out.append({"pattern": pattern, "supported": False})
            continue
        # random strings over the pattern's own characters and a few others
        chars = sorted(set(c for c in pattern if c not in "\\()[]{}|*+?^$") | set(ALPHABET))
        tries = list(strings)
        for _ in range(24):
            tries.append("".join(rnd.choice(chars) for _ in range(rnd.randint(0, 7))))
        seen, cases = set(), []
        for s in tries:
            if s in seen:
                continue
            seen.add(s)
            cases.append([s, rx.fullmatch(s) is not None])
        out.append({"pattern": pattern, "supported": True, "cases": cases})
    grammars = []
    for grammar, regex, strings in GRAMMARS:
        rx = re.compile(regex, re.DOTALL)
        chars = sorted(set(c for c in grammar if c.isalnum() or c in " .-!") | set("ab1-!é"))
        tries = list(strings)
        for _ in range(24):
            tries.append("".join(rnd.choice(chars) for _ in range(rnd.randint(0, 8))))
        seen, cases = set(), []
        for s in tries:
            if s not in seen:
                seen.add(s)
                cases.append([s, rx.fullmatch(s) is not None])
        grammars.append({"grammar": grammar, "regex": regex, "cases": cases})
    for pattern in MALFORMED:
        try:
            re.compile(pattern, re.ASCII)
            raise SystemExit("expected %r to be malformed" % pattern)
        except re.error as e:
            out.append({"pattern": pattern, "supported": False, "python_error": str(e)})
    json.dump({"regex": out, "grammar": grammars}, sys.stdout, ensure_ascii=False, indent=0)
    sys.stdout.write("\n")


main()
