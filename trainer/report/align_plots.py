"""Plots of the alignment runs (`python -m trainer sft` / `dpo`, their metrics.jsonl), each titled with the run.

    sft = load_align_run("runs/tiny-sft", "sft");  dpo = load_align_run("runs/tiny-dpo", "dpo")
    plot_sft(sft, out / "sft_loss.png")      train loss on the assistant tokens (per step and smoothed) and the
                                             val mean over the SFT sources
    plot_dpo(dpo, out / "dpo_rewards.png")   left: chosen and rejected rewards, β·(log π − log π_ref), per step,
                                             and their margin; right: the DPO loss and the preference accuracy;
                                             val points as markers

A run folder of the wrong stage (or a pretraining run) is a ValueError naming the file and the stage it holds.
Every function writes one PNG atomically and returns its path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.metrics import read_jsonl

from .run_plots import _smooth
from .style import pyplot, save

__all__ = ["AlignRun", "load_align_run", "plot_sft", "plot_dpo"]


@dataclass
class AlignRun:
    path: Path
    stage: str
    train: list[dict]
    val: list[dict]

    @property
    def name(self) -> str:
        return self.path.resolve().name


def load_align_run(run_dir: str | Path, stage: str) -> AlignRun:
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --{stage} must be a run folder written by "
                                f"`python -m trainer {stage}` (e.g. runs/tiny-{stage} after `make {stage}`)")
    recs = read_jsonl(path)
    stages = {r.get("stage", "pretraining") for r in recs if r.get("kind") in ("train", "val")}
    if stages - {stage}:
        raise ValueError(f"{path} holds {', '.join(sorted(stages))} steps, not {stage}; give --{stage} the "
                         f"{stage} run folder")
    train = [r for r in recs if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))]
    if not train:
        raise ValueError(f"{path} holds no {stage} steps yet; run `make {stage}` first")
    return AlignRun(run_dir, stage, train, [r for r in recs if r.get("kind") == "val"])


def _series(recs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in recs if isinstance(r.get(key), (int, float))]
    return np.array([r["step"] for r in rows]), np.array([r[key] for r in rows], dtype=float)


def plot_sft(run: AlignRun, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    steps, loss = _series(run.train, "lm_loss")
    w = max(3, len(loss) // 20)
    ax.plot(steps, loss, color="#9bb7e0", lw=0.8, label="train loss (assistant tokens), per step")
    if len(loss) >= w:
        ax.plot(steps, _smooth(loss, w), color="#1f4e9c", lw=2, label=f"train loss, moving mean of {w} steps")
    vs, vm = _series(run.val, "mean")
    if len(vs):
        ax.plot(vs, vm, "o-", color="black", lw=2.2, ms=5,
                label=f"val loss, mean of {len(run.val[-1].get('loss', {}))} sources")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats per trained token)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", framealpha=0.9)
    fig.suptitle(f"SFT run {run.name}: loss", x=0.02, ha="left", fontsize=13, fontweight="bold")
    return save(fig, out)


def plot_dpo(run: AlignRun, out: Path) -> Path:
    plt = pyplot()
    fig, (ax, axl) = plt.subplots(1, 2, figsize=(13, 5))
    for key, colour, label in (("rewards_chosen", "#2a9d4b", "chosen reward"),
                               ("rewards_rejected", "#c0392b", "rejected reward"),
                               ("margins", "black", "margin (chosen − rejected)")):
        s, y = _series(run.train, key)
        ax.plot(s, y, "-", color=colour, lw=1.6, label=f"{label}, train")
        vs, vy = _series(run.val, key)
        if len(vs):
            ax.plot(vs, vy, "o", color=colour, ms=6, mfc="white", label=f"{label}, val")
    ax.axhline(0, color="#888888", lw=0.8)
    ax.set_title("rewards β·(log π − log π_ref), mean over the step's pairs", loc="left")
    ax.set_xlabel("optimizer step")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    s, loss = _series(run.train, "loss")
    axl.plot(s, loss, "-", color="#1f4e9c", lw=1.6, label="DPO loss, train")
    vs, vl = _series(run.val, "mean")
    if len(vs):
        axl.plot(vs, vl, "o", color="#1f4e9c", ms=6, mfc="white", label="DPO loss, val")
    axl.axhline(np.log(2), color="#888888", lw=0.8, ls="--", label="ln 2 (policy = reference)")
    axl.set_xlabel("optimizer step")
    axl.set_ylabel("loss")
    axl.grid(alpha=0.3)
    acc = axl.twinx()
    s, a = _series(run.train, "accuracy")
    acc.plot(s, a, "-", color="#e08a1f", lw=1.2, label="accuracy (chosen reward > rejected), train")
    acc.set_ylim(-0.05, 1.05)
    acc.set_ylabel("accuracy")
    lines = axl.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
    axl.legend(lines, [h.get_label() for h in lines], loc="lower left", fontsize=8, framealpha=0.9)
    axl.set_title("DPO loss and preference accuracy", loc="left")
    fig.suptitle(f"DPO run {run.name}: rewards", x=0.02, ha="left", fontsize=13, fontweight="bold")
    return save(fig, out)
