#!/usr/bin/env python3
"""
bench_templates.py: the jinja2 baseline for t/bench/bench_templates.sh.

Compiles the GLM-4.5 chat template of t/fixtures/glm45-tiny once, in an
environment built like transformers' (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson /
raise_exception / strftime_now), prepares the variables of
t/bench/bench_templates_request.json once (None-valued message keys dropped,
reasoning aliased, as apply_chat_template does), then times
template.render(...) alone for about --seconds.  Our side does more per
render (it also parses the request JSON and builds the variables), so the
ratio is conservative.

Prints:  jinja2: <us> us per render (<bytes> bytes)
Needs only jinja2 (>= 3.1).
"""
import argparse
import json
import os
import time
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def prepare(req):
    msgs = []
    for m in req["messages"]:
        m = {k: v for k, v in m.items() if v is not None}
        r = next((m[k] for k in ("reasoning_content", "thinking", "reasoning")
                  if m.get(k) is not None), None)
        if r is not None:
            m = {"thinking": r, **m, "reasoning_content": r}
        msgs.append(m)
    return dict(messages=msgs, tools=req.get("tools"), documents=None,
                add_generation_prompt=req.get("add_generation_prompt", True),
                eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    with open(os.path.join(ROOT, "t/fixtures/glm45-tiny/chat_template.jinja"), encoding="utf-8") as f:
        tpl = make_env().from_string(f.read())
    with open(os.path.join(HERE, "bench_templates_request.json"), encoding="utf-8") as f:
        variables = prepare(json.load(f))
    out = ""
    for _ in range(20):
        out = tpl.render(**variables)
    n = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(20):
            out = tpl.render(**variables)
        n += 20
        t1 = time.perf_counter()
        if t1 - t0 >= args.seconds:
            break
    print("jinja2: %.3f us per render (%d bytes)" % ((t1 - t0) / n * 1e6, len(out.encode("utf-8"))))


if __name__ == "__main__":
    main()
