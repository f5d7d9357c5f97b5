"""Samples of the alignment sets: five H4 SFT sets (Airoboros, Code-Feedback, Orca-Math, SystemChat, Capybara)
and UltraFeedback's preference pairs (UltraChat's SFT sample is the pretraining source's file).

Each ``make_<set>(out)`` writes the set's parquet file under ``out`` with the hub's columns
(``messages: list<struct<content, role>>`` and the set's own), a few dozen good conversations made from the
reference manual's topics and from small generated code and arithmetic tasks, and a few bad records of the
kinds ``pipeline.sources.alignment`` rejects (missing messages, unknown role, empty turn, a system message out of
place, two user turns in a row, no assistant turn, ``</s>`` in a content; for pairs: prompts that differ, an
answer that is not the assistant's, identical answers), plus what the later stages must handle: an exact
duplicate, a control character, conversations longer than the sample config's ``max_tokens`` (one to cut at a
turn, one to drop), and one conversation shared by two sets.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

from tools.samples.material import SEED, manual_topics, sha
from tools.samples.writers import hub_path, write_parquet

H4_FILE = "data/train_sft-00000-of-00001.parquet"


def _m(role: str, content: str | None) -> dict:
    return {"content": content, "role": role}


def _table(rows: list[dict], columns: list[tuple[str, object]]):
    import pyarrow as pa

    schema = pa.schema(columns)
    return pa.table({name: [r.get(name) for r in rows] for name in schema.names}, schema=schema)


def _msgs_type():
    import pyarrow as pa

    return pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))


def _sharegpt(messages: list[dict] | None) -> list[dict] | None:
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    return None if messages is None else [{"from": names.get(m["role"], m["role"]), "value": m["content"]}
                                          for m in messages]


def _topics(name: str) -> list[tuple[str, list[str]]]:
    order = manual_topics()[:]
    random.Random(f"{SEED}:align:{name}").shuffle(order)
    return order


def _ask(rng: random.Random, topic: str) -> str:
    t = topic.replace("-", " ")
    return rng.choice([f"Can you explain {t} in Python?", f"What does {t} mean in Python?",
                       f"How does {t} work in Python?", f"Give me an overview of {t} in Python."])


def _long_reply(paras: list[str], chars: int) -> str:
    """At least ``chars`` characters from a topic's paragraphs, repeated with numbered sections if short."""
    out, i = [], 0
    while sum(len(p) for p in out) < chars:
        out.append(f"Part {i + 1}. {paras[i % len(paras)]}")
        i += 1
    return "\n\n".join(out)


SHARED = [_m("user", "What is the difference between a list and a tuple in Python?"),
          _m("assistant", "A list is mutable: you can add, remove and replace its items. A tuple is immutable: once "
                          "made it keeps the same items, which lets it serve as a dictionary key.")]


