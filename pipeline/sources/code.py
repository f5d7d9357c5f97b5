"""Code pretraining sets: StarCoderData (GitHub) and Proof-Pile-2's AlgebraicStack. Family ``code``:
the corpus filters apply code rules (line lengths, alphanumeric share), not prose rules."""

from __future__ import annotations

from datatrove.data import Document

from pipeline.sources.base import Row, SourceSpec

#: StarCoderData language folders read by default: the programming languages with the most data.
#: The repo also has 'github-issues-filtered-structured', 'jupyter-*' and 'git-commits-cleaned', which are
#: not GitHub source files and have other columns; they are left out. Add folders here to read more.
STARCODER_LANGUAGES = (
    "python", "java", "javascript", "typescript", "c", "cpp", "c-sharp", "go", "rust", "php", "ruby",
    "shell", "sql", "kotlin", "scala", "swift", "lua", "r", "julia", "haskell", "markdown",
)


def _starcoder(row: Row, spec: SourceSpec, _t) -> Document:
    doc_id = row.get("id", (str, int), required=False)
    lang = row.relpath.split("/", 1)[0]
    return row.doc(spec.name, row.text("content"), doc_id, lang=lang,
                   repo=row.get("max_stars_repo_name", str, required=False),
                   path=row.get("max_stars_repo_path", str, required=False),
                   stars=row.get("max_stars_count", int, required=False))


STARCODER = SourceSpec(
    name="starcoder", family="code", repo_id="bigcode/starcoderdata",
    # gated dataset (accept the terms on the hub, then log in); pin the sha on first download
    revision="main",
    allow_patterns=tuple(f"{lang}/train-*.parquet" for lang in STARCODER_LANGUAGES),
    file_format="parquet", adapter=_starcoder,
    required_columns=("content",), optional_columns=("id", "max_stars_repo_name", "max_stars_repo_path",
                                                     "max_stars_count"),
    fields="content, id, max_stars_repo_name, max_stars_repo_path, max_stars_count",
    description="StarCoderData: deduplicated GitHub source files of The Stack v1.2, one folder per language.",
    notes="columns verified against copies of the dataset's card; the per-language shard counts "
          "(<lang>/train-NNNNN-of-MMMMM.parquet) are not verified, hence the * pattern.")


def _algebraic_stack(row: Row, spec: SourceSpec, _t) -> Document:
    meta = row.get("meta", dict, required=False) or {}
    # meta's keys differ per language subset and are not documented; keep the scalar ones
    keep = {f"meta_{k}": v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) and k != "text"}
    lang = row.relpath.rsplit("/", 1)[-1].split(".", 1)[0].rstrip("0123456789")
    return row.doc(spec.name, row.text("text"), lang=lang, **dict(sorted(keep.items())[:8]))


ALGEBRAIC_STACK = SourceSpec(
    name="algebraic_stack", family="code", repo_id="EleutherAI/proof-pile-2",
    revision="e7709f5134c42b38aadc32b5ce8591e0ad3ddd23", config="algebraic-stack",
    allow_patterns=("algebraic-stack/train/*.jsonl.zst",), file_format="jsonl.zst", adapter=_algebraic_stack,
    fields="text, meta (per-language keys, unverified)",
    description="AlgebraicStack (Proof-Pile-2): 11B tokens of mathematical code (Lean, Isabelle, Coq, "
                "Python/Julia/R numerics, TeX, ...).",
    notes="file names algebraic-stack/train/<lang>NNNN.jsonl.zst verified (e.g. python0000.jsonl.zst, "
          "lean_proofsteps.jsonl.zst); the keys inside meta are not.")

SPECS = (STARCODER, ALGEBRAIC_STACK)
