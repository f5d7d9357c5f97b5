"""Samples of the instruction, chat and math sets (OpenHermes, Code-290k, UltraChat, OASST1 and its
Octopack cut, Magicoder, Evol-CodeAlpaca, CommitPackFT, xP3x, StackMathQA, TemplateGSM).

Each ``make_<set>(out)`` writes that set's files under ``out`` (a mirror root), with malformed records of
the kinds each set's readers reject (wrong types, missing fields, invalid UTF-8, cut lines, unknown roles).
"""

from __future__ import annotations

import ast
import hashlib
import random
from pathlib import Path

from tools.samples.material import (NON_ENGLISH, PARALLEL, PROJECTS, SEED, USERS, manual_topics, prose_shares, sha,
                                    stdlib_docs)
from tools.samples.writers import hub_path, write_json_array, write_jsonl, write_parquet


def _func_share(name: str) -> list[dict]:
    """Documented stdlib functions dealt to the code instruction sets without overlap."""
    _, funcs = stdlib_docs()
    names = ["magicoder_oss", "magicoder_evol", "evol_codealpaca", "code290k_sharegpt", "commitpackft", "openhermes"]
    order = funcs[:]
    random.Random(f"{SEED}:funcs").shuffle(order)
    return order[names.index(name)::len(names)]


def _code_task(f: dict) -> tuple[str, str]:
    sig = f"{f['name']}({', '.join(f['args'])})"
    s = f["summary"].rstrip(".")
    ask = f"Write a Python function `{sig}`. {s[:1].upper()}{s[1:]}."
    answer = (f"Here is an implementation, in the style of the standard library's `{f['module']}` module:\n\n"
              f"```python\n{f['code']}\n```\n\n{f['summary']}")
    return ask, answer


def _topic_qa(rng: random.Random, k: int) -> list[tuple[str, str]]:
    topics = manual_topics()
    out = []
    for topic, paras in rng.sample(topics, min(k, len(topics))):
        name = topic.replace("-", " ")
        out.append((rng.choice([f"Can you explain {name} in Python?", f"What is {name} in Python?",
                                f"How does {name} work in Python?"]),
                    "\n\n".join(paras[: rng.randint(1, 3)])))
    return out


def make_openhermes(out: Path) -> None:
    rng = random.Random(f"{SEED}:openhermes")
    recs = []
    for f in _func_share("openhermes")[:25]:
        ask, answer = _code_task(f)
        recs.append({"conversations": [{"from": "human", "value": ask, "weight": None},
                                       {"from": "gpt", "value": answer, "weight": None}],
                     "source": "glaive-code-assist", "category": None, "id": None})
    for q, a in _topic_qa(rng, 25):
        conv = [{"from": "human", "value": q, "weight": None}, {"from": "gpt", "value": a, "weight": None}]
        if rng.random() < 0.4:
            conv.insert(0, {"from": "system", "value": "You are a helpful assistant who explains things clearly.",
                            "weight": None})
        recs.append({"conversations": conv, "source": "CamelAI", "category": None, "id": None})
    rng.shuffle(recs)
    recs.insert(4, {"conversations": "human: hi gpt: hello", "source": "broken", "id": None})  # wrong type
    recs.insert(9, {"conversations": [{"from": "tool", "value": "{}"}], "source": "broken", "id": None})
    recs.insert(13, "not an object")
    write_json_array(hub_path(out, "openhermes", "openhermes2_5.json"), recs)


def make_code290k(out: Path) -> None:
    rng = random.Random(f"{SEED}:code290k")
    recs = []
    for f in _func_share("code290k_sharegpt")[:30]:
        ask, answer = _code_task(f)
        recs.append({"id": str(rng.randrange(10 ** 6)), "conversations": [{"from": "human", "value": ask},
                                                                          {"from": "gpt", "value": answer}]})
    recs.append(dict(recs[0]))  # exact duplicate
    recs.insert(6, {"id": "x", "conversations": [{"from": "human"}, {"from": "gpt", "value": "..."}]})
    write_json_array(hub_path(out, "code290k_sharegpt", "Code-290k-ShareGPT.json"), recs)


