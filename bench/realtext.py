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

import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from pipeline.localtext import (  # noqa: E402,F401  (the extraction lives in the product; the benches reuse it)
    docstring_docs, file_docstrings, metadata_docs, python_roots, source_files)


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
