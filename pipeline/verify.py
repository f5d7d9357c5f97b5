"""Check a built corpus against the shard contract (``jetmoe_core.shards``; docs/design.md, "The shard contract").

    python -m pipeline verify shards/sample          # manifest, tokenizer, every part, accounting
    python -m pipeline verify shards/sample --deep   # also: every token id < vocab size (reads all tokens)

Checks: manifest keys and format version; tokenizer.json sha256 and vocab size; each source's kind
(``pretrain``, ``sft``, ``dpo``) and part format; each part's size and sha256; Arrow IPC file format,
uncompressed and memory-mapped without copies; schema (the kind's token columns, lists of the manifest's dtype;
an SFT ``loss_mask`` of uint8) and metadata (the kind's format version, tokenizer sha256, vocab size, eos id,
dtype); the rows, by kind (``pipeline.verify_rows``: documents ending with EOS; masks of 0/1 as long as their
ids, a trained token in every conversation, EOS closing every assistant turn; non-empty DPO lists whose answers
end with EOS); per part, split and source the row, token (and trained-token) counts; no part file the manifest
does not list; per source the accounting chain (each stage balances, feeds the next, and the last stage's
output equals the rows in the shards).
Prints a table per source and split, then each problem; exits 0 when there is none, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
from tokenizers import Tokenizer

from jetmoe_core import shards as contract
from jetmoe_core.io import sha256_file

from pipeline.accounting import AccountingError, StageAccount, check_chain
from pipeline.verify_rows import check_rows


def check_part(path: Path, part: dict, tok_sha: str, vocab: int, eos: int, deep: bool,
               kind: str = "pretrain") -> list[str]:
    bad = []
    if path.stat().st_size != part.get("bytes"):
        bad.append(f"{path}: {path.stat().st_size} bytes, manifest says {part.get('bytes')}")
    if sha256_file(path) != part.get("sha256"):
        bad.append(f"{path}: sha256 differs from the manifest (file changed after the build?)")
    before = pa.total_allocated_bytes()
    with pa.memory_map(str(path)) as f:
        try:
            table = ipc.open_file(f).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            return bad + [f"{path}: not an Arrow IPC file ({e})"]
        if pa.total_allocated_bytes() - before > (1 << 20):
            bad.append(f"{path}: reading it allocated memory: compressed, so not zero-copy")
        fmt = contract.read_metadata(table.schema).get("format")
        if fmt != contract.FORMATS[kind]:
            other = contract.KIND_OF_FORMAT.get(fmt)
            bad.append(f"{path}: schema metadata format = {fmt!r}, " + (
                f"the format of {other} parts, in a source the manifest says is {kind}" if other else
                f"but a {kind} part of this version is {contract.FORMATS[kind]!r}: rebuild the corpus with this "
                f"version of the builder"))
        schema_bad = contract.check_schema(table.schema, vocab_size=vocab, tokenizer_sha256=tok_sha, eos_id=eos,
                                           kind=kind)
        bad += [f"{path}: {b}" for b in schema_bad]
        columns = contract.TOKEN_COLUMNS[kind] + ((contract.LOSS_MASK,) if kind == "sft" else ())
        if any(c in b for b in schema_bad for c in columns):
            return bad
        rows_bad, counts = check_rows(kind, table, eos_id=eos, vocab_size=vocab, deep=deep)
        bad += [f"{path}: {b}" for b in rows_bad]
        if part.get("n_docs") != table.num_rows:
            bad.append(f"{path}: {table.num_rows} rows, manifest says {part.get('n_docs')}")
        for key, n in counts.items():
            if part.get(key) != n:
                bad.append(f"{path}: {n} {key[2:]} tokens, manifest says {part.get(key)}")
    return bad


def verify(root: Path, deep: bool = False, out=sys.stdout) -> list[str]:
    man_path = root / contract.MANIFEST
    if not man_path.is_file():
        return [f"{man_path}: missing; build the corpus first (make corpus)"]
    try:
        man = json.loads(man_path.read_text())
    except json.JSONDecodeError as e:
        return [f"{man_path}: not JSON ({e})"]
    bad = [f"{man_path}: missing key {k!r}" for k in contract.MANIFEST_KEYS if k not in man]
    if bad:
        return bad
    if man.get("format") != contract.FORMAT:
        bad.append(f"{man_path}: format = {man.get('format')!r}; this version reads {contract.FORMAT!r}: rebuild "
                   f"the corpus with this version of the builder")
    tok = man["tokenizer"]
    tok_file = root / tok.get("path", contract.TOKENIZER)
    if not tok_file.is_file():
        return [f"{tok_file}: missing (manifest tokenizer.path)"]
    tok_sha = sha256_file(tok_file)
    if tok.get("sha256") != tok_sha:
        bad.append(f"{tok_file}: sha256 {tok_sha} != manifest tokenizer.sha256 {tok.get('sha256')}")
    vocab, eos = tok.get("vocab_size"), tok.get("eos_id")
    real_vocab = Tokenizer.from_file(str(tok_file)).get_vocab_size(with_added_tokens=True)
    if vocab != real_vocab:
        bad.append(f"{tok_file}: {real_vocab} tokens, manifest tokenizer.vocab_size says {vocab}")
    if not isinstance(eos, int):
        return bad + [f"{man_path}: tokenizer.eos_id must be an integer"]
    if man["dtype"] != contract.dtype_name(vocab):
        bad.append(f"{man_path}: dtype {man['dtype']} does not fit vocab size {vocab}")
    rows = []
    for name, src in sorted(man["sources"].items()):
        if not contract.SOURCE_NAME.fullmatch(name):
            bad.append(f"source name {name!r}: must be [a-z0-9_]+")
        try:
            kind = contract.source_kind(src, f"{man_path}: sources.{name}:")
        except contract.KindError as e:
            bad.append(str(e))
            continue
        if src.get("format", contract.FORMATS[kind]) != contract.FORMATS[kind]:
            bad.append(f"{man_path}: sources.{name}.format = {src.get('format')!r}, but a {kind} source's parts are "
                       f"{contract.FORMATS[kind]!r}")
        keys = ("n_docs", "n_tokens") + ((contract.N_TRAINED,) if kind == "sft" else ())
        n_docs = 0
        for split, sp in sorted(src.get("splits", {}).items()):
            sums = dict.fromkeys(keys, 0)
            for part in sp.get("parts", []):
                p = root / part["path"]
                if not p.is_file():
                    bad.append(f"{p}: missing (listed in the manifest)")
                    continue
                bad += check_part(p, part, tok_sha, vocab, eos, deep, kind)
                for key in keys:
                    sums[key] += part.get(key, 0)
            if any(sp.get(key) != n for key, n in sums.items()):
                bad.append(f"{name}/{split}: totals " + " / ".join(f"{sp.get(k)} {k[2:]}" for k in keys) +
                           " != sum of parts " + " / ".join(f"{n} {k[2:]}" for k, n in sums.items()))
            n_docs += sums["n_docs"]
            rows.append((name, kind, split, len(sp.get("parts", [])), sums["n_docs"], sums["n_tokens"]))
        if "train" not in src.get("splits", {}):
            bad.append(f"{name}: no train split")
        try:
            accs = [StageAccount.from_dict(a) for a in src.get("accounting", [])]
            if not accs:
                raise AccountingError(f"{name}: no accounting")
            check_chain(accs, name)
            if accs[-1].docs_out != n_docs:
                raise AccountingError(f"{name}: last stage's docs_out {accs[-1].docs_out} != {n_docs} in the shards")
        except (AccountingError, KeyError) as e:
            bad.append(str(e))
    listed = {str(root / part["path"]) for src in man["sources"].values() for sp in src.get("splits", {}).values()
              for part in sp.get("parts", [])}
    for name in sorted(man["sources"]):
        for p in sorted((root / name).rglob("*.arrow")):
            if str(p) not in listed:
                bad.append(f"{p}: not in the manifest (left by an earlier build?); delete it, or rebuild the corpus")
    w = max([len(r[0]) for r in rows] + [6])
    print(f"{'source':<{w}}  kind      split  parts        docs          tokens", file=out)
    for name, kind, split, n_parts, docs, toks in rows:
        print(f"{name:<{w}}  {kind:<8}  {split:<5}  {n_parts:>5}  {docs:>10,}  {toks:>14,}", file=out)
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, help="corpus folder, e.g. shards/sample")
    ap.add_argument("--deep", action="store_true", help="also check every token id against the vocab size")
    args = ap.parse_args(argv)
    problems = verify(args.corpus, args.deep)
    for p in problems:
        print("FAIL", p)
    print("corpus holds to the contract" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
