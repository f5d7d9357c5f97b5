"""Rebuild the embedded sample corpus: a small local mirror of every hub dataset the recipe reads.

    python pipeline/samples/make_samples.py                      # rebuild all 22 sources' files in place
    python pipeline/samples/make_samples.py --only stackmathqa xp3x
    python pipeline/samples/make_samples.py --out /tmp/s --check # rebuild elsewhere, compare with committed

Each file sits at ``pipeline/samples/<repo_id>/<path in repo>`` with the hub's file name, format and
columns, so the real readers (``pipeline.sources``) read it unchanged. The text is made here, from
material on every Python install: the standard library's docstrings and sources and the reference
manual's topics (``pydoc_data.topics``), all under the PSF license, plus short non-English passages
written for this file. It is deliberately dirty in the ways the corpus stages must handle: exact and
near duplicates, boilerplate, very short documents, non-English text, and a few malformed records
(invalid JSON, invalid UTF-8, missing fields, wrong types). Corrupt *files* are never shipped (the demo
build must succeed); the tests make those.

Deterministic: a fixed seed per source, sorted inputs, gzip with mtime 0, single-threaded zstd. The
bytes depend on the Python version whose standard library is read and on the numpy, pyarrow and
zstandard versions (the committed files were made with CPython 3.11.7, numpy 2.4.6, pyarrow 26,
zstandard 0.25); ``--check`` tells whether this machine reproduces them.
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import gzip
import hashlib
import io
import json
import os
import random
import re
import sys
import sysconfig
import tempfile
from functools import lru_cache
from pathlib import Path

SEED = 20240404
HERE = Path(__file__).resolve().parent

# -- writing (atomic) ------------------------------------------------------------------------------------


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _line(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"


def _lines_bytes(records) -> bytes:
    """Records are dicts (written as JSON lines) or raw bytes (written as they are: the dirt)."""
    return b"".join(r if isinstance(r, bytes) else _line(r) for r in records)


def write_jsonl(path: Path, records) -> None:
    _atomic_bytes(path, _lines_bytes(records))


def write_json_array(path: Path, records) -> None:
    _atomic_bytes(path, json.dumps(records, ensure_ascii=False, indent=1).encode("utf-8") + b"\n")


def write_json_gz(path: Path, records) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=9) as f:
        f.write(_lines_bytes(records))
    _atomic_bytes(path, buf.getvalue())


def write_jsonl_zst(path: Path, records, frames: int = 1) -> None:
    import zstandard

    data = _lines_bytes(records)
    cctx = zstandard.ZstdCompressor(level=10, threads=0)
    if frames <= 1:
        _atomic_bytes(path, cctx.compress(data))
        return
    # several frames in one file, as parallel compressors write them: the reader must handle it
    lines = data.splitlines(keepends=True)
    step = -(-len(lines) // frames)
    _atomic_bytes(path, b"".join(cctx.compress(b"".join(lines[i:i + step])) for i in range(0, len(lines), step)))


def write_parquet(path: Path, table, row_group_size: int = 256) -> None:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy", row_group_size=row_group_size)
    _atomic_bytes(path, buf.getvalue())


# -- raw material --------------------------------------------------------------------------------------
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__", "ensurepip",
              "dist-packages", "pydoc_data"}


@lru_cache(maxsize=1)
def stdlib_files() -> list[tuple[str, str]]:
    """(relative path, source text) of the standard library's Python files, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if any(part in _SKIP_DIRS for part in rel.parts):
            continue
        try:
            out.append((rel.as_posix(), p.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
    return out


def _prose(p: str) -> bool:
    return len(p) >= 60 and sum(c.isalpha() or c in " ,.;:'()-" for c in p) / len(p) > 0.88 \
        and not p.startswith((">>>", "..", ":", "-", "*", "+"))


@lru_cache(maxsize=1)
def numpy_files() -> list[tuple[str, str]]:
    """numpy's Python files (BSD-3-Clause; numpy is a dependency of the project, so always installed):
    its docstrings double the prose the standard library alone offers."""
    import numpy

    root = Path(numpy.__file__).resolve().parent
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root.parent)
        if not any(part in _SKIP_DIRS for part in rel.parts):
            out.append((rel.as_posix(), p.read_text(encoding="utf-8")))
    return out


@lru_cache(maxsize=1)
def stdlib_docs() -> tuple[list[tuple[str, list[str]]], list[dict]]:
    """Prose paragraphs grouped by module (standard library and numpy), and the standard library's
    documented top-level functions (name, signature, source, docstring) for the code instruction sets."""
    modules, funcs = [], []
    n_stdlib = len(stdlib_files())
    for i, (rel, src) in enumerate(stdlib_files() + numpy_files()):
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        mod = rel[:-3].replace("/", ".").removesuffix(".__init__")
        paras = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    paras += [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc)]
        paras = [p for p in dict.fromkeys(paras) if _prose(p)]
        if paras:
            modules.append((mod, paras))
        if i >= n_stdlib:  # code tasks come from the standard library only
            continue
        lines = src.splitlines()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                code = "\n".join(lines[node.lineno - 1 - len(node.decorator_list):node.end_lineno])
                if doc and 150 <= len(code) <= 2500 and _prose(" ".join(doc.split("\n\n")[0].split())):
                    funcs.append({"module": mod, "name": node.name, "code": code, "doc": doc,
                                  "summary": " ".join(doc.split("\n\n")[0].split()),
                                  "args": [a.arg for a in node.args.args]})
    return modules, funcs


