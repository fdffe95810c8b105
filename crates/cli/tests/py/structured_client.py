"""Structured output and tool calls through the official `openai` client.

Usage: python3 structured_client.py BASE_URL API_KEY MODEL DATA.jsonl

Checks response_format (json_schema, json_object), tools with every
tool_choice, streamed tool calls (assembled from OpenAI-style deltas and
compared with the non-streamed answer), a conversation carrying earlier calls
and their results, and parallel_tool_calls=false. Then, for every line of
DATA.jsonl (a prompt with a JSON schema, or with tools), the constrained
output must parse and validate against its schema (the `jsonschema`
package). Prints one JSON line per data row and exits non-zero on any
failure, after running every row.
"""

import json
import sys
import time

import jsonschema
import openai

BASE, KEY, MODEL, DATA = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, timeout=600, max_retries=0)
MAX_TOKENS = 200

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The current time"}}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def msgs(text):
    return [{"role": "user", "content": text}]


def validate(instance, schema):
    jsonschema.validators.validator_for(schema)(schema).validate(instance)


def chat(**kw):
    args = dict(model=MODEL, max_tokens=MAX_TOKENS, temperature=0)
    args.update(kw)
    return client.chat.completions.create(**args)


def check_calls(choice, tools, what):
    """The message's tool calls, each checked against its tool; returns them."""
    check(choice.finish_reason == "tool_calls", f"{what}: finish_reason {choice.finish_reason}")
    calls = choice.message.tool_calls or []
    check(len(calls) >= 1, f"{what}: no tool calls: {choice.message}")
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    for c in calls:
        check(c.type == "function" and c.id.startswith("call_"), f"{what}: {c}")
        check(c.function.name in by_name, f"{what}: unknown tool {c.function.name}")
        args = json.loads(c.function.arguments)
        validate(args, by_name[c.function.name].get("parameters", {"type": "object"}))
    return calls


def response_formats():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 30}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    r = chat(messages=msgs("Invent a person. Reply in JSON."), response_format=fmt)
    c = r.choices[0]
    check(c.finish_reason == "stop", c.finish_reason)
    validate(json.loads(c.message.content), schema)
    r = chat(messages=msgs("List two fruits as a JSON object."), response_format={"type": "json_object"})
    check(isinstance(json.loads(r.choices[0].message.content), dict), r.choices[0].message.content)
    s = chat(messages=msgs("Invent a person. Reply in JSON."), response_format=fmt, stream=True)
    streamed = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
    check(streamed == c.message.content, f"streamed {streamed!r} != {c.message.content!r}")


def tool_choices():
    tools = [WEATHER, TIME]
    r = chat(messages=msgs("What's the weather like in Paris?"), tools=tools, tool_choice="required")
    calls = check_calls(r.choices[0], tools, "required")
    named = {"type": "function", "function": {"name": "get_time"}}
    r = chat(messages=msgs("What's the weather like in Paris?"), tools=tools, tool_choice=named)
    calls = check_calls(r.choices[0], tools, "named")
    check(len(calls) == 1 and calls[0].function.name == "get_time", calls)
    r = chat(messages=msgs("Get the weather in Paris and in Rome."), tools=tools, tool_choice="required",
             parallel_tool_calls=False)
    check(len(check_calls(r.choices[0], tools, "parallel off")) == 1, r.choices[0].message)
    r = chat(messages=msgs("What's the weather like in Paris?"), tools=tools, tool_choice="none", max_tokens=40)
    check(not r.choices[0].message.tool_calls and r.choices[0].message.content, r.choices[0].message)
    check(r.choices[0].finish_reason in ("stop", "length"), r.choices[0].finish_reason)
    r = chat(messages=msgs("Use a tool to get the weather in Berlin."), tools=tools)
    check_calls(r.choices[0], tools, "auto")


