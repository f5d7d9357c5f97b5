"""The raw text every sample is made from, found on every Python install (all under the PSF or BSD licenses).

    modules, funcs = stdlib_docs()     # prose paragraphs per module; documented stdlib functions
    manual_topics()                    # the language reference's topics (pydoc_data)
    prose_shares()["refinedweb"]       # module paragraphs dealt to the prose sources without overlap

Plus short non-English passages and web boilerplate written for the samples. Everything is sorted and
seeded (``SEED``), so the same Python and numpy give the same material.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sysconfig
from functools import lru_cache
from pathlib import Path

SEED = 20240404

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


def title(mod: str) -> str:
    last = mod.split(".")[-1].strip("_").replace("_", " ")
    return last[:1].upper() + last[1:]


def chunks(groups, rng, lo=3, hi=8):
    """Consecutive paragraph runs (one module's docs read in order: coherent prose)."""
    for mod, paras in groups:
        i = 0
        while i < len(paras):
            n = rng.randint(lo, hi)
            yield mod, paras[i:i + n]
            i += n


def near_dup(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 60)):
        j = rng.randrange(len(words))
        words[j] = rng.choice(["the", "a", "this", "that", "its", "an"])
    return " ".join(words)


def _sha(s: str, n: int = 40) -> str:
    return hashlib.sha1(s.encode()).hexdigest()[:n]


def sha(s: str, n: int = 40) -> str:
    return hashlib.sha1(s.encode()).hexdigest()[:n]