@lru_cache(maxsize=1)
def manual_topics() -> list[tuple[str, list[str]]]:
    """(topic, prose paragraphs) from the language reference that ships with Python."""
    import pydoc_data.topics as t

    out = []
    for name in sorted(t.topics):
        paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", t.topics[name])]
        paras = [p for p in paras if _prose(p)]
        if len(paras) >= 2:
            out.append((name, paras))
    return out


@lru_cache(maxsize=1)
def prose_shares() -> dict[str, list[tuple[str, list[str]]]]:
    """The module paragraphs dealt to the prose sources without overlap, so a cross-source dedup has
    only the duplicates put in on purpose to find."""
    modules, _ = stdlib_docs()
    rng = random.Random(f"{SEED}:deal")
    order = modules[:]
    rng.shuffle(order)
    weights = [("pile", 0.22), ("dolma_pes2o", 0.09), ("openwebmath", 0.05), ("refinedweb", 1.0)]
    total = sum(len(" ".join(p)) for _, p in order)
    shares, i = {}, 0
    for name, w in weights:
        budget, got, take = total * w, 0, []
        while i < len(order) and got < budget:
            take.append(order[i])
            got += len(" ".join(order[i][1]))
            i += 1
        shares[name] = take
    return shares


# Written for this file (not translations of any published text).
NON_ENGLISH = {
    "fr": [
        "La bibliothèque municipale ouvre ses portes le samedi matin. Les lecteurs peuvent emprunter jusqu'à "
        "cinq livres pour trois semaines, et les enfants trouvent au premier étage une salle de lecture calme.",
        "Pour préparer une bonne soupe de légumes, il faut d'abord faire revenir les oignons dans un peu de "
        "beurre, puis ajouter les carottes, les poireaux et les pommes de terre coupés en morceaux.",
        "Le train régional part de la gare centrale toutes les heures. En cas de retard, les voyageurs sont "
        "informés par des annonces sonores et par l'application mobile de la compagnie.",
    ],
    "de": [
        "Die Stadtverwaltung hat beschlossen, den alten Marktplatz im kommenden Frühjahr neu zu gestalten. "
        "Dabei sollen mehr Bäume gepflanzt und zusätzliche Sitzbänke aufgestellt werden.",
        "Wer regelmäßig Sport treibt, schläft oft besser und fühlt sich tagsüber ausgeglichener. Schon ein "
        "täglicher Spaziergang von einer halben Stunde kann einen deutlichen Unterschied machen.",
        "Das Museum zeigt in diesem Sommer eine Ausstellung über die Geschichte der Schifffahrt auf dem Rhein, "
        "mit Modellen, Karten und Fotografien aus zwei Jahrhunderten.",
    ],
    "es": [
        "El mercado del barrio abre todos los días excepto el domingo. Allí se pueden comprar frutas de "
        "temporada, pan recién hecho y queso de los pueblos cercanos.",
        "Para aprender un idioma nuevo conviene practicar un poco cada día, leer textos sencillos en voz alta "
        "y no tener miedo de cometer errores al hablar con otras personas.",
        "La biblioteca de la universidad amplía su horario durante la época de exámenes y permanece abierta "
        "hasta la medianoche de lunes a viernes.",
    ],
    "ru": [
        "Городская библиотека открыта по субботам с десяти утра. Читатели могут взять домой до пяти книг "
        "на три недели, а для детей на втором этаже есть тихий читальный зал.",
    ],
}
#: short parallel sentences for the translation prompts (English, French, German, Spanish)
PARALLEL = [
    ("The library opens at nine in the morning.", "La bibliothèque ouvre à neuf heures du matin.",
     "Die Bibliothek öffnet um neun Uhr morgens.", "La biblioteca abre a las nueve de la mañana."),
    ("It is raining again today.", "Il pleut encore aujourd'hui.", "Heute regnet es schon wieder.",
     "Hoy está lloviendo otra vez."),
    ("Where is the train station?", "Où est la gare ?", "Wo ist der Bahnhof?", "¿Dónde está la estación de tren?"),
    ("My brother works in a hospital.", "Mon frère travaille dans un hôpital.",
     "Mein Bruder arbeitet in einem Krankenhaus.", "Mi hermano trabaja en un hospital."),
    ("We bought fresh bread at the market.", "Nous avons acheté du pain frais au marché.",
     "Wir haben auf dem Markt frisches Brot gekauft.", "Compramos pan fresco en el mercado."),
    ("The children are playing in the garden.", "Les enfants jouent dans le jardin.",
     "Die Kinder spielen im Garten.", "Los niños están jugando en el jardín."),
    ("Please close the window.", "Fermez la fenêtre, s'il vous plaît.", "Bitte schließ das Fenster.",
     "Por favor, cierra la ventana."),
    ("This book is very interesting.", "Ce livre est très intéressant.", "Dieses Buch ist sehr interessant.",
     "Este libro es muy interesante."),
]
NAV = ["Home | About | Blog | Contact", "Skip to main content", "Menu", "Search this site", "Log in | Sign up",
       "You are here: Home > Articles > Programming"]
