"""Samples of the natural-language pretraining sets: RefinedWeb, the Pile, peS2o, OpenWebMath, UltraTextbooks.

Each ``make_<set>(out)`` writes that set's files under ``out`` (a mirror root). The text is deliberately dirty
in the ways the corpus stages must handle: exact and near duplicates, boilerplate, very short pages,
non-English text, malformed records.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tools.samples.material import (FOOTER, NAV, NON_ENGLISH, PROJECTS, SEED, SHORT, USERS, chunks, manual_topics,
                                    near_dup, prose_shares, sha, stdlib_docs, title)
from tools.samples.writers import hub_path, write_json_gz, write_jsonl_zst, write_parquet


def make_refinedweb(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:refinedweb")
    docs = []
    for mod, paras in chunks(prose_shares()["refinedweb"], rng):
        body = f"{title(mod)}\n\n" + "\n\n".join(paras)
        if rng.random() < 0.25:
            body = "\n".join(rng.sample(NAV, 2)) + "\n" + body
        if rng.random() < 0.35:
            body += "\n\n" + rng.choice(FOOTER)
        docs.append(body)
    n = len(docs)
    # dirt: exact duplicates, near duplicates, very short pages, boilerplate-only pages, non-English pages
    for i in rng.sample(range(n), max(3, n // 30)):
        docs.append(docs[i])
    for i in rng.sample(range(n), max(3, n // 30)):
        docs.append(near_dup(docs[i], rng) + "\n\n" + rng.choice(FOOTER))
    docs += rng.sample(SHORT, 6)
    docs += ["\n".join(NAV + FOOTER) for _ in range(3)]
    docs += [p for lang in ("fr", "de", "es", "ru") for p in NON_ENGLISH[lang]]
    rng.shuffle(docs)
    rows = []
    for i, text in enumerate(docs):
        host = f"{rng.choice(USERS)}-{rng.choice(PROJECTS)}.example.{rng.choice(['com', 'org', 'net'])}"
        rows.append({"content": text, "url": f"https://{host}/{sha(text, 10)}.html",
                     "timestamp": 1_660_000_000 + rng.randrange(40_000_000),
                     "dump": rng.choice(["CC-MAIN-2022-33", "CC-MAIN-2023-06"]),
                     "segment": f"1675764{rng.randrange(10 ** 6):06d}.{rng.randrange(100)}",
                     "image_urls": []})
    schema = pa.schema([("content", pa.string()), ("url", pa.string()), ("timestamp", pa.timestamp("s")),
                        ("dump", pa.string()), ("segment", pa.string()), ("image_urls", pa.list_(pa.list_(pa.string())))])
    half = len(rows) // 2
    for part, (lo, hi), h in ((0, (0, half), "b8fc5348cbe605a5"), (1, (half, len(rows)), "9bca3ce859516338")):
        cols = {k: [r[k] for r in rows[lo:hi]] for k in schema.names}
        write_parquet(hub_path(out, "refinedweb", f"data/train-{part:05d}-of-05534-{h}.parquet"),
                      pa.table(cols, schema=schema))


def make_pile(out: Path) -> None:
    rng = random.Random(f"{SEED}:pile")
    _, funcs = stdlib_docs()
    recs = []
    for mod, paras in chunks(prose_shares()["pile"], rng, 2, 6):
        kind = rng.choices(["Wikipedia (en)", "StackExchange", "ArXiv", "Pile-CC", "PubMed Abstracts", "FreeLaw",
                            "HackerNews"], [30, 22, 18, 15, 5, 4, 6])[0]
        if kind == "Wikipedia (en)":
            text = f"{title(mod)}\n\n" + "\n\n".join(paras) + "\n\nSee also\n\n" + \
                   "\n".join(f"{title(m)}" for m, _ in rng.sample(prose_shares()["pile"], 2))
        elif kind == "StackExchange":
            q = paras[0].rstrip(".") + "?" if len(paras) > 1 else f"How does {title(mod)} work?"
            text = f"Q:\n\n{title(mod)}: {q}\n\n" + f"A:\n\n" + "\n\n".join(paras[1:] or paras)
        elif kind == "ArXiv":
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            text = ("\\section{Introduction}\n" + "\n\n".join(paras[: len(paras) // 2 + 1]) +
                    f"\n\n\\begin{{equation}}\nf(x) = {a}x^2 + {b}x + {a * b}\n\\end{{equation}}\n\n"
                    "\\section{Discussion}\n" + "\n\n".join(paras[len(paras) // 2 + 1:] or paras[:1]))
        else:
            text = "\n\n".join(paras)
        recs.append({"text": text, "meta": {"pile_set_name": kind}})
    for f in rng.sample(funcs, 25):
        recs.append({"text": f["code"] + "\n", "meta": {"pile_set_name": "Github"}})
    for _ in range(40):
        a, b = rng.randint(-99, 99), rng.randint(-99, 99)
        recs.append({"text": f"Calculate {a} + {b}.\n{a + b}\nWhat is {a} times {b}?\n{a * b}\n",
                     "meta": {"pile_set_name": "DM Mathematics"}})
    for lang in ("fr", "de", "es"):
        recs.append({"text": "\n\n".join(NON_ENGLISH[lang]), "meta": {"pile_set_name": "EuroParl"}})
    n = len(recs)
    recs += [recs[i] for i in rng.sample(range(n), 8)]  # exact duplicates
    rng.shuffle(recs)
    main, extra = recs[: n * 9 // 10], recs[n * 9 // 10:]
    # dirt (records, not files): no meta (unroutable → pile_rest), a malformed line, invalid UTF-8
    main.insert(5, {"text": "A record that lost its metadata on the way."})
    main.insert(17, b'{"text": "Truncated record, "meta": {"pile_set_name": "Pile-CC"}\n')
    main.insert(29, b'{"text": "caf\xe9 au lait", "meta": {"pile_set_name": "Pile-CC"}}\n')
    main.insert(41, {"text": 12345, "meta": {"pile_set_name": "Pile-CC"}})
    write_jsonl_zst(hub_path(out, "pile_rest", "train/00.jsonl.zst"), main)
    write_jsonl_zst(hub_path(out, "pile_rest", "train/01.jsonl.zst"), extra, frames=3)


def make_pes2o(out: Path) -> None:
    rng = random.Random(f"{SEED}:pes2o")
    recs = []
    for i, (mod, paras) in enumerate(chunks(prose_shares()["dolma_pes2o"], rng, 3, 7)):
        text = (f"{title(mod)}: a study of its design and use\n\n" + paras[0] + "\n\nIntroduction\n\n" +
                "\n\n".join(paras[1:]))
        recs.append({"added": "2023-08-18T19:58:50.000Z", "created": f"{rng.randint(2005, 2022)}-01-01T00:00:00.000Z",
                     "id": str(10_000_000 + rng.randrange(90_000_000)), "source": rng.choice(["s2orc/train", "s2ag/train"]),
                     "text": text, "version": "v2"})
    recs += [dict(recs[3])]  # an exact duplicate (same id: the same paper indexed twice)
    recs.insert(7, b'{"added": "2023-08-18", "id": "99", "text": "unterminated\n')
    recs.insert(11, {"added": "2023-08-18T19:58:50.000Z", "id": "12", "source": "s2ag/train", "version": "v2"})
    write_json_gz(hub_path(out, "dolma_pes2o", "data/v2/train-00000-of-00020.json.gz"), recs)


def _math_page(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 12), rng.randint(-20, 20), rng.randint(1, 30)
    kind = rng.randrange(3)
    if kind == 0:
        return (f"Solving a linear equation\n\nWe want to solve ${a}x + {b} = {c}$ for $x$. Subtract ${b}$ from "
                f"both sides to get ${a}x = {c - b}$, then divide by ${a}$:\n\n$$x = \\frac{{{c - b}}}{{{a}}}$$\n\n"
                f"Check: substituting back gives ${a} \\cdot \\frac{{{c - b}}}{{{a}}} + {b} = {c}$, as required.")
    if kind == 1:
        return (f"Sum of an arithmetic series\n\nThe sum of the first $n$ terms of an arithmetic sequence with first "
                f"term $a_1$ and difference $d$ is $S_n = \\frac{{n}}{{2}}(2a_1 + (n-1)d)$. For $a_1 = {a}$, "
                f"$d = {c}$ and $n = {a + 3}$ we get $S_{{{a + 3}}} = {(a + 3) * (2 * a + (a + 2) * c) // 2}$.")
    return (f"Derivative of a polynomial\n\nLet $f(x) = {a}x^3 + {b}x^2 + {c}$. By the power rule, "
            f"$f'(x) = {3 * a}x^2 + {2 * b}x$, so $f'(1) = {3 * a + 2 * b}$. The second derivative is "
            f"$f''(x) = {6 * a}x + {2 * b}$.")


def make_openwebmath(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:openwebmath")
    texts = [_math_page(rng) for _ in range(120)]
    texts += ["\n\n".join(p) for _, p in chunks(prose_shares()["openwebmath"], rng, 2, 5)]
    texts += [texts[0], texts[5]]  # exact duplicates: templated pages repeat across the web
    rng.shuffle(texts)
    rows = {"url": [f"https://math.example.org/questions/{rng.randrange(10 ** 6)}" for _ in texts], "text": texts,
            "date": [f"20{rng.randint(10, 23)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 12:00:00" for _ in texts],
            "metadata": [json.dumps({"extraction_info": {"found_math": True}, "score": round(rng.random(), 3)})
                         for _ in texts]}
    write_parquet(hub_path(out, "openwebmath", "data/train-00000-of-00114-5a023365406cb9c4.parquet"), pa.table(rows))


def make_ultratextbooks(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:ultratextbooks")
    texts = []
    for k, (topic, paras) in enumerate(manual_topics()[::2], start=1):
        name = topic.replace("-", " ")
        text = (f"# Chapter {k}: {name.title()}\n\n## Overview\n\n" + "\n\n".join(paras[:4]) +
                ("\n\n## Details\n\n" + "\n\n".join(paras[4:10]) if len(paras) > 4 else "") +
                f"\n\n## Exercises\n\n1. Explain {name} in your own words.\n2. Write a short program that uses {name}.")
        texts.append(text)
    rng.shuffle(texts)
    write_parquet(hub_path(out, "ultratextbooks", "data/train-00000-of-00023-ed119fecaaa10760.parquet"),
                  pa.table({"text": texts}))
