"""Per-document negative log-likelihood and perplexity of a file under a JetMoE model.

    python -m trainer score runs/tiny held_out.txt                  # text: documents separated by blank lines
    python -m trainer score exports/tiny ids.txt --token-ids --json # ids: one document per line
    python -m trainer score runs/tiny-dpo chats.jsonl --chat        # conversations: their assistant tokens

The model is a checkpoint folder (or a run folder: its newest checkpoint) or a Hugging Face JetMoE folder.
Text is tokenized with the tokenizer.json beside the weights and framed as in the packed training stream:
EOS + document + EOS (each corpus document follows the previous one's EOS and ends with its own);
`--no-boundary` scores the bare tokens. With `--token-ids` each line is scored exactly as given, no BOS/EOS
added. A document of n tokens has n-1 predicted tokens; its NLL is their mean (nats), perplexity exp(NLL).
Documents longer than max_seq_len+1 are cut into consecutive windows (context restarts in each, every
token is predicted once). With `--chat` each JSONL line is a conversation ({"messages": [{"role", "content"},
...]}) rendered by the chat template (`jetmoe_core.chat`, as the model was trained and as transformers
renders it) and only its assistant tokens, each turn's EOS included, are scored (`trainer.align.chat_score`).
Documents are right-padded into batches: routing is per token and dropless and
attention is causal, so padding never changes a real token's score.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .hf import read_hf_folder, resolve_checkpoint
from .io import load_checkpoint_weights
from .jetmoe import JetMoE

__all__ = ["Document", "load_any", "read_token_id_docs", "read_text_docs", "score_documents", "main"]


@dataclass
class Document:
    index: int
    line: int          # first line of the document in the file (1-based)
    ids: list[int]
    nll_sum: float = 0.0
    mask: list[int] | None = None
    """Which tokens are scored (1) as predictions of the tokens before them; None: every token but the first."""

    @property
    def n_predicted(self) -> int:
        return max(len(self.ids) - 1, 0) if self.mask is None else int(sum(self.mask[1:]))

    @property
    def nll(self) -> float:
        return self.nll_sum / self.n_predicted

    @property
    def ppl(self) -> float:
        return math.exp(min(self.nll, 700.0))


def load_any(path: str | Path, device: str | torch.device = "cpu") -> tuple[JetMoE, Path]:
    """(model in eval mode, folder holding its tokenizer.json) from an HF folder, checkpoint or run folder."""
    path = Path(path)
    if (path / "config.json").is_file() and not (path / "model_config.json").is_file():
        cfg, tensors = read_hf_folder(path)
        with torch.device("meta"):
            model = JetMoE(cfg)
        model.load_state_dict({k: v.to(device) for k, v in tensors.items()}, assign=True)
        return model.eval(), path
    ckpt = resolve_checkpoint(path)
    return load_checkpoint_weights(ckpt, device=device).eval(), ckpt


def read_token_id_docs(path: Path, vocab_size: int) -> list[Document]:
    docs = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            ids = []
            for tok in fields:
                if not re.fullmatch(r"\d+", tok):
                    raise ValueError(f"{path}:{lineno}: {tok!r} is not a non-negative integer token id; "
                                     "--token-ids expects whitespace-separated integers, one document per line")
                value = int(tok)
                if value >= vocab_size:
                    raise ValueError(f"{path}:{lineno}: token id {value} is outside the model's vocabulary "
                                     f"(vocab_size={vocab_size})")
                ids.append(value)
            if len(ids) < 2:
                raise ValueError(f"{path}:{lineno}: a document needs at least 2 tokens to predict one")
            docs.append(Document(len(docs), lineno, ids))
    if not docs:
        raise ValueError(f"{path}: no documents (empty file)")
    return docs


def read_text_docs(path: Path, tokenizer_json: Path, eos_id: int | None, boundary: bool) -> list[Document]:
    from tokenizers import Tokenizer

    if not tokenizer_json.is_file():
        raise FileNotFoundError(f"{tokenizer_json} not found: scoring text needs the model's tokenizer; "
                                "score token ids with --token-ids instead, or copy the corpus tokenizer.json there")
    tok = Tokenizer.from_file(str(tokenizer_json))
    if boundary and eos_id is None:
        raise ValueError("the model config has no eos_id; pass --no-boundary")
    docs, buf, start = [], [], 0
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines + [""], 1):
        if line.strip():
            if not buf:
                start = lineno
            buf.append(line)
            continue
        if buf:
            ids = tok.encode("\n".join(buf), add_special_tokens=False).ids
            if boundary:
                ids = [eos_id] + ids + [eos_id]
            if len(ids) < 2:
                raise ValueError(f"{path}:{start}: the document tokenizes to {len(ids)} token(s); 2 are needed")
            docs.append(Document(len(docs), start, ids))
            buf = []
    if not docs:
        raise ValueError(f"{path}: no documents (empty file)")
    return docs


@torch.no_grad()
def score_documents(model: JetMoE, docs: list[Document], batch_size: int = 8, progress: bool = True) -> None:
    """Fill each document's nll_sum (summed over its predicted tokens, fp32)."""
    device = model.embed.weight.device
    window = model.cfg.max_seq_len
    pieces = []  # (doc, input ids, target ids)
    for doc in docs:
        for s in range(0, len(doc.ids) - 1, window):
            chunk = doc.ids[s:s + window + 1]
            target = chunk[1:] if doc.mask is None else \
                [t if m else -100 for t, m in zip(chunk[1:], doc.mask[s + 1:s + window + 1])]
            pieces.append((doc, chunk[:-1], target))
    pieces.sort(key=lambda p: -len(p[1]))  # similar lengths together: less padding
    for i in tqdm(range(0, len(pieces), batch_size), desc="score", unit="batch", disable=not progress,
                  file=sys.stderr):
        batch = pieces[i:i + batch_size]
        t = max(len(p[1]) for p in batch)
        inputs = torch.zeros(len(batch), t, dtype=torch.long)
        targets = torch.full((len(batch), t), -100, dtype=torch.long)
        for r, (_, x, y) in enumerate(batch):
            inputs[r, :len(x)] = torch.tensor(x)
            targets[r, :len(y)] = torch.tensor(y)
        logits = model(inputs.to(device)).logits.float()
        nll = F.cross_entropy(logits.transpose(1, 2), targets.to(device), ignore_index=-100, reduction="none")
        for r, (doc, _, _) in enumerate(batch):
            doc.nll_sum += nll[r].double().sum().item()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer score", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint folder, run folder, or Hugging Face JetMoE folder")
    ap.add_argument("file", help="text (documents separated by blank lines) or, with --token-ids, token ids")
    ap.add_argument("--token-ids", action="store_true", help="whitespace-separated ids, one document per line")
    ap.add_argument("--no-boundary", action="store_true", help="text: do not frame documents with EOS")
    ap.add_argument("--chat", action="store_true", help="JSONL of conversations ({\"messages\": [...]} a line): "
                                                        "score their assistant tokens")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    path = Path(args.file)
    try:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        model, tok_dir = load_any(args.model, args.device)
        cfg = model.cfg
        if args.chat:
            from trainer.align.chat_score import read_chat_docs
            docs = read_chat_docs(path, tok_dir / "tokenizer.json", cfg.eos_id)
        else:
            docs = (read_token_id_docs(path, cfg.vocab_size) if args.token_ids else
                    read_text_docs(path, tok_dir / "tokenizer.json", cfg.eos_id, not args.no_boundary))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"score: error: {e}", file=sys.stderr)
        return 1
    score_documents(model, docs, args.batch_size, progress=not args.json)
    n_pred = sum(d.n_predicted for d in docs)
    total_nll = sum(d.nll_sum for d in docs) / n_pred
    rows = [{"doc": d.index, "line": d.line, "n_tokens": len(d.ids), "n_predicted": d.n_predicted,
             "nll": d.nll, "ppl": d.ppl} for d in docs]
    total = {"documents": len(docs), "n_predicted": n_pred, "nll": total_nll, "ppl": math.exp(min(total_nll, 700.0))}
    if args.json:
        print(json.dumps({"model": str(args.model), "file": str(path), "documents": rows, "total": total}))
        return 0
    print(f"{'doc':>5} {'line':>6} {'tokens':>8} {'nll':>9} {'ppl':>11}")
    for r in rows:
        print(f"{r['doc']:>5} {r['line']:>6} {r['n_tokens']:>8} {r['nll']:>9.4f} {r['ppl']:>11.3f}")
    print(f"{'all':>5} {'':>6} {n_pred:>8} {total_nll:>9.4f} {total['ppl']:>11.3f}   "
          "(token-weighted over predicted tokens)")
    return 0
