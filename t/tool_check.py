#!/usr/bin/env python3
"""ad-hoc: the official openai client against ngx_glm with tools"""
import json, sys
import openai
base = sys.argv[1]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
name = client.models.list().data[0].id
passed = failed = 0
def check(cond, what):
    global passed, failed
    passed, failed = (passed + 1, failed) if cond else (passed, failed + 1)
    print(("ok    " if cond else "FAIL  ") + what)
tools = [{"type": "function", "function": {"name": "book_trip", "parameters": {"type": "object",
    "properties": {"city": {"type": "string", "maxLength": 8}, "nights": {"type": "integer"},
    "prefs": {"type": "object", "properties": {"seat": {"type": "string", "enum": ["aisle", "window"]}},
              "required": ["seat"]}}, "required": ["city", "prefs"]}}},
    {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}]
msgs = [{"role": "user", "content": "Book a trip"}]
for seed in range(5):
    kw = dict(model=name, messages=msgs, tools=tools, max_tokens=400, temperature=1.0, seed=seed,
              tool_choice={"type": "function", "function": {"name": "book_trip"}},
              extra_body={"thinking_token_budget": 3})
    r = client.chat.completions.create(**kw)
    m = r.choices[0].message
    a = json.loads(m.tool_calls[0].function.arguments)
    check(len(m.tool_calls) == 1 and m.tool_calls[0].function.name == "book_trip" and "city" in a
          and a["prefs"]["seat"] in ("aisle", "window") and r.usage.completion_tokens_details is not None,
          "seed %d named: %s %s reasoning_tokens=%s" % (seed, m.tool_calls[0].id, a,
                                                         r.usage.completion_tokens_details.reasoning_tokens))
    s = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw)
    calls, content, reasoning, finish = {}, "", "", None
    for ch in s:
        for c in ch.choices:
            d = c.delta
            content += d.content or ""
            reasoning += getattr(d, "reasoning_content", None) or ""
            for tc in d.tool_calls or []:
                e = calls.setdefault(tc.index, {"id": tc.id, "name": tc.function.name, "args": ""})
                e["args"] += tc.function.arguments or ""
            finish = c.finish_reason or finish
    check(len(calls) == 1 and json.loads(calls[0]["args"]) == a and calls[0]["name"] == "book_trip"
          and reasoning == (getattr(m, "reasoning_content", None) or "") and finish == r.choices[0].finish_reason,
          "seed %d streamed: same call, same reasoning (%d chars), finish %s" % (seed, len(reasoning), finish))
r = client.chat.completions.create(model=name, messages=msgs, tools=tools[:1], tool_choice="required",
                                   max_tokens=2000, seed=1, parallel_tool_calls=False,
                                   extra_body={"chat_template_kwargs": {"enable_thinking": False}})
check(r.choices[0].finish_reason == "tool_calls" and len(r.choices[0].message.tool_calls) == 1,
      "required, parallel_tool_calls false: finish_reason %s, %d calls" % (r.choices[0].finish_reason, len(r.choices[0].message.tool_calls or [])))
try:
    client.chat.completions.create(model=name, messages=msgs, tools=tools,
                                   tool_choice={"type": "function", "function": {"name": "nope"}})
    check(False, "unknown named tool is a 400")
except openai.BadRequestError as e:
    check(e.status_code == 400, "unknown named tool: 400 " + str(e)[:80])
print("tools: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
