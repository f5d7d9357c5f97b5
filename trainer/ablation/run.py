"""Train every (variant, seed) of a grid with the ordinary trainer and read each run's metrics back.

    results = run_grid(grid, Path("runs/ablation/cpu"))    # {"grid": ..., "variants": {...}, "runs": [...]}

Each run is `python -m trainer train <out>/<variant>/seed-<s>/run.toml --phase 1` then `--phase 2` (in this process
or a worker; its console output, stdout and stderr, goes to that folder's train.log), so a variant trains exactly as
a user's run would. A finished run leaves result.json (its val curve, final held-out loss per source, tokens/s and
expert load) and loses its checkpoints (the grid needs none of them; a 21-run grid would otherwise keep 21 models).
A rerun skips runs whose result.json was made from the same run config and model (fingerprint), and starts over any
other run folder it finds.

`jobs` runs that many (variant, seed) pairs at once, each in its own process (spawned, so no torch state is
shared). A run's result does not depend on `jobs`: each run is the same single process with the same seeds and
threads (a test checks the bytes), so on a CPU box `jobs × train.threads` should be the cores there are.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import json
import multiprocessing
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from jetmoe_core.config import dump_toml, fingerprint
from jetmoe_core.io import write_json_atomic, write_text_atomic
from trainer.config import load_run_config
from trainer.metrics import read_jsonl

from .grid import Grid, Variant

__all__ = ["run_grid", "read_run", "LOAD_POINTS"]

LOAD_POINTS = 40  # expert-load curve points kept per run (the log has one record per step)
RESULT_FORMAT = 2  # in each run's fingerprint: a result.json of an older format is trained again, not misread


def _model_toml(variant: Variant) -> str:
    table = {k: v for k, v in variant.model.to_dict().items() if v is not None}
    return dump_toml({"model": table}, header=f"ablation variant {variant.name}: {variant.label}")


def run_grid(grid: Grid, out: Path, log=functools.partial(print, flush=True), jobs: int = 1) -> dict:
    """Run what is not done yet (`jobs` runs at once), then return every run's result with the grid's
    description; the runs are listed in grid order whatever order they finished in."""
    out = Path(out)
    todo = [(v, s) for v in grid.variants.values() for s in grid.section.seeds]
    runs: list[dict | None] = [None] * len(todo)
    t_start = time.perf_counter()

    def report(i: int, result: dict, fresh: bool) -> None:
        runs[i] = result
        n = sum(r is not None for r in runs)
        variant, seed = todo[i]
        verb = f"trained in {result['wall_s']:.0f} s" if fresh else "already done"
        log(f"[{n}/{len(todo)}] {variant.name} seed {seed}: {verb}, final val loss {result['final']['overall']:.4f}"
            f" ({time.perf_counter() - t_start:.0f} s so far)")

    if jobs <= 1:
        for i, (variant, seed) in enumerate(todo):
            report(i, *_run_one(grid, variant, seed, out))
    else:
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, grid, v, s, out): i for i, (v, s) in enumerate(todo)}
            try:
                for fut in cf.as_completed(futures):
                    report(futures[fut], *fut.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # the runs under way finish; no new one starts
                raise
    return {"grid": {"name": grid.name, "path": str(grid.path), "quick": grid.quick, "control": grid.section.control,
                     "seeds": list(grid.section.seeds), "confidence": grid.section.confidence,
                     "batch_tokens": grid.run_raw.get("train", {}).get("batch_tokens"),
                     "run_config": grid.section.run_config},
            "variants": {v.name: {"label": v.label, "against": list(v.against), "total_params": v.total_params,
                                  "active_params": v.active_params,
                                  "active_params_no_embedding": v.active_params - v.model.vocab_size * v.model.d_model,
                                  "flops_per_token": v.flops_per_token, "sparse_kinds": list(v.sparse_kinds),
                                  "model": {k: x for k, x in v.model.to_dict().items() if x is not None}}
                         for v in grid.variants.values()},
            "runs": [r for r in runs if r is not None]}


def _run_one(grid: Grid, variant: Variant, seed: int, out: Path) -> tuple[dict, bool]:
    from trainer.train import train

    vdir = out / variant.name
    model_toml = vdir / "model.toml"
    write_text_atomic(model_toml, _model_toml(variant))
    run_dir = vdir / f"seed-{seed}"
    table = grid.run_table(variant, seed, model_toml.resolve())
    key = fingerprint(table, variant.model, RESULT_FORMAT)
    done = run_dir / "result.json"
    if done.is_file():
        result = json.loads(done.read_text())
        if result.get("fingerprint") == key:
            return result, False
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a run of another config, or one cut short: start it over
    run_toml = run_dir / "run.toml"
    write_text_atomic(run_toml, dump_toml(table, header=f"ablation {grid.name}: variant {variant.name}, seed {seed}"))
    cfg = load_run_config(run_toml)
    phases = (1, 2) if cfg.train.phase2_tokens > 0 else (1,)
    t0 = time.perf_counter()
    with open(run_dir / "train.log", "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        for phase in phases:
            rc = train(cfg, phase, run_dir)
            if rc != 0:
                raise RuntimeError(f"ablation {grid.name}: {variant.name} seed {seed} phase {phase} ended with exit "
                                   f"code {rc}; see {run_dir / 'train.log'}")
    result = read_run(run_dir)
    result.update(variant=variant.name, seed=seed, fingerprint=key, wall_s=time.perf_counter() - t0)
    write_json_atomic(done, result)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return result, True


def read_run(run_dir: Path) -> dict:
    """One run's metrics.jsonl → val curve, final held-out loss (per source, their mean, and overall: per token
    over every val token evaluated), tokens/s, expert load."""
    records = read_jsonl(Path(run_dir) / "metrics.jsonl")
    val: dict[int, dict] = {}
    for r in records:
        if r["kind"] == "val":
            val[r["tokens"]] = r  # phase 2 re-evaluates phase 1's last step: the same point, kept once
    if not val:
        raise ValueError(f"{run_dir}/metrics.jsonl has no val records; does the corpus have val splits?")
    if any("overall" not in r for r in val.values()):
        raise ValueError(f"{run_dir}/metrics.jsonl: val records without 'overall' (written by an older trainer); "
                         "delete the run folder to train it again")
    curve = [{"tokens": t, "overall": r["overall"], "mean": r["mean"], "loss": r["loss"]}
             for t, r in sorted(val.items())]
    train = [r for r in records if r["kind"] == "train"]
    # the first step of each phase pays one-off costs (allocations, loader start): leave it out of tokens/s
    steady = [r["tokens_per_s"] for r in train if r["step"] not in _phase_first_steps(train)] or \
        [r["tokens_per_s"] for r in train]
    last = curve[-1]
    return {"curve": curve, "final": {"overall": last["overall"], "mean": last["mean"], "loss": last["loss"],
                                      "val_tokens": val[last["tokens"]]["val_tokens"]},
            "tokens": train[-1]["tokens"], "tokens_per_s": statistics.median(steady),
            "expert_load": {kind: _load(train, kind) for kind in ("attn", "mlp")}}


def _phase_first_steps(train: list[dict]) -> set[int]:
    firsts, last_phase = set(), None
    for r in train:
        if r["phase"] != last_phase:
            firsts.add(r["step"])
            last_phase = r["phase"]
    return firsts


def _load(train: list[dict], kind: str) -> dict:
    """Load balance of one kind over training: per layer, max expert share × n_experts (1.0 = balanced; n_experts =
    every token on one expert), in LOAD_POINTS bins of steps; and the share per expert over the last quarter."""
    counts = np.array([r["expert_tokens"][kind] for r in train], dtype=np.float64)  # [T, L, E]
    n_exp = counts.shape[-1]
    edges = np.linspace(0, len(train), min(LOAD_POINTS, len(train)) + 1).astype(int)
    binned = np.stack([counts[a:b].sum(0) for a, b in zip(edges[:-1], edges[1:])])  # [B, L, E]
    shares = binned / np.maximum(binned.sum(-1, keepdims=True), 1)
    tail = counts[len(train) * 3 // 4:].sum(0)
    return {"n_experts": n_exp, "tokens": [train[b - 1]["tokens"] for b in edges[1:]],
            "max_over_mean": (shares.max(-1) * n_exp).tolist(),  # [B, L]
            "final_shares": (tail / np.maximum(tail.sum(-1, keepdims=True), 1)).tolist()}  # [L, E]