FOOTER = [
    "© 2023 All rights reserved. Privacy Policy | Terms of Use | Cookie Settings",
    "This website uses cookies to improve your experience. We'll assume you're ok with this, but you can "
    "opt-out if you wish. Accept Read More",
    "Subscribe to our newsletter to get the latest articles delivered to your inbox. Enter your email address.",
    "Share this: Facebook Twitter LinkedIn Email Print",
    "Related posts: Getting started | Ten tips for beginners | Frequently asked questions",
]
SHORT = ["Page not found.", "Loading...", "Click here to continue.", "Coming soon!", "Access denied",
         "404", "Thank you for your order.", "Please enable JavaScript to view this page."]
USERS = ["alice", "bob", "carol", "dmitri", "eve", "farah", "gustavo", "hana", "ivan", "julia", "kwame", "lena"]
PROJECTS = ["toolkit", "pyutils", "webapp", "dataflow", "scripts", "notebook", "backend", "cli", "core", "lib"]


def _title(mod: str) -> str:
    last = mod.split(".")[-1].strip("_").replace("_", " ")
    return last[:1].upper() + last[1:]


def _chunks(groups, rng, lo=3, hi=8):
    """Consecutive paragraph runs (one module's docs read in order: coherent prose)."""
    for mod, paras in groups:
        i = 0
        while i < len(paras):
            n = rng.randint(lo, hi)
            yield mod, paras[i:i + n]
            i += n


def _near_dup(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 60)):
        j = rng.randrange(len(words))
        words[j] = rng.choice(["the", "a", "this", "that", "its", "an"])
    return " ".join(words)


def _sha(s: str, n: int = 40) -> str:
    return hashlib.sha1(s.encode()).hexdigest()[:n]