def make_ultrachat(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:ultrachat")
    qa = _topic_qa(rng, 60)
    rows = []
    for i in range(0, len(qa) - 1, 2):
        (q1, a1), (q2, a2) = qa[i], qa[i + 1]
        msgs = [{"content": q1, "role": "user"}, {"content": a1, "role": "assistant"},
                {"content": "Thanks. " + q2, "role": "user"}, {"content": a2, "role": "assistant"}]
        rows.append({"prompt": q1, "prompt_id": hashlib.sha256(q1.encode()).hexdigest(), "messages": msgs})
    schema = pa.schema([("prompt", pa.string()), ("prompt_id", pa.string()),
                        ("messages", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())])))])
    t = pa.table({k: [r[k] for r in rows] for k in schema.names}, schema=schema)
    write_parquet(hub_path(out, "ultrachat", "data/train_sft-00000-of-00003-a3ecf92756993583.parquet"), t)


def make_oasst(out: Path) -> None:
    import uuid

    import pyarrow as pa

    rng = random.Random(f"{SEED}:oasst")
    rows = []

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def msg(tree, parent, role, text, lang="en", rank=None, deleted=False, review=True):
        m = {"message_id": uid(), "parent_id": parent, "user_id": uid(),
             "created_date": f"2023-0{rng.randint(2, 4)}-{rng.randint(10, 28)}T12:{rng.randint(10, 59)}:00+00:00",
             "text": text, "role": role, "lang": lang, "review_count": 3, "review_result": review,
             "deleted": deleted, "rank": rank, "synthetic": False, "model_name": None,
             "message_tree_id": tree, "tree_state": "ready_for_export"}
        rows.append(m)
        return m["message_id"]

    for q, a in _topic_qa(rng, 30):
        tree = uid()
        root = msg(tree, None, "prompter", q)
        best = msg(tree, root, "assistant", a, rank=0)
        msg(tree, root, "assistant", a.split("\n\n")[0][:200], rank=1)
        if rng.random() < 0.5:
            follow = msg(tree, best, "prompter", "Thanks! Could you show a short example?")
            msg(tree, follow, "assistant", "Sure. Open the interactive interpreter and try it on a small "
                                           "input; the reference manual's examples are a good start.", rank=0)
        if rng.random() < 0.2:
            msg(tree, root, "assistant", "I don't know.", rank=None, deleted=True)
    for lang, prompt in (("de", "Was kann man am Wochenende in der Stadt unternehmen?"),
                         ("es", "¿Qué consejos tienes para aprender un idioma nuevo?")):
        tree = uid()
        root = msg(tree, None, "prompter", prompt, lang=lang)
        msg(tree, root, "assistant", NON_ENGLISH[lang][rng.randrange(3)], lang=lang, rank=0)
    tree = uid()
    msg(tree, None, "prompter", "Is anyone there?")  # a prompt nobody answered: no conversation
    tree = uid()
    msg(tree, None, "prompter", "placeholder")
    rows[-1]["text"] = None  # a message whose text is missing
    schema = pa.schema([("message_id", pa.string()), ("parent_id", pa.string()), ("user_id", pa.string()),
                        ("created_date", pa.string()), ("text", pa.string()), ("role", pa.string()),
                        ("lang", pa.string()), ("review_count", pa.int32()), ("review_result", pa.bool_()),
                        ("deleted", pa.bool_()), ("rank", pa.float64()), ("synthetic", pa.bool_()),
                        ("model_name", pa.string()), ("message_tree_id", pa.string()), ("tree_state", pa.string())])
    t = pa.table({k: [r[k] for r in rows] for k in schema.names}, schema=schema)
    write_parquet(hub_path(out, "oasst", "data/train-00000-of-00001-b42a775f407cee45.parquet"), t)


def make_octopack(out: Path) -> None:
    rng = random.Random(f"{SEED}:octopack")
    recs = [{"conversations": [{"role": "user", "text": q}, {"role": "assistant", "text": a}]}
            for q, a in _topic_qa(rng, 35)]
    recs.insert(3, b'{"conversations": [{"role": "user", "text": "half a line"\n')
    recs.insert(8, {"conversations": []})
    write_jsonl(hub_path(out, "oasst_octopack", "oasst_octopack.jsonl"), recs)


def _pair_records(name: str, keys: tuple[str, str], n: int, extra=None) -> list:
    rng = random.Random(f"{SEED}:{name}")
    recs = []
    for i, f in enumerate(_func_share(name)[:n]):
        ask, answer = _code_task(f)
        rec = {keys[0]: ask, keys[1]: answer}
        if extra:
            rec.update(extra(i, f, rng))
        recs.append(rec)
    return recs


