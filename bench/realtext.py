"""Real English technical text from what is installed on this machine: the corpus benches' input and the
source of the real-text test fixture (``tests/fixtures/realtext/``).

    from realtext import docstring_docs, source_files
    docs = docstring_docs(mb=8)                 # [(id, text)], ~8 MB: docstrings of the venv's packages
    python bench/realtext.py --mb 8 --out /tmp/real.jsonl.gz   # the same as a datatrove JSONL input

Documents (deterministic for a given set of installed packages):

* ``docstring_docs``: every ``.py`` file under the Python installation that runs this (the standard library,
  then site-packages, in sorted path order) contributes the docstrings of its module, classes and functions
  joined by blank lines, cut at docstring boundaries into documents of at most ``max_chars``. That is real
  technical English written by people (API prose with examples, parameters, math), like the documentation
  and papers of the recipe's curated sources; no generated text.
* ``metadata_docs``: the long descriptions (README) in the installed distributions' METADATA.
* ``source_files``: whole ``.py`` files of the standard library (real code).

Nothing here downloads; the text is whatever the interpreter has installed, so the figures of a bench name
the Python version. Docstrings are read with ``ast`` (no import, no code execution).
"""

from __future__ import annotations

import ast
import gzip
import json
import sys
import sysconfig
import warnings
from importlib import metadata
from pathlib import Path


def python_roots() -> list[Path]:
    """The standard library, then site-packages (purelib, platlib), without duplicates."""
    roots: list[Path] = []
    for key in ("stdlib", "purelib", "platlib"):
        p = Path(sysconfig.get_paths()[key]).resolve()
        if p.is_dir() and p not in roots:
            roots.append(p)
    return roots


def _py_files(root: Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).parts
        if any(s in p.parents for s in skip) or any(d in ("site-packages", "dist-packages") for d in rel[:-1]):
            continue  # another root's files (the base interpreter's own site-packages sit inside stdlib)
        if any("test" in d.lower() for d in rel[:-1]):
            continue  # test suites repeat fixtures, not prose
        out.append(p)
    return out


def file_docstrings(path: Path) -> list[str]:
    """Module, class and function docstrings of one file, in source order; [] if it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old modules
            tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, OSError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc.split()) >= 8:
                out.append(doc)
    return out


def _chunks(parts: list[str], max_chars: int) -> list[str]:
    docs, cur, size = [], [], 0
    for part in parts:
        if cur and size + len(part) > max_chars:
            docs.append("\n\n".join(cur))
            cur, size = [], 0
        cur.append(part)
        size += len(part) + 2
    if cur:
        docs.append("\n\n".join(cur))
    return docs


def docstring_docs(mb: float | None = None, max_chars: int = 8000, roots: list[Path] | None = None
                   ) -> list[tuple[str, str]]:
    """Documents of docstrings, up to ``mb`` MB of UTF-8 text (all of them when ``mb`` is None)."""
    roots = roots or python_roots()
    target = None if mb is None else int(mb * 1e6)
    docs: list[tuple[str, str]] = []
    used = 0
    for i, root in enumerate(roots):
        for path in _py_files(root, skip=tuple(roots[i + 1:])):
            for k, text in enumerate(_chunks(file_docstrings(path), max_chars)):
                docs.append((f"{path.relative_to(root)}#{k}", text))
                used += len(text.encode("utf-8"))
                if target is not None and used >= target:
                    return docs
    return docs


def metadata_docs() -> list[tuple[str, str]]:
    """The long description of every installed distribution that has one, sorted by name."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") or ""
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if name and len(body.split()) >= 50:
            out.setdefault(name.lower(), body)
    return sorted(out.items())


def source_files(min_lines: int = 20) -> list[tuple[str, str]]:
    """Whole modules of the standard library (real Python code), sorted by path."""
    root = python_roots()[0]
    out = []
    for p in _py_files(root, skip=tuple(python_roots()[1:])):
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.count("\n") >= min_lines:
            out.append((str(p.relative_to(root)), text))
    return out


def write_jsonl(docs: list[tuple[str, str]], path: Path) -> int:
    """datatrove's JSONL layout (``id``, ``text``), gzip; returns the bytes of text written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=1) as f:
        for doc_id, text in docs:
            f.write((json.dumps({"id": doc_id, "text": text}) + "\n").encode())
            n += len(text.encode("utf-8"))
    return n


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Write real technical text (docstrings of the installed "
                                             "packages) as a datatrove JSONL.gz input.")
    ap.add_argument("--mb", type=float, default=8.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    docs = docstring_docs(args.mb)
    n = write_jsonl(docs, args.out)
    print(f"{len(docs):,} documents, {n / 1e6:.1f} MB of text from Python {sys.version.split()[0]} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