# -- the web sets -----------------------------------------------------------------------------------------
def make_refinedweb(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:refinedweb")
    docs = []
    for mod, paras in _chunks(prose_shares()["refinedweb"], rng):
        body = f"{_title(mod)}\n\n" + "\n\n".join(paras)
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
        docs.append(_near_dup(docs[i], rng) + "\n\n" + rng.choice(FOOTER))
    docs += rng.sample(SHORT, 6)
    docs += ["\n".join(NAV + FOOTER) for _ in range(3)]
    docs += [p for lang in ("fr", "de", "es", "ru") for p in NON_ENGLISH[lang]]
    rng.shuffle(docs)
    rows = []
    for i, text in enumerate(docs):
        host = f"{rng.choice(USERS)}-{rng.choice(PROJECTS)}.example.{rng.choice(['com', 'org', 'net'])}"
        rows.append({"content": text, "url": f"https://{host}/{_sha(text, 10)}.html",
                     "timestamp": 1_660_000_000 + rng.randrange(40_000_000),
                     "dump": rng.choice(["CC-MAIN-2022-33", "CC-MAIN-2023-06"]),
                     "segment": f"1675764{rng.randrange(10 ** 6):06d}.{rng.randrange(100)}",
                     "image_urls": []})
    schema = pa.schema([("content", pa.string()), ("url", pa.string()), ("timestamp", pa.timestamp("s")),
                        ("dump", pa.string()), ("segment", pa.string()), ("image_urls", pa.list_(pa.list_(pa.string())))])
    half = len(rows) // 2
    base = out / "tiiuae/falcon-refinedweb/data"
    for part, (lo, hi), h in ((0, (0, half), "b8fc5348cbe605a5"), (1, (half, len(rows)), "9bca3ce859516338")):
        cols = {k: [r[k] for r in rows[lo:hi]] for k in schema.names}
        write_parquet(base / f"train-{part:05d}-of-05534-{h}.parquet", pa.table(cols, schema=schema))


def make_pile(out: Path) -> None:
    rng = random.Random(f"{SEED}:pile")
    _, funcs = stdlib_docs()
    recs = []
    for mod, paras in _chunks(prose_shares()["pile"], rng, 2, 6):
        kind = rng.choices(["Wikipedia (en)", "StackExchange", "ArXiv", "Pile-CC", "PubMed Abstracts", "FreeLaw",
                            "HackerNews"], [30, 22, 18, 15, 5, 4, 6])[0]
        if kind == "Wikipedia (en)":
            text = f"{_title(mod)}\n\n" + "\n\n".join(paras) + "\n\nSee also\n\n" + \
                   "\n".join(f"{_title(m)}" for m, _ in rng.sample(prose_shares()["pile"], 2))
        elif kind == "StackExchange":
            q = paras[0].rstrip(".") + "?" if len(paras) > 1 else f"How does {_title(mod)} work?"
            text = f"Q:\n\n{_title(mod)}: {q}\n\n" + f"A:\n\n" + "\n\n".join(paras[1:] or paras)
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
    write_jsonl_zst(out / "monology/pile-uncopyrighted/train/00.jsonl.zst", main)
    write_jsonl_zst(out / "monology/pile-uncopyrighted/train/01.jsonl.zst", extra, frames=3)


def make_pes2o(out: Path) -> None:
    rng = random.Random(f"{SEED}:pes2o")
    recs = []
    for i, (mod, paras) in enumerate(_chunks(prose_shares()["dolma_pes2o"], rng, 3, 7)):
        text = (f"{_title(mod)}: a study of its design and use\n\n" + paras[0] + "\n\nIntroduction\n\n" +
                "\n\n".join(paras[1:]))
        recs.append({"added": "2023-08-18T19:58:50.000Z", "created": f"{rng.randint(2005, 2022)}-01-01T00:00:00.000Z",
                     "id": str(10_000_000 + rng.randrange(90_000_000)), "source": rng.choice(["s2orc/train", "s2ag/train"]),
                     "text": text, "version": "v2"})
    recs += [dict(recs[3])]  # an exact duplicate (same id: the same paper indexed twice)
    recs.insert(7, b'{"added": "2023-08-18", "id": "99", "text": "unterminated\n')
    recs.insert(11, {"added": "2023-08-18T19:58:50.000Z", "id": "12", "source": "s2ag/train", "version": "v2"})
    write_json_gz(out / "allenai/peS2o/data/v2/train-00000-of-00020.json.gz", recs)


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
    texts += ["\n\n".join(p) for _, p in _chunks(prose_shares()["openwebmath"], rng, 2, 5)]
    texts += [texts[0], texts[5]]  # exact duplicates: templated pages repeat across the web
    rng.shuffle(texts)
    rows = {"url": [f"https://math.example.org/questions/{rng.randrange(10 ** 6)}" for _ in texts], "text": texts,
            "date": [f"20{rng.randint(10, 23)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 12:00:00" for _ in texts],
            "metadata": [json.dumps({"extraction_info": {"found_math": True}, "score": round(rng.random(), 3)})
                         for _ in texts]}
    write_parquet(out / "open-web-math/open-web-math/data/train-00000-of-00114-5a023365406cb9c4.parquet", pa.table(rows))


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
    write_parquet(out / "Locutusque/UltraTextbooks/data/train-00000-of-00023-ed119fecaaa10760.parquet",
                  pa.table({"text": texts}))


# -- the code sets ----------------------------------------------------------------------------------------
def make_starcoder(out: Path) -> None:
    import pyarrow as pa

    rng = random.Random(f"{SEED}:starcoder")
    files = [(rel, src) for rel, src in stdlib_files() if 2_000 <= len(src) <= 40_000]
    rng.shuffle(files)
    rows, total = [], 0
    for rel, src in files:
        if total > 1_250_000:
            break
        rows.append((f"{rng.choice(USERS)}/{rng.choice(PROJECTS)}", f"src/{rel}", src))
        total += len(src)
    # dirt: a vendored copy (exact duplicate), a lightly edited fork (near duplicate), tiny files, and
    # generated code with one enormous line
    rows.append(("vendor/" + rows[0][0].split("/")[1], rows[0][1], rows[0][2]))
    rows.append((rows[1][0] + "-fork", rows[1][1], "# Forked and patched locally.\n" + rows[1][2].replace("\n\n\n", "\n\n")))
    rows += [("misc/empty-pkg", "pkg/__init__.py", "\n"), ("misc/one-liner", "pkg/version.py", "__version__ = '0.1.0'\n")]
    table = ", ".join(str(rng.randrange(1 << 16)) for _ in range(1500))
    rows.append(("gen/tables", "gen/_table.py", f"# Autogenerated. Do not edit.\n_TABLE = [{table}]\n"))
    rng.shuffle(rows)
    ids = rng.sample(range(10 ** 7, 10 ** 8), len(rows))
    recs = {"max_stars_repo_path": [r[1] for r in rows], "max_stars_repo_name": [r[0] for r in rows],
            "max_stars_count": [rng.choice([0, 1, 3, 12, 57, 240, 1800]) for _ in rows],
            "id": [str(i) for i in ids], "content": [r[2] for r in rows]}
    schema = pa.schema([("max_stars_repo_path", pa.string()), ("max_stars_repo_name", pa.string()),
                        ("max_stars_count", pa.int64()), ("id", pa.string()), ("content", pa.string())])
    t = pa.table(recs, schema=schema)
    half = len(rows) // 2
    base = out / "bigcode/starcoderdata/python"
    write_parquet(base / "train-00000-of-00059.parquet", t.slice(0, half), row_group_size=64)
    write_parquet(base / "train-00001-of-00059.parquet", t.slice(half), row_group_size=64)


def make_algebraic_stack(out: Path) -> None:
    rng = random.Random(f"{SEED}:algebraic_stack")
    numeric = ("statistics.py", "fractions.py", "random.py", "colorsys.py", "bisect.py", "heapq.py", "numbers.py")
    py = [{"text": src, "meta": {"max_stars_repo_name": f"{rng.choice(USERS)}/numerics",
                                 "max_stars_repo_path": rel, "lang": "python"}}
          for rel, src in stdlib_files() if rel in numeric]
    py.insert(2, b'{"text": "def f(x):\\n    return x", "meta": {"lang": "python"}\n')  # malformed line
    write_jsonl_zst(out / "EleutherAI/proof-pile-2/algebraic-stack/train/python0000.jsonl.zst", py)
    tex = []
    for i in range(40):
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        tex.append({"text": (f"\\begin{{lemma}}\\label{{lem:{i}}}\nFor all integers $n \\ge 1$, "
                             f"$\\sum_{{k=1}}^{{n}} {a}k = \\frac{{{a} n (n+1)}}{{2}}$.\n\\end{{lemma}}\n"
                             f"\\begin{{proof}}\nBy induction on $n$. For $n = 1$ both sides equal ${a}$. "
                             f"If the claim holds for $n$, adding ${a}(n+1)$ gives "
                             f"$\\frac{{{a}(n+1)(n+2)}}{{2}}$.\n\\end{{proof}}\n"
                             f"\\begin{{example}}\nWith $n = {b}$ the sum is ${a * b * (b + 1) // 2}$.\n\\end{{example}}\n"),
                    "meta": {"lang": "tex"}})
    write_jsonl_zst(out / "EleutherAI/proof-pile-2/algebraic-stack/train/tex0000.jsonl.zst", tex)


# -- the chat / instruction sets ---------------------------------------------------------------------------
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
    write_json_array(out / "teknium/OpenHermes-2.5/openhermes2_5.json", recs)


def make_code290k(out: Path) -> None:
    rng = random.Random(f"{SEED}:code290k")
    recs = []
    for f in _func_share("code290k_sharegpt")[:30]:
        ask, answer = _code_task(f)
        recs.append({"id": str(rng.randrange(10 ** 6)), "conversations": [{"from": "human", "value": ask},
                                                                          {"from": "gpt", "value": answer}]})
    recs.append(dict(recs[0]))  # exact duplicate
    recs.insert(6, {"id": "x", "conversations": [{"from": "human"}, {"from": "gpt", "value": "..."}]})
    write_json_array(out / "ajibawa-2023/Code-290k-ShareGPT/Code-290k-ShareGPT.json", recs)


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
    write_parquet(out / "HuggingFaceH4/ultrachat_200k/data/train_sft-00000-of-00003-a3ecf92756993583.parquet", t)


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
    write_parquet(out / "OpenAssistant/oasst1/data/train-00000-of-00001-b42a775f407cee45.parquet", t)


def make_octopack(out: Path) -> None:
    rng = random.Random(f"{SEED}:octopack")
    recs = [{"conversations": [{"role": "user", "text": q}, {"role": "assistant", "text": a}]}
            for q, a in _topic_qa(rng, 35)]
    recs.insert(3, b'{"conversations": [{"role": "user", "text": "half a line"\n')
    recs.insert(8, {"conversations": []})
    write_jsonl(out / "bigcode/oasst-octopack/oasst_octopack.jsonl", recs)


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
        "openai_fingerprint": "fp_" + _sha(f["name"], 10)})
    oss.insert(5, {"lang": "python", "index": 999, "problem": "Write a function.", "solution": ["not", "a", "string"]})
    write_jsonl(out / "ise-uiuc/Magicoder-OSS-Instruct-75K/data-oss_instruct-decontaminated.jsonl", oss)
    evol = _pair_records("magicoder_evol", ("instruction", "response"), 30)
    evol.insert(7, b'{"instruction": "Sort a list", "response": \n')
    write_jsonl(out / "ise-uiuc/Magicoder-Evol-Instruct-110K/data-evol_instruct-decontaminated.jsonl", evol)


