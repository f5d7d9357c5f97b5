"""Train JetMoE: phase 1 (warmup + stable) or phase 2 (decay on the phase-2 mixture), resumable.

    python -m trainer train trainer/configs/tiny.toml --phase 1 --run-dir runs/tiny [--section.key=value ...]
    python -m trainer train --phase 2 --run-dir runs/tiny            # the run folder's saved config
    torchrun --nproc-per-node 8 -m trainer train trainer/configs/jetmoe-8b.toml --phase 1 --run-dir runs/8b

A phase resumes from the run's newest valid checkpoint (a corrupt newest one falls back to the previous,
with a warning). When the run has checkpoints but none is usable it stops (exit 2) and changes nothing;
`--restart` starts phase 1 over on purpose, moving the old checkpoints and logs to <run-dir>/previous-N/.
Phase 2 starts from phase 1's final checkpoint: same weights, optimizer and step counter, the loader
switched to the phase-2 mixture, and the WSD schedule continuing into its decay. The run folder keeps the
config it started with (`<run-dir>/run_config.toml`, `trainer.run_folder`): later commands on it read it, so
phase 2 and a resume need no config file and no repeated overrides. Exit codes: 0 done,
2 bad input (config, corpus, mixture, checkpoints) or an I/O failure (full disk, read-only folder: the
message names the path, what the error means and the fix), 3 the loss became NaN/inf.

The global batch is `train.batch_tokens`; each rank runs `data.micro_batch` sequences per forward and
accumulates gradients over batch_tokens / (seq_len × micro_batch × ranks) micro-batches, so a run on
1 process and on N ranks with the same global batch takes the same optimizer steps on the same data.

Shape: `trainer.build` makes the pieces (process group, model, optimizer, data, resume point), `trainer.step`
does one optimizer step (`train_step`) and the validation loss; this module runs the loop around them:
logging, validation and checkpoint cadence, and what the user reads.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer import build as B
from trainer import checkpoint as ckpt
from trainer import dist as D
from trainer import hooks
from jetmoe_core.io import IOFault
from trainer.config import RunConfig
from trainer.run_folder import Saved, read_saved_config, resolve_run_config
from trainer.console import print_plan, print_summary, say
from trainer.costs import model_flops_per_token
from trainer.metrics import MetricsLog, device_peak_tflops
from trainer.step import StepSetup, autocast_for, evaluate, train_step


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class Run:
    """Everything a phase needs before its first step (see trainer.build)."""

    cfg: RunConfig
    phase: int
    run_dir: Path
    info: D.DistInfo
    mcfg: object
    data: B.Data
    steps: B.Steps
    start: B.Start
    levers: B.Levers
    """The speed levers of this run (precision, FSDP2, weight casts, compile), applied by build_model."""


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m trainer train", description=__doc__.split("\n\n")[0])
    p.add_argument("config", nargs="?",
                   help="run config TOML, e.g. trainer/configs/tiny.toml; may be left out for a run folder that "
                        "has started (its saved run_config.toml is used)")
    p.add_argument("--phase", type=int, choices=(1, 2), required=True)
    p.add_argument("--run-dir", required=True, help="run folder: checkpoints/, metrics.jsonl, tb/")
    p.add_argument("--restart", action="store_true",
                   help="start phase 1 over at step 0 even though the run folder has checkpoints (usable or "
                        "not): they and the logs are moved to <run-dir>/previous-N/, not deleted")
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if not (a.startswith("--") and "=" in a and "." in a.split("=", 1)[0])]
    if bad:
        p.error(f"unrecognised arguments {bad}; config overrides are written --section.key=value")
    return args, rest



def exit_code(e: BaseException) -> int:
    """The exit status of a training command that raised ``e``, after one ``error:`` line: 2 for bad input or
    I/O (config, corpus, mixture, loader-state and model-config errors are ValueErrors whose message names the
    file or key and the fix; I/O failures are IOFaults that name the path and the fix; a traceback would only
    hide that), 3 for a diverged run. Anything else is a bug: re-raised, traceback and all."""
    if isinstance(e, (ValueError, ckpt.CheckpointError, FileNotFoundError, IOFault)):
        print(f"error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, TrainingDiverged):
        print(f"error: {e}", file=sys.stderr)
        return 3
    raise e

def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        cfg, saved = resolve_run_config(args.config, overrides, Path(args.run_dir), args.phase, args.restart)
        if int(os.environ.get("RANK", "0")) == 0:
            for note in saved.notes:
                print(note, file=sys.stderr)
        return train(cfg, args.phase, Path(args.run_dir), restart=args.restart, saved=saved)
    except BaseException as e:  # noqa: BLE001 - exit_code re-raises what it does not map
        return exit_code(e)
    finally:
        D.shutdown()


def train(cfg: RunConfig, phase: int, run_dir: Path, restart: bool = False, saved: Saved | None = None) -> int:
    """Run one phase. `saved` (from `resolve_run_config`) says what to save as the run folder's config; by
    default `cfg` is saved when the folder has no saved config yet."""
    threads = torch.get_num_threads()
    if saved is None:
        saved = Saved(pending=None if read_saved_config(run_dir) else {"config": cfg.source, "overrides": []})
    try:
        return _train(cfg, phase, Path(run_dir), restart, saved)
    finally:
        torch.set_num_threads(threads)  # train.threads is for this run, not for a caller in the same process


def _train(cfg: RunConfig, phase: int, run_dir: Path, restart: bool, saved: Saved) -> int:
    info = B.build_dist(cfg)
    mcfg = B.build_model_config(cfg)
    data = B.build_data(cfg, phase, mcfg)
    steps = B.plan_steps(cfg, phase, info)
    levers = B.plan_levers(cfg, info)
    start = B.build_resume(cfg, phase, run_dir, steps, info, warn=lambda m: say(info, f"warning: {m}"),
                           restart=restart)
    run = Run(cfg, phase, run_dir, info, mcfg, data, steps, start, levers)
    if start.done:
        if info.is_main:
            print(f"phase {phase} of {run_dir} is already complete at step {start.step} ({start.found.path}); "
                  "nothing to do")
        return 0
    B.verify_data(cfg, data, info, log=lambda m: say(info, m))
    B.check_run_dir(run_dir, info)
    B.save_run_config(saved, run_dir, cfg, info)
    built = B.build_model(cfg, mcfg, info, levers, warn=lambda m: say(info, m))
    B.restore(start, built.model, built.optimizer, info, run_dir)
    loader = B.build_loader(cfg, data, info, start)
    setup = StepSetup(built.model, built.optimizer, info, accum=steps.accum, grad_clip=cfg.optim.grad_clip,
                      autocast=autocast_for(levers.precision, info.device), fsdp=levers.fsdp,
                      n_sources=len(loader.source_names))
    return run_phase(run, setup, loader)


def run_phase(run: Run, setup: StepSetup, loader) -> int:
    """The loop: a train_step per step; metrics, validation and checkpoints at their cadence."""
    cfg, info, steps = run.cfg, run.info, run.steps
    print_plan(run)
    metrics = MetricsLog(run.run_dir, enabled=info.is_main, tensorboard=cfg.log.tensorboard,
                         resume_step=run.start.step)
    if metrics.enabled and (run.start.found is None or run.start.starting_phase2):
        metrics.write({"kind": "event", "step": run.start.step, "phase": run.phase, "event": "phase_start",
                       "mixture": cfg.mixture_for(run.phase), "shares": dict(run.data.mixture.shares)})
    flops_per_token = model_flops_per_token(run.mcfg, cfg.data.seq_len, cfg.cost.flops_basis)
    peak = device_peak_tflops(torch.cuda.get_device_name(info.device)) if info.device.type == "cuda" else None
    step = run.start.step
    summary: dict = {"start_step": step, "data_s": 0.0}
    t_run = time.perf_counter()
    last_ckpt = run.start.found.path if run.start.found else None
    names = list(loader.source_names)

    def val() -> None:
        n_tokens: dict[str, int] = {}
        losses = evaluate(setup.model, run.data.corpus, seq_len=cfg.data.seq_len, batch_size=cfg.log.val_batch_size,
                          batches=cfg.log.val_batches, autocast=setup.autocast, device=info.device, tokens=n_tokens)
        if not losses:
            return
        mean = sum(losses.values()) / len(losses)
        summary.setdefault("val_first", mean)
        summary["val_last"] = mean
        # "mean": every source counts the same (the curves' headline); "overall": per token over all val tokens
        # evaluated, which small val splits sway less (the ablation grid compares variants on it)
        overall = sum(losses[s] * n_tokens[s] for s in losses) / sum(n_tokens[s] for s in losses)
        metrics.write({"kind": "val", "step": step, "phase": run.phase, "tokens": step * cfg.train.batch_tokens,
                       "loss": losses, "mean": mean, "overall": overall, "val_tokens": n_tokens})
        say(info, f"step {step}: val loss {mean:.4f} (mean of {len(losses)} sources)")

    def save(phase_end: bool) -> Path | None:
        state = {"step": step, "phase": run.phase, "phase_end": phase_end, "tokens": step * cfg.train.batch_tokens,
                 "loader": loader.state_dict(), "run_config": cfg.to_dict(), "world_size": info.world_size,
                 "mixture": cfg.mixture_for(run.phase),
                 "lr_next": steps.sched.lr(min(step, steps.sched.total_steps - 1))}
        return ckpt.save(run.run_dir, step, model=setup.model, optimizer=setup.optimizer,
                         model_config=run.mcfg.to_dict(), train_state=state,
                         tokenizer_path=Path(run.data.corpus.tokenizer_path), keep_last=cfg.checkpoint.keep_last,
                         info=info)

    if step == steps.start_of_phase or run.start.starting_phase2:
        val()
    from tqdm import tqdm
    bar = tqdm(total=steps.end_step, initial=step, desc=f"phase {run.phase}", unit="step",
               disable=not (cfg.log.progress and info.is_main), dynamic_ncols=True, file=sys.stderr)
    try:
        while step < steps.end_step:
            t_step = time.perf_counter()
            lr = steps.sched.lr(step)
            m = train_step(setup, loader, lr)
            if not m.stepped:
                raise TrainingDiverged(
                    f"loss is {m.loss} at step {step} (phase {run.phase}, lr {lr:.3g}); the optimizer "
                    f"step was not taken. Last good checkpoint: {last_ckpt or 'none (no checkpoint yet)'}. "
                    "Resume from it with a lower --optim.lr or tighter --optim.grad_clip")
            step += 1
            dt = time.perf_counter() - t_step
            tps = cfg.train.batch_tokens / dt
            summary["data_s"] += m.data_s
            summary.setdefault("loss_first", m.loss)
            summary["loss_last"] = m.loss
            if step % cfg.log.every_steps == 0 or step == steps.end_step:
                rec = {"kind": "train", "step": step, "phase": run.phase, "tokens": step * cfg.train.batch_tokens,
                       "loss": m.loss, "lm_loss": m.lm_loss, "load_balance": m.load_balance, "z_loss": m.z_loss,
                       "lr": lr, "grad_norm": m.grad_norm, "tokens_per_s": tps, "step_s": dt, "data_s": m.data_s,
                       "source_tokens": {names[i]: int(n) * cfg.data.seq_len
                                         for i, n in enumerate(m.source_sequences) if n > 0},
                       "expert_tokens": {kind: m.expert_counts[:, i, :run.mcfg.experts(kind)[0]].tolist()
                                         for i, kind in enumerate(("attn", "mlp"))}}
                if peak:
                    rec["mfu"] = tps * flops_per_token / (peak * 1e12 * info.world_size)
                metrics.write(rec)
            bar.update(1)
            bar.set_postfix(loss=f"{m.loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}", refresh=False)
            hooks.HOOKS.after_step(step)
            if step % cfg.log.val_every_steps == 0 and step != steps.end_step:
                val()
            if step % cfg.checkpoint.every_steps == 0 or step == steps.end_step:
                last_ckpt = save(phase_end=step == steps.end_step) or last_ckpt
        val()
    finally:
        bar.close()
        loader.close()
        metrics.close()
    print_summary(run, summary, step, time.perf_counter() - t_run, last_ckpt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
