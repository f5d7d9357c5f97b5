"""Real text that is on every machine with Python: the standard library's docstrings and modules, written as
a folder of JSON Lines that a corpus config reads as sources of its own (`[sources.<name>] path = ...`).

    python -m pipeline.localtext --out data/local     # data/local/stdlib_docs/docs.jsonl, stdlib_code/code.jsonl

It is what makes the ablation corpus (pipeline/configs/ablation.toml) bigger than the embedded sample without
a download, and the input of the corpus benches (bench/realtext.py). Nothing is generated: the text is what
people wrote, read with ``ast`` (no import, no code execution).

* ``docstring_docs``: the docstrings of modules, classes and functions of every ``.py`` file under the given
  roots (default: the standard library), in sorted path order, joined by blank lines and cut at docstring
  boundaries into documents of at most ``max_chars``: technical English with examples and math.
* ``source_files``: whole modules of the standard library (real code), sorted by path.
* ``metadata_docs``: the long descriptions (README) of the installed distributions (the benches only: they
  change with what is installed).

The standard library's text is fixed by the Python version (``write_local`` records it), so the same
interpreter writes the same bytes; test suites (folders named ``test*``) are left out, they repeat fixtures.
"""
from __future__ import annotations

import ast
import json
import sys
import sysconfig
import warnings
from importlib import metadata
from pathlib import Path

__all__ = ["python_roots", "file_docstrings", "docstring_docs", "source_files", "metadata_docs", "write_local",
           "LOCAL_SOURCES"]

LOCAL_SOURCES = {"stdlib_docs": "docs.jsonl", "stdlib_code": "code.jsonl"}
"""The folders `write_local` makes under its root (one per source) and the file in each."""


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


def _jsonl(docs: list[tuple[str, str]]) -> bytes:
    return "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in docs).encode("utf-8")


def write_local(out: Path) -> dict[str, dict]:
    """Write the standard library's docstrings and modules under ``out`` (one folder per source, see
    LOCAL_SOURCES) and a README naming the Python version. A file whose bytes are already there is not
    rewritten, so a corpus build that lists the folder again finds nothing changed."""
    from jetmoe_core.io import write_bytes_atomic

    out = Path(out)
    stdlib = python_roots()[:1]
    made = {"stdlib_docs": docstring_docs(roots=stdlib), "stdlib_code": source_files()}
    version = sys.version.split()[0]
    summary = {}
    for name, docs in made.items():
        path = out / name / LOCAL_SOURCES[name]
        data = _jsonl(docs)
        if not (path.is_file() and path.read_bytes() == data):
            write_bytes_atomic(path, data)
        summary[name] = {"path": str(path), "docs": len(docs), "mb": sum(len(t.encode()) for _, t in docs) / 1e6}
    readme = (f"Written by `python -m pipeline.localtext --out {out}` from the standard library of Python {version} "
              f"({stdlib[0]}).\nThe same Python version writes the same bytes; another one writes other text.\n")
    if not ((out / "README.md").is_file() and (out / "README.md").read_text() == readme):
        write_bytes_atomic(out / "README.md", readme.encode())
    return {"python": version, "sources": summary}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from jetmoe_core.io import IOFault, explain_os_error

    ap = argparse.ArgumentParser(prog="python -m pipeline.localtext", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/local"), help="folder to write (default data/local)")
    args = ap.parse_args(argv)
    try:
        info = write_local(args.out)
    except OSError as e:
        msg = str(e) if isinstance(e, IOFault) else explain_os_error(e, "write", args.out)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    for name, s in info["sources"].items():
        print(f"{name:<12} {s['docs']:>6,} documents {s['mb']:>6.1f} MB  {s['path']}")
    print(f"from the standard library of Python {info['python']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