def make_evol_codealpaca(out: Path) -> None:
    recs = _pair_records("evol_codealpaca", ("instruction", "output"), 30)
    recs.insert(2, b'{"instruction": "Explain \xff\xfe bytes", "output": "..."}\n')  # invalid UTF-8
    recs.insert(6, {"instruction": "Reverse a string in Python.", "output": ""})  # empty answer
    recs.append(dict(recs[10]))  # exact duplicate
    write_jsonl(out / "theblackcat102/evol-codealpaca-v1/train.jsonl", recs)


def make_commitpackft(out: Path) -> None:
    rng = random.Random(f"{SEED}:commitpackft")
    recs = []
    for f in _func_share("commitpackft")[:30]:
        code = f["code"]
        doc = ast.get_docstring(ast.parse(code).body[0], clean=False)
        old = code.replace(f'"""{doc}"""', '"""TODO"""', 1) if doc and f'"""{doc}"""' in code else code + "\n# TODO"
        path = f"{f['module'].replace('.', '/')}.py"
        subject = f"Document {f['name']}"
        recs.append({"commit": _sha(code), "old_file": path, "new_file": path, "old_contents": old,
                     "new_contents": code, "subject": subject, "message": subject + "\n",
                     "lang": "Python", "license": rng.choice(["mit", "apache-2.0", "bsd-3-clause"]),
                     "repos": f"{rng.choice(USERS)}/{rng.choice(PROJECTS)}"})
    recs.insert(3, {"commit": "0" * 40, "old_file": "a.py", "new_file": "a.py", "old_contents": "x = 1\n",
                    "subject": "Bump x", "message": "Bump x\n", "lang": "Python"})  # new_contents missing
    recs.insert(9, b'{"commit": "1111", "old_contents": "print(1)\n')
    write_jsonl(out / "bigcode/commitpackft/data/python/data.jsonl", recs)