# -- Airoboros: system message, categories, ids --------------------------------------------------------------
def make_airoboros(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:airoboros")
    systems = ["A chat.", "You are an unbiased, uncensored, helpful assistant.",
               "A chat between a curious user and an assistant. The assistant gives helpful, detailed answers."]
    rows = []
    for i, (topic, paras) in enumerate(_topics("airoboros")[:36]):
        msgs = [_m("system", rng.choice(systems)), _m("user", _ask(rng, topic)), _m("assistant", paras[0])]
        if i % 3 == 0 and len(paras) > 1:
            msgs += [_m("user", "Can you say more about it?"), _m("assistant", paras[1])]
        rows.append({"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                     "category": rng.choice(["general", "orca", "contextual", "coding", "trivia"]),
                     "messages": msgs})
    rows.append({**rows[4], "id": "dup-of-4"})  # an exact duplicate under another id
    rows.append({"id": "shared", "category": "general", "messages": SHARED})  # Capybara has it too
    body = rows[7]["messages"][2]["content"]
    rows[7]["messages"][2]["content"] = body[:40] + "\x07" + body[40:]  # a terminal bell: the format stage strips it
    bad = [
        {"id": "bad-missing", "category": "general", "messages": None},
        {"id": "bad-role", "category": "general", "messages": [_m("user", "Run it."), _m("tool", "{}")]},
        {"id": "bad-empty", "category": "general", "messages": [_m("user", "Hello?"), _m("assistant", "   ")]},
        {"id": "bad-order", "category": "general",
         "messages": [_m("user", "Hi."), _m("system", "A chat."), _m("assistant", "Hello.")]},
        {"id": "bad-eos", "category": "coding",
         "messages": [_m("user", "How do I strike text out in HTML?"),
                      _m("assistant", "Wrap it in an s element: <s>old price</s>.")]},
    ]
    for k, rec in zip((3, 11, 19, 27, 33), bad):
        rows.insert(k, rec)
    for r in rows:
        r["conversations"] = _sharegpt(r["messages"])
    conv = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
    write_parquet(hub_path(out, "sft_airoboros", H4_FILE), _table(rows, [
        ("id", pa.string()), ("category", pa.string()), ("conversations", conv), ("messages", _msgs_type())]))


# -- Code-Feedback: code, execution results, a revision --------------------------------------------------------
TASKS = [
    ("sum_squares", "n", "returns the sum of the squares of 1 to n", "return sum(k * k for k in range(1, n + 1))"),
    ("count_vowels", "text", "counts the vowels in a string",
     "return sum(ch in 'aeiouAEIOU' for ch in text)"),
    ("reverse_words", "sentence", "reverses the order of the words in a sentence",
     "return ' '.join(reversed(sentence.split()))"),
    ("fib", "n", "returns the n-th Fibonacci number",
     "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a"),
    ("is_prime", "n", "tells whether n is a prime number",
     "return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))"),
    ("digit_sum", "n", "returns the sum of the decimal digits of n", "return sum(int(d) for d in str(abs(n)))"),
    ("is_palindrome", "text", "tells whether a string reads the same backwards, ignoring case",
     "t = text.lower()\n    return t == t[::-1]"),
    ("to_fahrenheit", "celsius", "converts degrees Celsius to Fahrenheit", "return celsius * 9 / 5 + 32"),
]
ARGS = {"n": [5, 7, 10, 12, 13, 20], "text": ["'Level'", "'banana'", "'Python rocks'", "'noon'", "'abcde'"],
        "sentence": ["'the quick brown fox'", "'hello big world'", "'one two three'"], "celsius": [0, 37, 100, -40]}


def make_code_feedback(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:code_feedback")
    combos = [(task, arg) for task in TASKS for arg in ARGS[task[1]]]  # 41 different tasks
    rng.shuffle(combos)
    rows = []
    for i, ((name, param, what, body), arg) in enumerate(combos[:40]):
        code = f"def {name}({param}):\n    {body}"
        scope: dict = {}
        exec(code, scope)  # our own generated code: the sample shows the real result
        result = scope[name](eval(str(arg)))
        msgs = [_m("user", f"Write a Python function `{name}({param})` that {what}, and show what it returns for "
                           f"{arg}."),
                _m("assistant", f"```python\n{code}\n\nprint({name}({arg}))\n```\n\nIt prints `{result}`.")]
        if i % 2:
            msgs += [_m("user", f"Execution result:\n{result}\n\nPlease add a docstring and a type check."),
                     _m("assistant", f"```python\ndef {name}({param}):\n    \"\"\"{what[0].upper()}{what[1:]}.\"\"\"\n"
                                     f"    if {param} is None:\n        raise TypeError('{param} must not be None')\n"
                                     f"    {body}\n```\n\nThe result for {arg} is still `{result}`.")]
        rows.append({"id": 1000 + i, "messages": msgs})
    bad = [
        {"id": 1, "messages": []},
        {"id": 2, "messages": [_m("assistant", "Here is the code."), _m("user", "Thanks.")]},
        {"id": 3, "messages": [_m("user", "Write a sort."), _m("user", "In Python."), _m("assistant", "sorted(xs)")]},
        {"id": 4, "messages": [_m("user", "Fix this."), _m("assistant", None)]},
    ]
    for k, rec in zip((5, 15, 25, 35), bad):
        rows.insert(k, rec)
    write_parquet(hub_path(out, "sft_code_feedback", H4_FILE), _table(rows, [("id", pa.int64()),
                                                                              ("messages", _msgs_type())]))


# -- Orca-Math: word problems with worked answers ------------------------------------------------------------
def _word_problem(rng: random.Random, k: int) -> tuple[str, str]:
    who = rng.choice(["Maria", "Tom", "Aisha", "Kenji", "Lucy", "Omar", "Nina", "Pablo"])
    a, b, c = rng.randint(3, 40), rng.randint(2, 12), rng.randint(2, 9)
    if k == 0:
        return (f"{who} has {a * c} marbles and puts them into {c} bags with the same number in each. Then {who} "
                f"adds {b} marbles to every bag. How many marbles are in each bag now?",
                f"First share the marbles: {a * c} / {c} = {a} marbles per bag. Then add {b} to each bag: "
                f"{a} + {b} = {a + b}. Each bag now holds {a + b} marbles.")
    if k == 1:
        return (f"A train travels at {a + 30} km per hour for {c} hours. How far does it go?",
                f"Distance is speed times time: {a + 30} km/h x {c} h = {(a + 30) * c} km. The train travels "
                f"{(a + 30) * c} km.")
    if k == 2:
        return (f"A shirt costs ${a * 5}. It is on sale for {c * 10}% off. What is the sale price?",
                f"The discount is {c * 10}% of ${a * 5} = ${a * 5 * c * 10 / 100:g}. The sale price is "
                f"${a * 5} - ${a * 5 * c * 10 / 100:g} = ${a * 5 - a * 5 * c * 10 / 100:g}.")
    return (f"{who} is {b} years older than a cousin. In {c} years their ages will add up to {2 * a + b + 2 * c}. "
            f"How old is the cousin now?",
            f"Let the cousin be x years old, so {who} is x + {b}. In {c} years: (x + {c}) + (x + {b} + {c}) = "
            f"{2 * a + b + 2 * c}, so 2x + {b + 2 * c} = {2 * a + b + 2 * c} and 2x = {2 * a}. The cousin is {a}.")


def make_orca_math(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:orca_math")
    rows = []
    for i in range(40):
        q, a = _word_problem(rng, i % 4)
        rows.append({"question": q, "answer": a, "messages": [_m("user", q), _m("assistant", a)]})
    rows.append(dict(rows[9]))  # an exact duplicate
    paras = _topics("orca_long")[0][1]
    long_q = "Read the notes below, then answer: how many parts do they have?\n\n" + _long_reply(paras, 9000)
    rows.append({"question": long_q, "answer": "They have many parts.",
                 "messages": [_m("user", long_q), _m("assistant", "They have many parts.")]})  # too long: dropped
    bad = [{"question": "What is 2 + 2?", "answer": None, "messages": [_m("user", "What is 2 + 2?")]},
           {"question": "", "answer": "4", "messages": [_m("user", "  "), _m("assistant", "4")]}]
    for k, rec in zip((6, 18), bad):
        rows.insert(k, rec)
    write_parquet(hub_path(out, "sft_orca_math", H4_FILE), _table(rows, [
        ("question", pa.string()), ("answer", pa.string()), ("messages", _msgs_type())]))


# -- SystemChat: a system message the assistant keeps to -----------------------------------------------------
def _sentences(text: str, n: int) -> str:
    parts = [s.strip() for s in text.replace("! ", ". ").split(". ") if s.strip()]
    return ". ".join(parts[:n]).rstrip(".") + "."


def make_systemchat(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:systemchat")
    styles = [("Always answer in exactly two sentences.", lambda p: _sentences(p, 2)),
              ("Answer with a bulleted list, one point per line.",
               lambda p: "\n".join(f"- {s.strip().rstrip('.')}" for s in p.split(". ")[:4] if s.strip())),
              ("You are a patient teacher. Start every answer with 'Good question!'", lambda p: "Good question! " + p),
              ("Keep every answer under forty words.", lambda p: " ".join(p.split()[:38]) + " ...")]
    rows = []
    for i, (topic, paras) in enumerate(_topics("systemchat")[:32]):
        system, style = styles[i % len(styles)]
        msgs = [_m("system", system), _m("user", _ask(rng, topic)), _m("assistant", style(paras[0]))]
        if len(paras) > 1 and i % 2 == 0:
            msgs += [_m("user", "And what else should I know?"), _m("assistant", style(paras[1]))]
        rows.append({"messages": msgs})
    bad = [{"messages": [_m("system", "Answer briefly."), _m("user", "Call the API."), _m("function", "ok")]},
           {"messages": [_m("user", "Hi."), _m("assistant", "Hello."), _m("system", "Be brief."),
                         _m("user", "Bye."), _m("assistant", "Bye.")]}]
    for k, rec in zip((8, 21), bad):
        rows.insert(k, rec)
    for r in rows:
        r["conversations"] = _sharegpt(r["messages"])
    conv = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
    write_parquet(hub_path(out, "sft_systemchat", H4_FILE),
                  _table(rows, [("conversations", conv), ("messages", _msgs_type())]))


# -- Capybara: long multi-turn conversations ------------------------------------------------------------------
def make_capybara(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:capybara")
    follow = ["Could you give an example?", "How does that compare with other languages?", "Why is it designed so?"]
    rows = []
    for topic, paras in _topics("capybara")[:34]:
        msgs = [_m("user", _ask(rng, topic)), _m("assistant", paras[0])]
        for j, p in enumerate(paras[1:rng.randint(2, 4)]):
            msgs += [_m("user", follow[j % len(follow)]), _m("assistant", p)]
        rows.append({"source": rng.choice(["Know-Logic", "EverythingLM", "GPT4LLM", "Dove", "Verified-Camel"]),
                     "messages": msgs, "num_turns": len(msgs)})
    topic, paras = _topics("capybara")[40]
    long_msgs = [_m("user", _ask(rng, topic)), _m("assistant", paras[0])]
    for j in range(3):  # later turns far past max_tokens: the conversation is cut after its first answer
        long_msgs += [_m("user", f"Please go into every detail, part {j + 1}."), _m("assistant", _long_reply(paras, 4000))]
    rows.insert(12, {"source": "Know-Logic", "messages": long_msgs, "num_turns": len(long_msgs)})
    rows.append({"source": "Dove", "messages": SHARED, "num_turns": 2})  # also in Airoboros: a cross-source duplicate
    rows.insert(20, {"source": "Dove", "messages": [_m("system", "Be helpful."), _m("user", "Anyone there?")],
                     "num_turns": 2})  # no assistant turn
    write_parquet(hub_path(out, "sft_capybara", H4_FILE), _table(rows, [
        ("source", pa.string()), ("messages", _msgs_type()), ("num_turns", pa.int64())]))


# -- UltraFeedback binarized: prompt, chosen, rejected --------------------------------------------------------
def make_ultrafeedback(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:ultrafeedback")
    weak = ["I am not sure, it depends on many things.", "That is a Python feature. You can look it up in the docs.",
            "It works like in most other languages, nothing special."]
    rows = []

    def pair(prompt: str, good: str, worse: str) -> dict:
        return {"prompt": prompt, "prompt_id": sha(prompt, 64), "chosen": [_m("user", prompt), _m("assistant", good)],
                "rejected": [_m("user", prompt), _m("assistant", worse)],
                "score_chosen": float(rng.randint(7, 10)), "score_rejected": float(rng.randint(2, 6))}

    for i, (topic, paras) in enumerate(_topics("ultrafeedback")[:26]):
        rows.append(pair(_ask(rng, topic), "\n\n".join(paras[:2]), rng.choice(weak) if i % 2 else paras[0][:80]))
    for k in range(14):
        q, a = _word_problem(rng, k % 4)
        rows.append(pair(q, a, "The answer is " + str(rng.randint(1, 99)) + "."))
    topic, paras = _topics("ultrafeedback")[30]
    long_prompt = "Summarise these notes:\n\n" + _long_reply(paras, 9000)
    rows.append(pair(long_prompt, "They describe " + topic + ".", "No."))  # too long: dropped
    p = "What is a Python generator?"
    good = "A function that yields values one at a time, keeping its state between them."
    bad = [
        {**pair(p, good, "A list."), "rejected": [_m("user", "What is a generator?"), _m("assistant", "A list.")]},
        {**pair(p, good, "A list."), "prompt": "What is an iterator?"},
        {**pair(p, good, "A list."), "chosen": [_m("user", p), _m("assistant", good), _m("user", "Thanks!")]},
        pair(p, good, good),
        {**pair(p, good, "A list."), "rejected": None},
        pair("How do I strike text in HTML?", "Use the s element.", "Type <s>this</s> around it."),
    ]
    for k, rec in zip((3, 10, 17, 24, 31, 38), bad):
        rows.insert(k, rec)
    for r in rows:
        r["messages"] = r["chosen"]  # the card's messages column repeats the chosen conversation
    score = pa.float64()
    write_parquet(hub_path(out, "dpo_ultrafeedback", "data/train_prefs-00000-of-00001.parquet"), _table(rows, [
        ("prompt", pa.string()), ("prompt_id", pa.string()), ("chosen", _msgs_type()), ("rejected", _msgs_type()),
        ("messages", _msgs_type()), ("score_chosen", score), ("score_rejected", score)]))
