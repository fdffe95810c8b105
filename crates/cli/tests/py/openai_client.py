"""Drive `augur serve` with the official `openai` client.

Usage: python3 openai_client.py BASE_URL API_KEY MODEL PROMPT MAX_TOKENS

Checks chat, streaming, stop sequences, usage, seeds, completions, models
and error mapping; exits non-zero on the first failure. The last line of
stdout is a JSON object with the greedy chat text for PROMPT, which the
Rust test compares with `augur run --json`.
"""

import json
import sys

import openai

BASE, KEY, MODEL, PROMPT, MAX_TOKENS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
client = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, timeout=120, max_retries=0)


def msgs(text):
    return [{"role": "user", "content": text}]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def chat_basic():
    r = client.chat.completions.create(model=MODEL, messages=msgs(PROMPT), max_tokens=MAX_TOKENS, temperature=0)
    check(r.object == "chat.completion", r.object)
    check(r.id.startswith("chatcmpl-"), r.id)
    check(r.model == MODEL, r.model)
    c = r.choices[0]
    check(c.index == 0 and c.message.role == "assistant", c)
    check(c.finish_reason in ("stop", "length"), c.finish_reason)
    check(len(c.message.content) > 0, "empty content")
    u = r.usage
    check(u.prompt_tokens > 0 and 0 < u.completion_tokens <= MAX_TOKENS, u)
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens, u)
    check(u.prompt_tokens_details.cached_tokens is not None, u)
    return c.message.content


def chat_stream(greedy_text):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=msgs(PROMPT),
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    check(len(chunks) >= 3, f"only {len(chunks)} chunks")
    first = chunks[0]
    check(first.object == "chat.completion.chunk", first.object)
    check(first.choices[0].delta.role == "assistant", first)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(text == greedy_text, f"streamed {text!r} != non-streamed {greedy_text!r}")
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    check(len(finals) == 1, f"{len(finals)} chunks with finish_reason")
    last = chunks[-1]
    check(last.choices == [] and last.usage is not None, last)
    check(last.usage.completion_tokens > 0, last.usage)
    check(all(c.usage is None for c in chunks[:-1]), "usage on a non-final chunk")


def stop_sequences():
    prompt = "Count from 1 to 9, separated by commas and spaces."
    r = client.chat.completions.create(model=MODEL, messages=msgs(prompt), max_tokens=40, temperature=0)
    full = r.choices[0].message.content
    check("5" in full, f"unexpected output {full!r}")
    r = client.chat.completions.create(model=MODEL, messages=msgs(prompt), max_tokens=40, temperature=0, stop=["5", "zzz"])
    cut = r.choices[0].message.content
    check(r.choices[0].finish_reason == "stop", r.choices[0].finish_reason)
    check("5" not in cut, f"stop string in output {cut!r}")
    check(full.startswith(cut), f"{cut!r} is not a prefix of {full!r}")
    s = client.chat.completions.create(
        model=MODEL, messages=msgs(prompt), max_tokens=40, temperature=0, stop="5", stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    check(streamed == cut, f"streamed {streamed!r} != {cut!r}")


def seeds():
    def sample(seed):
        r = client.chat.completions.create(
            model=MODEL, messages=msgs("Write a short poem about the sea."), max_tokens=12, temperature=0.9, seed=seed
        )
        return r.choices[0].message.content

    a, b = sample(1234), sample(1234)
    check(a == b, f"same seed, different text: {a!r} vs {b!r}")
    others = {sample(s) for s in (1, 2)}
    check(len(others | {a}) > 1, "different seeds all gave the same text")


def completions():
    r = client.completions.create(model=MODEL, prompt="def fibonacci(n):", max_tokens=16, temperature=0)
    check(r.object == "text_completion", r.object)
    check(len(r.choices[0].text) > 0 and r.usage.completion_tokens > 0, r)
    s = client.completions.create(model=MODEL, prompt="def fibonacci(n):", max_tokens=16, temperature=0, stream=True)
    text = "".join(c.choices[0].text for c in s if c.choices)
    check(text == r.choices[0].text, f"{text!r} != {r.choices[0].text!r}")


def models():
    ids = [m.id for m in client.models.list().data]
    check(ids == [MODEL], ids)
    check(client.models.retrieve(MODEL).id == MODEL, "retrieve")


def errors():
    def expect(exc, status, **kw):
        args = dict(model=MODEL, messages=msgs("hi"), max_tokens=4)
        args.update(kw)
        try:
            client.chat.completions.create(**args)
        except exc as e:
            check(e.status_code == status, f"{kw}: status {e.status_code}")
            check(isinstance(e.body, dict) and e.body.get("message"), f"{kw}: body {e.body}")
            return
        raise AssertionError(f"{kw}: no error")

    expect(openai.BadRequestError, 400, n=2)
    expect(openai.BadRequestError, 400, temperature=5)
    expect(openai.BadRequestError, 400, max_tokens=2**31)
    expect(openai.BadRequestError, 400, response_format={"type": "json_object"})
    expect(openai.BadRequestError, 400, logprobs=True)
    expect(openai.BadRequestError, 400, stop=["a", "b", "c", "d", "e"])
    expect(openai.NotFoundError, 404, model="no-such-model")
    bad = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY[:-1], timeout=30, max_retries=0)
    try:
        bad.models.list()
        raise AssertionError("a key prefix was accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, e.status_code)
    # Neutral values of fields OpenAI clients send must be accepted.
    r = client.chat.completions.create(
        model=MODEL,
        messages=msgs("hi"),
        max_tokens=4,
        temperature=0,
        n=1,
        presence_penalty=0,
        frequency_penalty=0,
        logit_bias={},
        logprobs=False,
        user="tester",
        store=False,
        metadata={},
    )
    check(r.choices[0].message.content is not None, r)


def main():
    greedy = chat_basic()
    for step in (lambda: chat_stream(greedy), stop_sequences, seeds, completions, models, errors):
        step()
    print(json.dumps({"greedy_text": greedy}))


if __name__ == "__main__":
    main()
