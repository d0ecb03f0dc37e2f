#!/usr/bin/env python3
"""openai_check.py BASE_URL: the official `openai` Python package against
ngx_glm (nginx + engine), streaming and not.  Prints "ok"/"FAIL" lines and
"openai: N passed, N failed"; exit 1 on any failure."""
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed, failed = (passed + 1, failed) if cond else (passed, failed + 1)
    print(("ok    " if cond else "FAIL  ") + what)


models = client.models.list()
name = models.data[0].id
check(len(models.data) >= 1 and models.data[0].object == "model", "models.list: " + name)

msgs = [{"role": "user", "content": "Say something about nginx."}]
r = client.chat.completions.create(model=name, messages=msgs, max_tokens=10, temperature=0)
text = r.choices[0].message.content
check(r.object == "chat.completion" and r.choices[0].finish_reason == "length"
      and r.usage.completion_tokens == 10 and isinstance(text, str) and text,
      "create(): %d tokens, finish_reason %s" % (r.usage.completion_tokens,
                                                 r.choices[0].finish_reason))

stream = client.chat.completions.create(model=name, messages=msgs, max_tokens=10, temperature=0,
                                        stream=True, stream_options={"include_usage": True})
parts, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        parts.append(c.delta.content or "")
        finish = c.finish_reason or finish
check("".join(parts) == text and finish == "length" and usage is not None
      and usage.completion_tokens == 10, "stream=True: same text, usage chunk, finish_reason")

r = client.chat.completions.create(model=name, messages=msgs, max_tokens=4, n=2,
                                   temperature=1.0, seed=5)
check(len(r.choices) == 2 and {c.index for c in r.choices} == {0, 1}, "n=2 gives two choices")

try:
    client.chat.completions.create(model="no-such-model", messages=msgs)
    check(False, "unknown model raises NotFoundError")
except openai.NotFoundError as e:
    check(e.status_code == 404 and "does not exist" in str(e), "unknown model: NotFoundError 404")

try:
    client.chat.completions.create(model=name, messages=msgs, max_tokens=10 ** 7)
    check(False, "too large max_tokens raises BadRequestError")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "maximum context length" in str(e),
          "max_tokens too large: BadRequestError 400")

print("openai: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
