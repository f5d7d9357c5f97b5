"""What a training run prints: the plan before the first step, warnings during it, the summary after it.

    say(info, "warning: ...")       # stderr on rank 0, above the progress bar
    print_plan(run)                 # steps, batch, lr, the mixture's plan; the GPU cost plan on GPUs, an ETA on CPU
    print_summary(run, summary, step, last_ckpt)

`run` is `trainer.train.Run` (the built pieces); only rank 0 prints.
"""
from __future__ import annotations

import sys

from trainer.costs import format_plan, plan_run
from trainer.metrics import read_jsonl


def say(info, msg: str) -> None:
    if info.is_main:
        from tqdm import tqdm
        tqdm.write(msg, file=sys.stderr)


def print_plan(run) -> None:
    from trainer.data.mixture import describe_renormalisation
    from trainer.data.plan import format_plan as format_mixture_plan, plan_mixture

    if not run.info.is_main:
        return
    cfg, info, steps, start = run.cfg, run.info, run.steps, run.start
    metrics = read_jsonl(run.run_dir / "metrics.jsonl")
    measured = None
    prev = [r for r in metrics if r.get("kind") == "train" and r.get("mfu")]
    if prev:
        vals = sorted(r["mfu"] for r in prev[len(prev) // 2:])  # the settled half of the run
        measured = vals[len(vals) // 2]
    gpus = info.world_size if info.device.type == "cuda" else None
    print(f"== phase {run.phase}: {cfg.source} → {run.run_dir}  model {run.mcfg.name} "
          f"({info.world_size} × {info.device.type}, {run.levers.precision}, "
          f"{'FSDP2' if run.levers.fsdp else 'single process'})")
    print(run.levers.describe())
    print(f"steps {steps.start_of_phase}..{steps.end_step} of {steps.sched.total_steps} "
          f"(phase 1 = {steps.sched.phase1_steps}, warmup {steps.sched.warmup_steps}); "
          f"batch {cfg.train.batch_tokens} tokens = {steps.accum} micro-batch(es) × {cfg.data.micro_batch} × "
          f"{cfg.data.seq_len} × {info.world_size} rank(s); lr {steps.sched.lr(steps.start_of_phase):.3g} → "
          f"{steps.sched.lr(steps.end_step - 1):.3g}")
    if start.found is not None:
        what = "starting phase 2 from" if start.starting_phase2 else "resuming from"
        print(f"{what} {start.found.path} (step {start.step})")
    tokens = (steps.end_step - steps.start_of_phase) * cfg.train.batch_tokens
    for mix in (run.data.mixture, getattr(run.data, "next_mixture", None)):  # phase 2's too, from phase 1 on
        for line in describe_renormalisation(mix) if mix is not None else ():
            print(line)
    print(f"mixture {cfg.mixture_for(run.phase)} for {tokens:,} tokens:")
    print(format_mixture_plan(plan_mixture(run.data.mixture, run.data.corpus, tokens=tokens)))
    if info.device.type == "cuda":
        print(format_plan(plan_run(cfg, run.mcfg, measured_mfu=measured, gpus=gpus), current=run.phase))
    else:
        # No MFU on CPU (no meaningful peak) and no GPU to price: the GPU cost table would describe another
        # machine ("wall 0.0036 s"), so only the estimate for this one, from its own past steps, is printed.
        prev = [r["tokens_per_s"] for r in metrics
                if r.get("kind") == "train" and isinstance(r.get("tokens_per_s"), (int, float))]
        if prev:
            tps = sorted(prev)[len(prev) // 2]
            print(f"this machine: {tps:,.0f} tokens/s measured in this run's earlier steps → about "
                  f"{(steps.end_step - start.step) * cfg.train.batch_tokens / tps / 60:.1f} min for the rest of "
                  "this phase (+ val and checkpoints)")
        else:
            print("this machine (CPU): no measurement yet; the progress bar shows the ETA")
    sys.stdout.flush()


def print_summary(run, s: dict, step: int, wall: float, last_ckpt) -> None:
    if not run.info.is_main:
        return
    batch = run.cfg.train.batch_tokens
    steps = step - s["start_step"]
    tok = steps * batch
    rows = [("phase", f"{run.phase}"), ("steps", f"{s['start_step']} → {step} ({steps} this run)"),
            ("tokens", f"{tok:,} this run, {step * batch:,} in total"),
            ("wall time", f"{wall:.1f} s"),
            ("throughput", f"{tok / max(wall, 1e-9):,.0f} tokens/s (incl. val + checkpoints)"),
            ("data loader", f"{100 * s['data_s'] / max(wall, 1e-9):.2f}% of wall time")]
    if "loss_first" in s:
        rows.append(("train loss", f"{s['loss_first']:.4f} → {s['loss_last']:.4f}"))
    if "val_first" in s:
        rows.append(("val loss", f"{s['val_first']:.4f} → {s['val_last']:.4f} (this phase, mean over sources)"))
        vals = [r for r in read_jsonl(run.run_dir / "metrics.jsonl") if r.get("kind") == "val"]
        if run.phase == 2 and vals and vals[0]["step"] == 0:
            rows.append(("val loss, run", f"{vals[0]['mean']:.4f} at step 0 → {s['val_last']:.4f} at step {step}"))
    rows.append(("checkpoint", str(last_ckpt)))
    width = max(len(k) for k, _ in rows)
    print(f"== phase {run.phase} summary")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    sys.stdout.flush()