def make_xp3x(out: Path) -> None:
    rng = random.Random(f"{SEED}:xp3x")
    base = out / "CohereForAI/xP3x/data/eng_Latn"
    langs = {1: ("French", "fra_Latn"), 2: ("German", "deu_Latn"), 3: ("Spanish", "spa_Latn")}
    mt = []
    for row in PARALLEL:
        for k, (lname, code) in langs.items():
            mt.append({"inputs": f"Translate the following sentence into {lname}: {row[0]}", "targets": row[k],
                       "language": "eng_Latn", "split": "train", "template": "translate-this",
                       "dataset": "Muennighoff/flores200", "config": f"eng_Latn-{code}"})
    write_jsonl(base / "xp3_Muennighoff_flores200_eng_Latn-fra_Latn_train_translate-this.jsonl", mt)
    summ = []
    for mod, paras in rng.sample(prose_shares()["refinedweb"], 40):
        text = " ".join(paras[:3])
        summ.append({"inputs": f"{text}\n\nWhat is a one-sentence summary of the text above?",
                     "targets": paras[0].split(". ")[0].rstrip(".") + ".", "language": "eng_Latn",
                     "split": "train", "template": "summarize_above", "dataset": "GEM/xlsum", "config": "english"})
    summ.insert(4, {"inputs": "Summarize: nothing.", "language": "eng_Latn"})  # targets missing
    summ.insert(9, {"inputs": ["not", "text"], "targets": "x", "language": "eng_Latn"})  # wrong type
    write_jsonl(base / "xp3_GEM_xlsum_english_train_summarize_above.jsonl", summ)


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
    write_jsonl(out / "math-ai/StackMathQA/data/stackmathqa1600k/all.jsonl", recs)


