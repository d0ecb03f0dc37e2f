#!/usr/bin/env python3
"""The official openai client's structured-output helpers against ngx_glm
(t/http_structured.t): parse() with a pydantic model, stream(response_format=),
json_object, and vLLM's structured_outputs choice, regex and grammar.  The
fixture model has random weights and samples at temperature 1, so only the
constraint can make its outputs valid: each kind runs 100 seeds (half
thinking with a small thinking_token_budget, half with thinking off) and
every output must finish ("stop") and be valid, judged here by pydantic,
json and Python's re."""
import json
import re
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import openai
from pydantic import BaseModel, Field

base = sys.argv[1]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=600)
name = client.models.list().data[0].id
SEEDS = 100
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed, failed = (passed + 1, failed) if cond else (passed, failed + 1)
    print(("ok    " if cond else "FAIL  ") + what)


# Small on purpose: every JSON token may be followed by a whitespace run of
# up to 16 bytes, which the random model likes, so the longest possible
# output (about 14 runs) stays well under max_tokens and no seed can be cut.
class Pet(BaseModel):
    name: str = Field(max_length=6)
    age: int
    kind: Literal["cat", "dog", "fish"]


def thinking(seed):
    # half the seeds think (the budget closes </think> for a model that
    # would not), half run with thinking off
    if seed % 2 == 0:
        return {"thinking_token_budget": 2}
    return {"chat_template_kwargs": {"enable_thinking": False}}


MSGS = [{"role": "user", "content": "Describe a pet"}]


def run(kind, fn, seeds=SEEDS):
    """fn(seed) -> (ok, detail); all seeds at once (the engine batches them)"""
    t0 = time.time()
    with ThreadPoolExecutor(50) as ex:
        results = list(ex.map(fn, range(seeds)))
    bad = [(s, d) for s, (ok, d) in enumerate(results) if not ok]
    check(not bad, "%s: %d/%d seeds valid (%.0f s)%s" % (
        kind, seeds - len(bad), seeds, time.time() - t0,
        "; first bad: seed %d %s" % (bad[0][0], bad[0][1][:300]) if bad else ""))


def parse_one(seed):
    try:
        r = client.chat.completions.parse(model=name, messages=MSGS, response_format=Pet,
                                          max_tokens=400, temperature=1.0, seed=seed,
                                          extra_body=thinking(seed))
    except Exception as e:  # noqa: BLE001 (a failing seed is reported, not raised)
        return False, repr(e)[:300]
    c = r.choices[0]
    return (isinstance(c.message.parsed, Pet) and c.finish_reason == "stop",
            "%s %r" % (c.finish_reason, c.message.content))


def stream_one(seed):
    try:
        with client.chat.completions.stream(model=name, messages=MSGS, response_format=Pet,
                                            max_tokens=400, temperature=1.0, seed=seed,
                                            extra_body=thinking(seed)) as s:
            deltas = "".join(e.delta for e in s if e.type == "content.delta")
            final = s.get_final_completion()
    except Exception as e:  # noqa: BLE001
        return False, repr(e)[:300]
    c = final.choices[0]
    return (isinstance(c.message.parsed, Pet) and deltas == c.message.content
            and c.finish_reason == "stop", "%s %r" % (c.finish_reason, c.message.content))


def create(seed, max_tokens, **kw):
    extra = dict(thinking(seed))
    extra.update(kw.pop("extra_body", {}))
    r = client.chat.completions.create(model=name, messages=MSGS, max_tokens=max_tokens,
                                       temperature=1.0, seed=seed, extra_body=extra, **kw)
    return r.choices[0]


# The fixture's random weights almost never pick a token that closes a free
# string (43 of its 3000 hold a quote), so an object of free strings could
# run for thousands of tokens.  A bias towards '"' keeps strings short; the
# output is still valid only through the mask (unconstrained, the bias would
# scatter quotes anywhere).
req = urllib.request.Request(base + "/tokenize", data=json.dumps({"prompt": '"'}).encode(),
                             headers={"Content-Type": "application/json"})
QUOTE = json.load(urllib.request.urlopen(req, timeout=60))["tokens"][-1]


def json_object_one(seed):
    c = create(seed, 1000, response_format={"type": "json_object"}, logit_bias={str(QUOTE): 8})
    try:
        ok = isinstance(json.loads(c.message.content), dict)
    except (TypeError, ValueError):
        ok = False
    return ok and c.finish_reason == "stop", "%s %r" % (c.finish_reason, c.message.content)


COLORS = ["red", "green", "blue", "dark (\"navy\")", "\u7d05\u8272"]


def choice_one(seed):
    c = create(seed, 100, extra_body={"structured_outputs": {"choice": COLORS}})
    return c.message.content in COLORS and c.finish_reason == "stop", repr(c.message.content)


PHONE = r"(\+\d{1,3} )?\(?\d{3}\)?[ -]?\d{3}-\d{4}( x\d{1,5})?"


def regex_one(seed):
    c = create(seed, 200, extra_body={"structured_outputs": {"regex": PHONE}})
    return (c.message.content is not None and re.fullmatch(PHONE, c.message.content, re.ASCII)
            is not None and c.finish_reason == "stop", repr(c.message.content))


SQL = ('root ::= "SELECT " cols " FROM " table (" WHERE " cond)?\n'
       'cols ::= col (", " col)*\ncol ::= "id" | "name" | "age"\n'
       'table ::= [a-z]{1,8}\ncond ::= col " = " [0-9]{1,3}')
SQL_RE = r"SELECT (id|name|age)(, (id|name|age))* FROM [a-z]{1,8}( WHERE (id|name|age) = [0-9]{1,3})?"


def grammar_one(seed):
    c = create(seed, 300, extra_body={"structured_outputs": {"grammar": SQL}})
    return (c.message.content is not None and re.fullmatch(SQL_RE, c.message.content) is not None
            and c.finish_reason == "stop", repr(c.message.content))


run("parse(response_format=Pet)", parse_one)
run("stream(response_format=Pet)", stream_one)
run("response_format json_object", json_object_one)
run("structured_outputs choice", choice_one)
run("structured_outputs regex", regex_one)
run("structured_outputs grammar", grammar_one, 20)

# refusals: 400s that say what to fix
for what, kw, words in [
    ("unknown response_format type", {"response_format": {"type": "yaml"}},
     "Input should be 'text', 'json_object' or 'json_schema'"),
    ("json_schema without its schema", {"response_format": {"type": "json_schema"}},
     "the 'json_schema' field must be provided"),
    ("unsupported regex construct", {"extra_body": {"structured_outputs": {"regex": r"(a)\1"}}},
     "unsupported regex construct: a backreference"),
    ("recursive grammar", {"extra_body": {"structured_outputs": {"grammar": 'root ::= "(" root ")" | "x"'}}},
     "refers back to itself"),
    ("two constraints", {"extra_body": {"structured_outputs": {"regex": "a", "choice": ["a"]}}},
     "You can only use one kind of constraints for structured outputs"),
]:
    try:
        client.chat.completions.create(model=name, messages=MSGS, max_tokens=5, **kw)
        check(False, what + ": a 400")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and words in str(e), "%s: 400 %s" % (what, str(e)[:160]))

print("structured: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