def streamed_tool_calls():
    tools = [WEATHER, TIME]
    prompt = msgs("Get the weather in Paris and in Rome.")
    full = chat(messages=prompt, tools=tools, tool_choice="required")
    want = check_calls(full.choices[0], tools, "non-streamed")
    chunks = list(chat(messages=prompt, tools=tools, tool_choice="required", stream=True))
    calls = {}
    finishes = []
    for ch in chunks:
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        if ch.choices[0].finish_reason:
            finishes.append(ch.choices[0].finish_reason)
        for tc in d.tool_calls or []:
            if tc.index not in calls:
                # OpenAI's layout: the first delta of a call has id, type and name.
                check(tc.id and tc.id.startswith("call_") and tc.type == "function", tc)
                check(tc.function.name and tc.function.arguments == "", tc)
                calls[tc.index] = {"name": tc.function.name, "arguments": ""}
            else:
                check(tc.id is None and tc.function.name is None, f"repeated header {tc}")
                calls[tc.index]["arguments"] += tc.function.arguments or ""
    check(finishes == ["tool_calls"], finishes)
    got = [(calls[i]["name"], calls[i]["arguments"]) for i in sorted(calls)]
    check(sorted(calls) == list(range(len(calls))), f"indices {sorted(calls)}")
    check(got == [(c.function.name, c.function.arguments) for c in want], f"streamed {got} != {want}")


def conversation_with_results():
    tools = [WEATHER]
    history = msgs("What's the weather in Paris?") + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"celsius": 21, "sky": "sunny"})},
    ]
    # "none": answer from the result (a small model would call again).
    r = chat(messages=history, tools=tools, tool_choice="none", max_tokens=40)
    c = r.choices[0]
    text = c.message.content or ""
    check("21" in text or "sunny" in text.lower(), f"the answer ignores the tool result: {c.message}")


def errors():
    def expect(param, **kw):
        try:
            chat(messages=msgs("Reply in JSON."), max_tokens=4, **kw)
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.body.get("param") == param, f"{kw}: {e.status_code} {e.body}")
            return
        raise AssertionError(f"{kw}: accepted")

    contradiction = {"type": "array", "minItems": 10, "maxItems": 2}
    expect("response_format", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": contradiction}})
    expect("tools[0].function.name", tools=[{"type": "function", "function": {"name": "bad name"}}])
    expect("tool_choice", tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})


def dataset():
    failures = 0
    for line in open(DATA):
        row = json.loads(line)
        start = time.time()
        try:
            output = run_row(row)
            ok, err = True, None
        except Exception as e:  # one bad row must not hide the others
            ok, output, err = False, None, f"{type(e).__name__}: {e}"
            failures += 1
        print(json.dumps({"id": row["id"], "ok": ok, "error": err, "output": output,
                          "seconds": round(time.time() - start, 2)}), flush=True)
    return failures


def run_row(row):
    if "schema" in row:
        fmt = {"type": "json_schema", "json_schema": {"name": row["id"], "schema": row["schema"]}}
        c = chat(messages=msgs(row["prompt"]), response_format=fmt).choices[0]
        check(c.finish_reason == "stop", f"finish_reason {c.finish_reason}: {c.message.content!r}")
        validate(json.loads(c.message.content), row["schema"])
        return c.message.content
    c = chat(messages=msgs(row["prompt"]), tools=row["tools"], tool_choice=row["tool_choice"]).choices[0]
    calls = check_calls(c, row["tools"], row["id"])
    choice = row["tool_choice"]
    if isinstance(choice, dict):
        check([x.function.name for x in calls] == [choice["function"]["name"]], calls)
    return [{"name": x.function.name, "arguments": x.function.arguments} for x in calls]


def main():
    steps = [response_formats, tool_choices, streamed_tool_calls, conversation_with_results, errors]
    failed = []
    for step in steps:
        try:
            step()
        except Exception as e:
            failed.append(step.__name__)
            print(f"FAILED {step.__name__}: {type(e).__name__}: {e}", flush=True)
    bad_rows = dataset()
    print(json.dumps({"failed_checks": failed, "invalid_rows": bad_rows}), flush=True)
    sys.exit(1 if failed or bad_rows else 0)


if __name__ == "__main__":
    main()