def make_magicoder(out: Path) -> None:
    oss = _pair_records("magicoder_oss", ("problem", "solution"), 30, lambda i, f, rng: {
        "lang": "python", "raw_index": rng.randrange(10 ** 5), "index": i, "seed": f["code"].split("\n", 1)[0],
        "openai_fingerprint": "fp_" + sha(f["name"], 10)})
    oss.insert(5, {"lang": "python", "index": 999, "problem": "Write a function.", "solution": ["not", "a", "string"]})
    write_jsonl(hub_path(out, "magicoder_oss", "data-oss_instruct-decontaminated.jsonl"), oss)
    evol = _pair_records("magicoder_evol", ("instruction", "response"), 30)
    evol.insert(7, b'{"instruction": "Sort a list", "response": \n')
    write_jsonl(hub_path(out, "magicoder_evol", "data-evol_instruct-decontaminated.jsonl"), evol)


def make_evol_codealpaca(out: Path) -> None:
    recs = _pair_records("evol_codealpaca", ("instruction", "output"), 30)
    recs.insert(2, b'{"instruction": "Explain \xff\xfe bytes", "output": "..."}\n')  # invalid UTF-8
    recs.insert(6, {"instruction": "Reverse a string in Python.", "output": ""})  # empty answer
    recs.append(dict(recs[10]))  # exact duplicate
    write_jsonl(hub_path(out, "evol_codealpaca", "train.jsonl"), recs)


def make_commitpackft(out: Path) -> None:
    rng = random.Random(f"{SEED}:commitpackft")
    recs = []
    for f in _func_share("commitpackft")[:30]:
        code = f["code"]
        doc = ast.get_docstring(ast.parse(code).body[0], clean=False)
        old = code.replace(f'"""{doc}"""', '"""TODO"""', 1) if doc and f'"""{doc}"""' in code else code + "\n# TODO"
        path = f"{f['module'].replace('.', '/')}.py"
        subject = f"Document {f['name']}"
        recs.append({"commit": sha(code), "old_file": path, "new_file": path, "old_contents": old,
                     "new_contents": code, "subject": subject, "message": subject + "\n",
                     "lang": "Python", "license": rng.choice(["mit", "apache-2.0", "bsd-3-clause"]),
                     "repos": f"{rng.choice(USERS)}/{rng.choice(PROJECTS)}"})
    recs.insert(3, {"commit": "0" * 40, "old_file": "a.py", "new_file": "a.py", "old_contents": "x = 1\n",
                    "subject": "Bump x", "message": "Bump x\n", "lang": "Python"})  # new_contents missing
    recs.insert(9, b'{"commit": "1111", "old_contents": "print(1)\n')
    write_jsonl(hub_path(out, "commitpackft", "data/python/data.jsonl"), recs)


def make_xp3x(out: Path) -> None:
    rng = random.Random(f"{SEED}:xp3x")
    langs = {1: ("French", "fra_Latn"), 2: ("German", "deu_Latn"), 3: ("Spanish", "spa_Latn")}
    mt = []
    for row in PARALLEL:
        for k, (lname, code) in langs.items():
            mt.append({"inputs": f"Translate the following sentence into {lname}: {row[0]}", "targets": row[k],
                       "language": "eng_Latn", "split": "train", "template": "translate-this",
                       "dataset": "Muennighoff/flores200", "config": f"eng_Latn-{code}"})
    write_jsonl(hub_path(out, "xp3x", "data/eng_Latn/xp3_Muennighoff_flores200_eng_Latn-fra_Latn_train_translate-this.jsonl"), mt)
    summ = []
    for mod, paras in rng.sample(prose_shares()["refinedweb"], 40):
        text = " ".join(paras[:3])
        summ.append({"inputs": f"{text}\n\nWhat is a one-sentence summary of the text above?",
                     "targets": paras[0].split(". ")[0].rstrip(".") + ".", "language": "eng_Latn",
                     "split": "train", "template": "summarize_above", "dataset": "GEM/xlsum", "config": "english"})
    summ.insert(4, {"inputs": "Summarize: nothing.", "language": "eng_Latn"})  # targets missing
    summ.insert(9, {"inputs": ["not", "text"], "targets": "x", "language": "eng_Latn"})  # wrong type
    write_jsonl(hub_path(out, "xp3x", "data/eng_Latn/xp3_GEM_xlsum_english_train_summarize_above.jsonl"), summ)


