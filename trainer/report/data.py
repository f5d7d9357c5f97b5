"""What the report shows, read from a run folder and a corpus folder (no plotting, no HTML here).

    run = load_run("runs/tiny")            # metrics.jsonl + the run's saved config (run_config.toml)
    run.phases, run.train, run.val, run.events, run.config
    phase_summary(run)                     # one dict per phase: steps, tokens, losses first→last, throughput
    realised_shares(run, 2)                # {source: share of the tokens phase 2 drew}
    mixture_plans(run, "shards/sample")    # per phase: trainer.data.plan rows + realised shares (+ a note)
    rows = corpus_table(load_manifest("shards/sample"))   # per source: docs in/kept/dropped/deduped, tokens

Contract: the run folder holds `metrics.jsonl` as written by `trainer.metrics.MetricsLog`; the corpus
folder holds `manifest.json` as written by `python -m pipeline build` (its per-source `accounting` chain:
stage, docs_in, docs_out, dropped{reason: n}, rejected{reason: n}). The trainer does not import `pipeline`,
so duplicates are told apart here by the accounting's stage and reason names (`exact_dup`, `minhash_dup`,
`cross_source_dup`, stages `dedup*`). Missing folders and bad JSON raise errors that name the file.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from trainer.metrics import read_jsonl

DEDUP_KINDS = ("exact", "MinHash", "cross-source", "other dedup")


@dataclass
class Run:
    path: Path
    train: list[dict]
    val: list[dict]
    events: list[dict]
    config: dict | None = None  # run_config of the newest checkpoint's train_state.json, if any
    config_from: Path | None = None

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def phases(self) -> list[int]:
        return sorted({r["phase"] for r in self.train})

    @property
    def batch_tokens(self) -> int | None:
        if self.config:
            return int(self.config["train"]["batch_tokens"])
        first = self.train[0]
        return int(first["tokens"] // first["step"]) if first.get("tokens") and first.get("step") else None

    def rows(self, phase: int) -> list[dict]:
        return [r for r in self.train if r["phase"] == phase]


def _run_config(run_dir: Path) -> tuple[dict | None, Path | None]:
    """The run's saved config (<run>/run_config.toml, trainer.run_folder), else the one saved with the newest
    checkpoint (checkpoints/step-NNNNNNNN/train_state.json) by runs from before that file existed."""
    from trainer.run_folder import SAVED, read_saved_config

    saved = read_saved_config(run_dir)
    if saved is not None:
        return saved[0], run_dir / SAVED
    for state in sorted((run_dir / "checkpoints").glob("step-*/train_state.json"), reverse=True):
        try:
            cfg = json.loads(state.read_text()).get("run_config")
        except (OSError, json.JSONDecodeError):
            continue  # a checkpoint being written or broken: the next older one will do
        if isinstance(cfg, dict):
            return cfg, state
    return None, None


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --run must be a run folder written by `python -m trainer train` "
                                "(e.g. runs/tiny after `make phase1`)")
    recs = read_jsonl(path)
    train = [r for r in recs if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))]
    val = [r for r in recs if r.get("kind") == "val" and r.get("loss")]
    events = [r for r in recs if r.get("kind") == "event"]
    if not train:
        raise ValueError(f"{path} holds no training steps yet; train first (make phase1)")
    config, config_from = _run_config(run_dir)
    return Run(run_dir, train, val, events, config, config_from)


def val_mean(rec: dict) -> float:
    return rec["mean"] if isinstance(rec.get("mean"), (int, float)) else statistics.fmean(rec["loss"].values())


def realised_shares(run: Run, phase: int) -> dict[str, float]:
    """Share of the tokens drawn in `phase` per source (summed over the phase's logged steps)."""
    got: dict[str, float] = {}
    for r in run.rows(phase):
        for src, n in r.get("source_tokens", {}).items():
            got[src] = got.get(src, 0) + n
    total = sum(got.values())
    return {s: n / total for s, n in sorted(got.items())} if total else {}


def targets(run: Run) -> dict[int, dict]:
    """{phase: phase_start event} (mixture path and normalised target shares); the last one per phase wins."""
    return {e["phase"]: e for e in run.events if e.get("event") == "phase_start"}


def phase_summary(run: Run) -> list[dict]:
    out = []
    for phase in run.phases:
        rows = run.rows(phase)
        vals = [v for v in run.val if v["phase"] == phase]
        step_s = [r["step_s"] for r in rows if isinstance(r.get("step_s"), (int, float))]
        mfu = [r["mfu"] for r in rows if isinstance(r.get("mfu"), (int, float))]
        bt = run.batch_tokens
        tokens = (rows[-1]["step"] - rows[0]["step"] + 1) * bt if bt else None
        out.append({
            "phase": phase, "step_first": rows[0]["step"] - 1, "step_last": rows[-1]["step"],
            "steps": rows[-1]["step"] - rows[0]["step"] + 1, "tokens": tokens,
            "train_first": rows[0]["lm_loss"], "train_last": rows[-1]["lm_loss"],
            "val_first": val_mean(vals[0]) if vals else None, "val_last": val_mean(vals[-1]) if vals else None,
            "n_val_sources": len(vals[-1]["loss"]) if vals else 0,
            "compute_s": sum(step_s) if len(step_s) == len(rows) else None,
            "tokens_per_s": tokens / sum(step_s) if tokens and step_s and len(step_s) == len(rows) else None,
            "mfu": statistics.median(mfu) if mfu else None,
        })
    return out


@dataclass
class PhasePlan:
    phase: int
    mixture: str
    tokens: int | None
    rows: list = field(default_factory=list)  # trainer.data.plan.PlanRow, largest share first
    realised: dict[str, float] = field(default_factory=dict)
    max_epochs: float | None = None
    notes: list[str] = field(default_factory=list)


def mixture_plans(run: Run, corpus_dir: str | Path | None) -> list[PhasePlan]:
    """The plan of each phase the run started (`python -m trainer plan` computed for the run's mixture file and
    token budget on `corpus_dir`, default the run's own corpus), with the realised shares beside it. What
    cannot be planned (a mixture file or corpus that is gone) is said in `notes`, and `rows` stays empty."""
    from trainer.data.corpus import Corpus, CorpusError
    from trainer.data.mixture import MixtureError, load_mixture
    from trainer.data.plan import plan_mixture

    corpus_dir = corpus_dir or (run.config or {}).get("data", {}).get("corpus")
    plans = []
    for phase, event in sorted(targets(run).items()):
        mix_path = event.get("mixture") or (run.config or {}).get("data", {}).get(f"phase{phase}_mixture", "")
        plan = PhasePlan(phase, str(mix_path), None, realised=realised_shares(run, phase))
        if run.config:
            plan.tokens = int(run.config["train"][f"phase{phase}_tokens"])
        elif run.rows(phase) and run.batch_tokens:
            plan.tokens = len(run.rows(phase)) * run.batch_tokens
            plan.notes.append(f"no checkpoint with the run config in {run.path}/checkpoints: the phase's tokens are "
                              f"the {plan.tokens:,} logged so far")
        missing = [what for what, ok in (("mixture file", mix_path), ("token budget", plan.tokens is not None),
                                         ("corpus (give --corpus)", corpus_dir)) if not ok]
        if missing:
            plan.notes.append(f"no plan: the run names no {' and no '.join(missing)}")
            plans.append(plan)
            continue
        try:
            corpus = Corpus.open(corpus_dir)
            mix = load_mixture(mix_path, corpus)
        except (CorpusError, MixtureError) as e:
            plan.notes.append(f"no plan: {e}")
            plans.append(plan)
            continue
        plan.rows = plan_mixture(mix, corpus, plan.tokens)
        plan.max_epochs = mix.max_epochs
        used = event.get("shares") or {}
        if used and (set(used) != set(mix.shares) or any(abs(used[s] - mix.shares[s]) > 1e-9 for s in used)):
            plan.notes.append(f"{mix_path} has changed since the run started this phase: the plan shows the file as "
                              "it is now, the realised shares come from what the run drew")
        plans.append(plan)
    return plans


# ------------------------------------------------------------------------------------------- corpus
def load_manifest(corpus_dir: str | Path) -> dict:
    path = Path(corpus_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --corpus must be a corpus folder (e.g. shards/sample after "
                                "`make corpus`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}; rebuild the corpus") from None
    if not isinstance(manifest.get("sources"), dict) or not manifest["sources"]:
        raise ValueError(f"{path}: lists no sources (key 'sources'); rebuild the corpus")
    return manifest


def dedup_kind(stage: str, reason: str) -> str | None:
    """Which deduplication removed a document, from the accounting's stage and reason; None if not dedup."""
    stage, reason = stage.lower(), reason.lower()
    if not (stage.startswith("dedup") or "dedup" in reason or reason.endswith("_dup")):
        return None  # e.g. the filter reason duplicated_5_n_grams is repetition inside a document, not dedup
    if "cross" in reason or "cross" in stage:
        return "cross-source"
    if "exact" in reason:
        return "exact"
    if "minhash" in reason:
        return "MinHash"
    return "other dedup"


def corpus_table(manifest: dict) -> list[dict]:
    """One row per source, most tokens first: docs_in, kept, dropped/rejected {reason: n} outside dedup,
    dedup {kind: n} (DEDUP_KINDS), dedup_in (documents entering the first dedup stage), dedup_n, dedup_rate,
    train/val tokens and documents."""
    rows = []
    for src, body in manifest.get("sources", {}).items():
        splits = body.get("splits", {})
        acc = body.get("accounting") or []
        n_docs = sum(s.get("n_docs", 0) for s in splits.values())
        row = {"source": src, "docs_in": acc[0]["docs_in"] if acc else n_docs,
               "kept": acc[-1]["docs_out"] if acc else n_docs, "dropped": {}, "rejected": {},
               "dedup": {}, "dedup_in": None}
        for split in ("train", "val"):
            row[f"{split}_tokens"] = splits.get(split, {}).get("n_tokens", 0)
            row[f"{split}_docs"] = splits.get(split, {}).get("n_docs", 0)
        for a in acc:
            stage = str(a.get("stage", ""))
            if stage.startswith("dedup") and row["dedup_in"] is None:
                row["dedup_in"] = a["docs_in"]
            for kind in ("dropped", "rejected"):
                for reason, n in sorted((a.get(kind) or {}).items()):
                    dk = dedup_kind(stage, reason)
                    if dk is not None:
                        if row["dedup_in"] is None:
                            row["dedup_in"] = a["docs_in"]
                        row["dedup"][dk] = row["dedup"].get(dk, 0) + n
                    else:
                        row[kind][reason] = row[kind].get(reason, 0) + n
        row["dedup_in"] = row["dedup_in"] or 0
        row["dedup_n"] = sum(row["dedup"].values())
        row["dedup_rate"] = row["dedup_n"] / row["dedup_in"] if row["dedup_in"] else 0.0
        rows.append(row)
    if not rows:
        raise ValueError("manifest.json lists no sources")
    return sorted(rows, key=lambda r: (-(r["train_tokens"] + r["val_tokens"]), r["source"]))