def make_templategsm(out: Path) -> None:
    rng = random.Random(f"{SEED}:templategsm")
    base = out / "math-ai/TemplateGSM/data/1k/0000-0999"
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
        write_jsonl(base / f"templategsm-train-problems-{tid:04d}.jsonl", recs)


MAKERS = {
    "refinedweb": make_refinedweb, "starcoder": make_starcoder, "dolma_pes2o": make_pes2o, "pile": make_pile,
    "algebraic_stack": make_algebraic_stack, "openwebmath": make_openwebmath, "stackmathqa": make_stackmathqa,
    "templategsm": make_templategsm, "oasst": make_oasst, "oasst_octopack": make_octopack, "xp3x": make_xp3x,
    "commitpackft": make_commitpackft, "openhermes": make_openhermes, "ultratextbooks": make_ultratextbooks,
    "ultrachat": make_ultrachat, "magicoder": make_magicoder, "evol_codealpaca": make_evol_codealpaca,
    "code290k_sharegpt": make_code290k,
}
#: the makers that read neither the stdlib sources nor the docstrings (fast: used by the tests)
LIGHT = ("stackmathqa", "templategsm")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="mirror root to write (default: pipeline/samples)")
    ap.add_argument("--only", nargs="+", choices=sorted(MAKERS), help="rebuild only these makers")
    ap.add_argument("--check", action="store_true", help="compare what was written with pipeline/samples")
    args = ap.parse_args(argv)
    names = args.only or list(MAKERS)
    from tqdm import tqdm

    before = {p for p in args.out.rglob("*") if p.is_file()} if args.check else set()
    for name in tqdm(names, desc="samples", unit="source"):
        MAKERS[name](args.out)
    files = sorted(p for p in args.out.rglob("*") if p.is_file() and p.suffix != ".py" and p not in before
                   and "__pycache__" not in p.parts)
    print(f"\n{'file':<100} {'bytes':>10}")
    for p in files:
        print(f"{p.relative_to(args.out).as_posix():<100} {p.stat().st_size:>10,}")
    print(f"{'total':<100} {sum(p.stat().st_size for p in files):>10,}")
    if args.check:
        bad = [p for p in files if not (HERE / p.relative_to(args.out)).is_file()
               or not filecmp.cmp(p, HERE / p.relative_to(args.out), shallow=False)]
        for p in bad:
            print(f"DIFFERS: {p.relative_to(args.out)}", file=sys.stderr)
        print("check:", "identical to the committed samples" if not bad else f"{len(bad)} files differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