def make_stackmathqa(out: Path) -> None:
    rng = random.Random(f"{SEED}:stackmathqa")
    recs = []
    for i in range(60):
        a, b, c = rng.randint(2, 15), rng.randint(1, 40), rng.randint(2, 9)
        kind = i % 3
        if kind == 0:
            q = f"How do I find $\\gcd({a * c}, {b * c})$ without factoring?"
            x, y = a * c, b * c
            steps = []
            while y:
                steps.append(f"${x} = {x // y} \\cdot {y} + {x % y}$")
                x, y = y, x % y
            ans = "Use the Euclidean algorithm: " + ", ".join(steps) + f". The last nonzero remainder is ${x}$."
        elif kind == 1:
            q = f"Why is $\\sum_{{k=1}}^{{n}} k = \\frac{{n(n+1)}}{{2}}$? For example with $n = {b}$."
            ans = (f"Write the sum forwards and backwards and add term by term: each of the $n$ pairs sums to "
                   f"$n+1$, so twice the sum is $n(n+1)$. For $n = {b}$ this gives ${b * (b + 1) // 2}$.")
        else:
            q = f"What is the probability of rolling a total of {c} with two fair dice?"
            ways = sum(1 for d1 in range(1, 7) for d2 in range(1, 7) if d1 + d2 == c)
            ans = f"There are $36$ equally likely outcomes and ${ways}$ of them sum to {c}, so the probability is $\\frac{{{ways}}}{{36}}$."
        recs.append({"Q": q, "A": ans, "meta": {"language": "en", "url": f"https://math.stackexchange.com/questions/{rng.randrange(10 ** 6)}",
                                                "timestamp": f"20{rng.randint(12, 23)}-05-0{rng.randint(1, 9)}",
                                                "source": "math.stackexchange.com", "answer_count": rng.randint(1, 5)}})
    recs.insert(5, b'{"Q": "What is 1+1?", "A": "2", "meta": {"url": \n')
    recs.insert(12, b'{"Q": "Is \xc3\x28 a valid byte pair?", "A": "no", "meta": {}}\n')
    recs.insert(20, {"Q": "Why?", "meta": {}})
    recs.insert(27, {"Q": 42, "A": "The answer.", "meta": {}})
    write_jsonl(hub_path(out, "stackmathqa", "data/stackmathqa1600k/all.jsonl"), recs)


def make_templategsm(out: Path) -> None:
    rng = random.Random(f"{SEED}:templategsm")
    names = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Felix", "Grace", "Hiro"]
    items = [("notebooks", 3), ("pencils", 1), ("apples", 2), ("stickers", 1)]
    for tid in range(3):
        recs = []
        for pid in range(50):
            who, (item, price) = rng.choice(names), rng.choice(items)
            n, m = rng.randint(2, 20), rng.randint(1, 9)
            price = price + m
            if tid == 0:
                problem = f"{who} buys {n} {item} at ${price} each. How much does {who} spend?"
                result = n * price
                code = f"n_items = {n}\nprice = {price}\nresult = n_items * price\nprint(result)"
                wo = f"{who} buys {n} {item} for ${price} each, so the total is {n} * {price} = ${result}."
            elif tid == 1:
                problem = f"{who} has {n * m} {item} and shares them equally among {m} friends. How many does each friend get?"
                result = n
                code = f"total = {n * m}\nfriends = {m}\nresult = total // friends\nprint(result)"
                wo = f"Each friend gets {n * m} / {m} = {n} {item}."
            else:
                problem = f"{who} reads {n} pages a day for {m} days, then {price} more pages. How many pages in total?"
                result = n * m + price
                code = f"daily = {n}\ndays = {m}\nextra = {price}\nresult = daily * days + extra\nprint(result)"
                wo = f"{who} reads {n} * {m} = {n * m} pages, plus {price} more: {n * m} + {price} = {result} pages."
            recs.append({"problem": problem, "solution_code": code, "result": str(result), "solution_wocode": wo,
                         "source": "gsm8k-train-round2-seed42", "template_id": tid, "problem_id": pid})
        if tid == 2:
            recs.insert(10, {"problem": "A problem with no solution.", "solution_code": "", "template_id": 2})
        write_jsonl(hub_path(out, "templategsm", f"data/1k/0000-0999/templategsm-train-problems-{tid:04d}.jsonl"), recs)
