"""Look inside a built corpus: counts, token statistics and a few decoded documents.

    python -m pipeline inspect shards/sample                    # every source: docs, tokens, length stats
    python -m pipeline inspect shards/sample refinedweb         # one source, with 3 decoded documents
    python -m pipeline inspect shards/sample refinedweb --docs 5 --split val --chars 400
    python -m pipeline inspect shards/sample --json             # the statistics for machines

Reads the parts memory-mapped through the manifest (nothing is loaded whole), so it is quick on any size.
Token statistics are per document and count the EOS token: mean, median, p95 and max length. For an SFT source
a document is a conversation; for a DPO source a pair, its tokens those of the prompt and both answers, and
a decoded pair shows the prompt with the chosen answer, then the rejected one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from jetmoe_core import shards as contract


def _lengths(path: Path, kind: str = "pretrain") -> np.ndarray:
    with pa.memory_map(str(path)) as f:
        table = ipc.open_file(f).read_all()
        return sum(np.concatenate([np.diff(c.offsets.to_numpy()) for c in table.column(col).chunks]
                                  or [np.zeros(0, np.int64)]) for col in contract.TOKEN_COLUMNS[kind])


def source_stats(root: Path, src: dict) -> dict:
    out = {}
    kind = contract.source_kind(src)
    for split, sp in sorted(src["splits"].items()):
        lens = [_lengths(root / p["path"], kind) for p in sp["parts"]]
        lens = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        out[split] = {"parts": len(sp["parts"]), "docs": int(len(lens)), "tokens": int(lens.sum()),
                      "mean": float(lens.mean()) if len(lens) else 0.0,
                      "median": float(np.median(lens)) if len(lens) else 0.0,
                      "p95": float(np.percentile(lens, 95)) if len(lens) else 0.0,
                      "max": int(lens.max()) if len(lens) else 0}
    return out


def decoded_docs(root: Path, src: dict, split: str, n: int, tokenizer) -> list[tuple[str, int, str]]:
    docs = []
    columns = contract.TOKEN_COLUMNS[contract.source_kind(src)]
    for p in src["splits"].get(split, {}).get("parts", []):
        with pa.memory_map(str(root / p["path"])) as f:
            table = ipc.open_file(f).read_all()
            names = table.column("doc_id") if "doc_id" in table.column_names else None
            for i in range(min(n - len(docs), table.num_rows)):
                toks = [table.column(c)[i].values.to_numpy().tolist() for c in columns]
                text = [tokenizer.decode(t, skip_special_tokens=False) for t in toks]
                if len(text) == 3:  # a DPO pair: the prompt with the chosen answer, then the rejected one
                    text = [text[0] + text[1], "\n[rejected] " + text[2]]
                docs.append((names[i].as_py() if names is not None else f"#{i}", sum(map(len, toks)), "".join(text)))
        if len(docs) >= n:
            break
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline inspect", description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, help="corpus folder, e.g. shards/sample")
    ap.add_argument("source", nargs="?", help="one source: adds decoded documents")
    ap.add_argument("--split", default="train")
    ap.add_argument("--docs", type=int, default=3, help="decoded documents to show (with a source)")
    ap.add_argument("--chars", type=int, default=300, help="characters shown per document")
    ap.add_argument("--json", action="store_true", help="print the statistics as JSON")
    args = ap.parse_args(argv)

    man_path = args.corpus / "manifest.json"
    if not man_path.is_file():
        print(f"{man_path}: no manifest; build the corpus first (make corpus)", file=sys.stderr)
        return 2
    man = json.loads(man_path.read_text())
    sources = man["sources"]
    if args.source and args.source not in sources:
        print(f"no source {args.source!r} in {man_path}; known: {', '.join(sorted(sources))}", file=sys.stderr)
        return 2
    names = [args.source] if args.source else sorted(sources)
    stats = {s: source_stats(args.corpus, sources[s]) for s in names}
    if args.json:
        print(json.dumps({"corpus": man["corpus"], "tokenizer": man["tokenizer"], "sources": stats},
                         indent=2, sort_keys=True))
        return 0

    tok = man["tokenizer"]
    print(f"corpus {man['corpus']}: {len(sources)} sources, dtype {man['dtype']}, vocab {tok['vocab_size']}, "
          f"eos {tok['eos_id']}, tokenizer {tok['sha256'][:12]}")
    w = max(len(s) for s in names + ["source"])
    print(f"{'source':<{w}}  split  parts       docs        tokens     mean   median      p95      max")
    total = [0, 0]
    for s in names:
        for split, st in stats[s].items():
            print(f"{s:<{w}}  {split:<5}  {st['parts']:>5}  {st['docs']:>9,}  {st['tokens']:>12,}  "
                  f"{st['mean']:>7.1f}  {st['median']:>7.1f}  {st['p95']:>7.1f}  {st['max']:>7,}")
            total[0] += st["docs"]
            total[1] += st["tokens"]
    print(f"{'TOTAL':<{w}}         {'':>5}  {total[0]:>9,}  {total[1]:>12,}")
    if args.source:
        acc = sources[args.source].get("accounting", [])
        if acc:
            print("\naccounting: " + " → ".join(f"{a['stage']} {a['docs_out']:,}" for a in acc)
                  + f" (from {acc[0]['docs_in']:,} in)")
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(args.corpus / tok["path"]))
        for doc_id, n, text in decoded_docs(args.corpus, sources[args.source], args.split, args.docs, tokenizer):
            shown = text if len(text) <= args.chars else text[: args.chars] + " …"
            print(f"\n--- {doc_id} ({n:,} tokens) ---\n{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
