"""Train JetMoE: phase 1 (warmup + stable) or phase 2 (decay on the phase-2 mixture), resumable.

    python -m trainer train trainer/configs/tiny.toml --phase 1 --run-dir runs/tiny [--section.key=value ...]
    python -m trainer train trainer/configs/tiny.toml --phase 2 --run-dir runs/tiny
    torchrun --nproc-per-node 8 -m trainer train trainer/configs/jetmoe-8b.toml --phase 1 --run-dir runs/8b

A phase resumes from the run's newest valid checkpoint (a corrupt newest one falls back to the previous,
with a warning). Phase 2 starts from phase 1's final checkpoint: same weights, optimizer and step counter,
the loader switched to the phase-2 mixture, and the WSD schedule continuing into its decay. Exit codes:
0 done, 2 bad input (config, corpus, mixture, checkpoints), 3 the loss became NaN/inf.

The global batch is `train.batch_tokens`; each rank runs `data.micro_batch` sequences per forward and
accumulates gradients over batch_tokens / (seq_len × micro_batch × ranks) micro-batches, so a run on
1 process and on N ranks with the same global batch takes the same optimizer steps on the same data.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch

from trainer import checkpoint as ckpt
from trainer import dist as D
from trainer.config import ConfigError, RunConfig, load_run_config
from trainer.costs import format_plan, model_flops_per_token, plan_run
from trainer.metrics import MetricsLog, device_peak_tflops, read_jsonl
from trainer.optim import WSDSchedule, build_optimizer, set_lr

# A run-config key that changes the arithmetic of the run may not change on resume (it would silently
# start another run in the same folder); phase-2 mixture and logging/checkpoint cadence may.
FROZEN_KEYS = [("model", "config"), ("data", "corpus"), ("data", "seq_len"), ("data", "seed"),
               ("data", "phase1_mixture"), ("train", "batch_tokens"), ("train", "phase1_tokens"),
               ("train", "seed"), ("schedule", "warmup_tokens"), ("schedule", "init_frac"), ("optim", "lr")]
FROZEN_IN_PHASE2 = [("train", "phase2_tokens"), ("data", "phase2_mixture"), ("schedule", "decay"),
                    ("schedule", "final_frac")]


class TrainingDiverged(RuntimeError):
    pass


def _fault_hook(step_or_where) -> None:
    """Fault injection for the resume tests: JETMOE_FAULT_KILL_AT=<step> sends SIGKILL to this process
    right after that step's metrics line is written; JETMOE_FAULT_KILL_AT=ckpt:<step> kills it half-way
    through writing that step's checkpoint. Unset in normal runs."""
    spec = os.environ.get("JETMOE_FAULT_KILL_AT")
    if not spec:
        return
    if spec == str(step_or_where) or spec == f"ckpt:{_fault_hook.ckpt_step}" and step_or_where == "mid-checkpoint":
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


_fault_hook.ckpt_step = -1


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m trainer train", description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="run config TOML, e.g. trainer/configs/tiny.toml")
    p.add_argument("--phase", type=int, choices=(1, 2), required=True)
    p.add_argument("--run-dir", required=True, help="run folder: checkpoints/, metrics.jsonl, tb/")
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if not (a.startswith("--") and "=" in a and "." in a.split("=", 1)[0])]
    if bad:
        p.error(f"unrecognised arguments {bad}; config overrides are written --section.key=value")
    return args, rest


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        cfg = load_run_config(args.config, overrides)
        return train(cfg, args.phase, Path(args.run_dir))
    # Config, corpus, mixture, loader-state and model-config errors are all ValueErrors whose message
    # names the file or key and the fix; a traceback would only hide that.
    except (ValueError, ckpt.CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    finally:
        D.shutdown()


def _check_frozen(saved: dict, cfg: RunConfig, phase2: bool, where: Path) -> None:
    now = cfg.to_dict()
    for sec, key in FROZEN_KEYS + (FROZEN_IN_PHASE2 if phase2 else []):
        a, b = saved.get(sec, {}).get(key), now[sec][key]
        if a != b:
            raise ConfigError(f"{sec}.{key} = {b!r} but the run in {where} was trained with {a!r}; "
                              f"pass --{sec}.{key}={a!r} to continue it, or use a new --run-dir")


class Trainer:
    def __init__(self, cfg: RunConfig, phase: int, run_dir: Path):
        from trainer.data import BlendedLoader, Corpus, check_tokenizer, load_mixture
        from trainer.model import JetMoE, count_params, load_model_config

        self.cfg, self.phase, self.run_dir = cfg, phase, run_dir
        self.info = info = D.init()
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        # CPU kernels are deterministic at a fixed thread count (train.threads), which is what makes resume
        # bit-exact. torch.use_deterministic_algorithms is not switched on: on CPU it only reroutes
        # index_add (the MoE's scatter of expert outputs) through a slower scatter_add, and on GPU
        # bit-exactness would cost the fast kernels.

        mcfg = load_model_config(cfg.model_config_path())
        if cfg.model.backend:
            mcfg = mcfg.replace(backend=cfg.model.backend)
        self.mcfg = mcfg
        if cfg.data.seq_len > mcfg.max_seq_len:
            raise ConfigError(f"data.seq_len = {cfg.data.seq_len} exceeds the model's max_seq_len = "
                              f"{mcfg.max_seq_len} ({cfg.model_config_path()})")
        self.corpus = Corpus.open(cfg.data.corpus)
        check_tokenizer(self.corpus, vocab_size=mcfg.vocab_size, tokenizer_sha256=mcfg.tokenizer_sha256 or None)
        self.mixture = load_mixture(cfg.mixture_for(phase), self.corpus)

        self.sched = WSDSchedule.from_config(cfg)
        self.start_of_phase = 0 if phase == 1 else self.sched.phase1_steps
        self.end_step = self.sched.phase1_steps if phase == 1 else self.sched.total_steps
        per_forward = cfg.data.seq_len * cfg.data.micro_batch * info.world_size
        if cfg.train.batch_tokens % per_forward:
            seqs = cfg.train.batch_tokens // cfg.data.seq_len
            raise ConfigError(
                f"train.batch_tokens = {cfg.train.batch_tokens} ({seqs} sequences of {cfg.data.seq_len}) is not a "
                f"multiple of data.micro_batch × ranks = {cfg.data.micro_batch} × {info.world_size}; use e.g. "
                f"--train.batch_tokens={max(1, round(seqs / (per_forward // cfg.data.seq_len))) * per_forward}")
        self.accum = cfg.train.batch_tokens // per_forward

        # ---- where this phase starts
        msgs = []
        found = ckpt.decide_latest(run_dir, info, warn=msgs.append)
        for m in msgs:
            self.log(f"warning: {m}")
        self.found = found
        self.starting_phase2 = False
        self.done = False
        if found is None:
            if phase == 2:
                raise ckpt.CheckpointError(
                    f"no valid checkpoint in {run_dir / 'checkpoints'}: phase 2 starts from phase 1's final "
                    f"checkpoint; run phase 1 first (make phase1 RUN_DIR={run_dir})")
            self.step = 0
        else:
            st = found.state
            self.step = st["step"]
            _check_frozen(st["run_config"], cfg, phase2=(phase == 2 and st["phase"] == 2), where=found.path)
            if phase == 1:
                if st["phase"] == 2:
                    raise ckpt.CheckpointError(f"{found.path} is a phase-2 checkpoint: phase 1 of {run_dir} is "
                                               "over; run --phase 2, or use a new --run-dir")
                self.done = self.step >= self.end_step
            else:
                if st["phase"] == 1 and self.step < self.sched.phase1_steps:
                    raise ckpt.CheckpointError(
                        f"phase 1 of {run_dir} stopped at step {self.step} of {self.sched.phase1_steps} "
                        f"({found.path}); finish it with --phase 1 before starting phase 2")
                self.starting_phase2 = st["phase"] == 1
                self.done = self.step >= self.end_step

        self.metrics = None
        if self.done:  # run() only reports it; no model to build
            return

        # ---- model (same seed on every rank → the same init as one process)
        torch.manual_seed(cfg.train.seed)
        total, _ = count_params(mcfg)
        big = info.distributed and total * 4 > 4 * 2 ** 30
        with torch.device("meta") if big else contextlib.nullcontext():
            model = JetMoE(mcfg)
        self.fsdp = D.use_fsdp(cfg.parallel.fsdp, info)
        if cfg.parallel.activation_checkpoint:
            D.checkpoint_activations(model)
        if not big:
            model.to(info.device)
        if self.fsdp:
            D.shard_model(model, cfg.parallel.reshard_after_forward)
        if big:  # materialise the shards and init them; a checkpoint (if any) overwrites them below
            model.to_empty(device=info.device)
            model.init_weights()
        self.model = model
        self.optimizer = build_optimizer(model, cfg, info.device)
        if found is not None:
            ckpt.load_into(found, model=model, optimizer=self.optimizer, info=info)
        if info.is_main:
            ckpt.clean_stale(run_dir)

        # ---- data
        self.loader = BlendedLoader(self.corpus, self.mixture, seq_len=cfg.data.seq_len, seed=cfg.data.seed,
                                    micro_batch=cfg.data.micro_batch, rank=info.rank, world_size=info.world_size,
                                    num_workers=cfg.data.num_workers, prefetch=cfg.data.prefetch)
        if found is not None:
            self.loader.load_state_dict(found.state["loader"], allow_mixture_change=self.starting_phase2)

        precision = cfg.train.precision
        if precision == "auto":
            precision = "bf16" if info.device.type == "cuda" else "fp32"
        self.autocast = (torch.autocast(info.device.type, dtype=torch.bfloat16) if precision == "bf16"
                         else contextlib.nullcontext())
        self.precision = precision
        self.flops_per_token = model_flops_per_token(mcfg, cfg.data.seq_len, cfg.cost.flops_basis)
        peak = device_peak_tflops(torch.cuda.get_device_name(info.device)) if info.device.type == "cuda" else None
        self.peak_flops = peak * 1e12 if peak else None

    # ---------------------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.info.is_main:
            from tqdm import tqdm
            tqdm.write(msg, file=sys.stderr)

    def print_plan(self) -> None:
        if not self.info.is_main:
            return
        cfg = self.cfg
        measured = None
        prev = [r for r in read_jsonl(self.run_dir / "metrics.jsonl") if r.get("kind") == "train" and r.get("mfu")]
        if prev:
            vals = sorted(r["mfu"] for r in prev[len(prev) // 2:])  # the settled half of the run
            measured = vals[len(vals) // 2]
        gpus = self.info.world_size if self.info.device.type == "cuda" else None
        print(f"== phase {self.phase}: {cfg.source} → {self.run_dir}  model {self.mcfg.name} "
              f"({self.info.world_size} × {self.info.device.type}, {self.precision}, "
              f"{'FSDP2' if self.fsdp else 'single process'})")
        print(f"steps {self.start_of_phase}..{self.end_step} of {self.sched.total_steps} "
              f"(phase 1 = {self.sched.phase1_steps}, warmup {self.sched.warmup_steps}); "
              f"batch {cfg.train.batch_tokens} tokens = {self.accum} micro-batch(es) × {cfg.data.micro_batch} × "
              f"{cfg.data.seq_len} × {self.info.world_size} rank(s); lr {self.sched.lr(self.start_of_phase):.3g} → "
              f"{self.sched.lr(self.end_step - 1):.3g}")
        if self.found is not None:
            what = "starting phase 2 from" if self.starting_phase2 else "resuming from"
            print(f"{what} {self.found.path} (step {self.step})")
        tokens = (self.end_step - self.start_of_phase) * cfg.train.batch_tokens
        print(f"mixture {cfg.mixture_for(self.phase)} for {tokens:,} tokens:")
        print(self.mixture_table(tokens))
        print(format_plan(plan_run(cfg, self.mcfg, measured_mfu=measured, gpus=gpus), current=self.phase))
        if self.info.device.type != "cuda":
            # No MFU on CPU (no meaningful peak): the estimate for this machine comes from its own past steps.
            prev = [r["tokens_per_s"] for r in read_jsonl(self.run_dir / "metrics.jsonl")
                    if r.get("kind") == "train" and isinstance(r.get("tokens_per_s"), (int, float))]
            if prev:
                tps = sorted(prev)[len(prev) // 2]
                print(f"this machine: {tps:,.0f} tokens/s measured in this run's earlier steps → about "
                      f"{(self.end_step - self.step) * cfg.train.batch_tokens / tps / 60:.1f} min for the rest of "
                      "this phase (+ val and checkpoints)")
            else:
                print("this machine (CPU): no measurement yet; the progress bar shows the ETA")
        sys.stdout.flush()

    def mixture_table(self, tokens: int) -> str:
        try:  # the data package's plan (epochs, warnings) when it has one
            from trainer.data.plan import format_plan as fmt, plan_mixture
            return fmt(plan_mixture(self.mixture, self.corpus, tokens=tokens))
        except ImportError:
            pass
        rows = []
        for src, share in sorted(self.mixture.shares.items(), key=lambda kv: -kv[1]):
            avail = self.corpus.n_tokens(src, "train")
            rows.append({"source": src, "share": share, "tokens": round(share * tokens), "available": avail,
                         "epochs": share * tokens / max(avail, 1)})
        return _format_rows(rows)

    # ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean lm loss per source over the first `log.val_batches` batches of its val split."""
        from trainer.data import ValLoader
        cfg = self.cfg
        self.model.eval()
        out = {}
        # Every corpus source with val data, whatever this phase's mixture: the same set in both phases, so
        # the curves and their mean are comparable across the phase-2 switch.
        for src in sorted(self.corpus.sources):
            if self.corpus.n_tokens(src, "val") < 2:
                continue
            tot, n = 0.0, 0
            for i, batch in enumerate(ValLoader(self.corpus, src, seq_len=cfg.data.seq_len,
                                                batch_size=cfg.log.val_batch_size)):
                if i >= cfg.log.val_batches:
                    break
                tokens = batch.tokens.to(self.info.device)
                mask = batch.mask.to(self.info.device)  # the split's last sequence is padded
                labels = tokens[:, 1:].masked_fill(~mask, -100)
                with self.autocast:
                    o = self.model(tokens[:, :-1], labels=labels)
                k = int(mask.sum())
                tot += float(o.lm_loss) * k
                n += k
            if n:
                out[src] = tot / n
        self.model.train()
        return out

    def save(self, phase_end: bool) -> Path | None:
        _fault_hook.ckpt_step = self.step
        state = {"step": self.step, "phase": self.phase, "phase_end": phase_end,
                 "tokens": self.step * self.cfg.train.batch_tokens, "loader": self.loader.state_dict(),
                 "run_config": self.cfg.to_dict(), "world_size": self.info.world_size,
                 "mixture": self.cfg.mixture_for(self.phase), "lr_next": self.sched.lr(min(self.step, self.sched.total_steps - 1))}
        return ckpt.save(self.run_dir, self.step, model=self.model, optimizer=self.optimizer,
                         model_config=self.mcfg.to_dict(), train_state=state,
                         tokenizer_path=Path(self.corpus.tokenizer_path), keep_last=self.cfg.checkpoint.keep_last,
                         info=self.info, fault_hook=_fault_hook)

    def _val(self, summary: dict) -> None:
        losses = self.evaluate()
        if not losses:
            return
        mean = sum(losses.values()) / len(losses)
        summary.setdefault("val_first", mean)
        summary["val_last"] = mean
        if self.metrics:
            self.metrics.write({"kind": "val", "step": self.step, "phase": self.phase,
                                "tokens": self.step * self.cfg.train.batch_tokens, "loss": losses, "mean": mean})
        self.log(f"step {self.step}: val loss {mean:.4f} (mean of {len(losses)} sources)")

    def run(self) -> int:
        cfg, info = self.cfg, self.info
        if self.done:
            if info.is_main:
                print(f"phase {self.phase} of {self.run_dir} is already complete at step {self.step} "
                      f"({self.found.path}); nothing to do")
            return 0
        self.print_plan()
        self.metrics = MetricsLog(self.run_dir, enabled=info.is_main, tensorboard=cfg.log.tensorboard,
                                  resume_step=self.step)
        if self.metrics.enabled and (self.found is None or self.starting_phase2):
            self.metrics.write({"kind": "event", "step": self.step, "phase": self.phase, "event": "phase_start",
                                "mixture": cfg.mixture_for(self.phase), "shares": dict(self.mixture.shares)})
        summary: dict = {"start_step": self.step, "data_s": 0.0, "t0": time.perf_counter()}
        last_ckpt = self.found.path if self.found else None
        if self.step == self.start_of_phase or self.starting_phase2:
            self._val(summary)
        names = list(self.loader.source_names)
        n_src = len(names)
        from tqdm import tqdm
        bar = tqdm(total=self.end_step, initial=self.step, desc=f"phase {self.phase}", unit="step",
                   disable=not (cfg.log.progress and info.is_main), dynamic_ncols=True, file=sys.stderr)
        model, opt = self.model, self.optimizer
        try:
            while self.step < self.end_step:
                t_step = time.perf_counter()
                lr = self.sched.lr(self.step)
                set_lr(opt, lr)
                acc = torch.zeros(4, dtype=torch.float64)          # loss, lm, load balance, z
                counts = None
                src_counts = torch.zeros(n_src, dtype=torch.float64)
                data_s = 0.0
                for micro in range(self.accum):
                    t0 = time.perf_counter()
                    batch = next(self.loader)
                    data_s += time.perf_counter() - t0
                    tokens = batch.tokens.to(info.device, non_blocking=True)
                    if self.fsdp:  # reduce-scatter gradients once per step, not once per micro-batch
                        model.set_requires_gradient_sync(micro == self.accum - 1)
                    with self.autocast:
                        out = model(tokens[:, :-1], labels=tokens[:, 1:])
                    loss = (out.lm_loss + cfg.train.aux_coef * out.load_balance_loss
                            + cfg.train.z_coef * out.z_loss)
                    (loss / self.accum).backward()
                    acc += torch.stack([loss.detach(), out.lm_loss.detach(), out.load_balance_loss.detach(),
                                        out.z_loss.detach()]).double().cpu()
                    c = out.expert_counts.detach().cpu()
                    counts = c if counts is None else counts + c
                    src_counts += torch.bincount(batch.source_ids.cpu(), minlength=n_src).double()
                # One collective for every scalar the log needs: the mean over micro-batches and ranks.
                packed = torch.cat([acc / self.accum / info.world_size, src_counts,
                                    counts.double().flatten()]).to(info.device)
                D.all_reduce_sum(packed, info)
                packed = packed.cpu()
                loss_v, lm_v, lb_v, z_v = packed[:4].tolist()
                if not math.isfinite(loss_v):
                    opt.zero_grad(set_to_none=True)
                    raise TrainingDiverged(
                        f"loss is {loss_v} at step {self.step} (phase {self.phase}, lr {lr:.3g}); the optimizer "
                        f"step was not taken. Last good checkpoint: {last_ckpt or 'none (no checkpoint yet)'}. "
                        "Resume from it with a lower --optim.lr or tighter --optim.grad_clip")
                clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                if hasattr(grad_norm, "full_tensor"):
                    grad_norm = grad_norm.full_tensor()
                opt.step()
                opt.zero_grad(set_to_none=True)
                self.step += 1
                dt = time.perf_counter() - t_step
                tps = cfg.train.batch_tokens / dt
                summary["data_s"] += data_s
                summary.setdefault("loss_first", loss_v)
                summary["loss_last"] = loss_v
                if self.step % cfg.log.every_steps == 0 or self.step == self.end_step:
                    counts_all = packed[4 + n_src:].view(self.mcfg.n_layers, 2, self.mcfg.n_experts).long()
                    rec = {"kind": "train", "step": self.step, "phase": self.phase,
                           "tokens": self.step * cfg.train.batch_tokens, "loss": loss_v, "lm_loss": lm_v,
                           "load_balance": lb_v, "z_loss": z_v, "lr": lr, "grad_norm": float(grad_norm),
                           "tokens_per_s": tps, "step_s": dt, "data_s": data_s,
                           "source_tokens": {names[i]: int(packed[4 + i]) * cfg.data.seq_len
                                             for i in range(n_src) if packed[4 + i] > 0},
                           "expert_tokens": {"attn": counts_all[:, 0].tolist(), "mlp": counts_all[:, 1].tolist()}}
                    if self.peak_flops:
                        rec["mfu"] = tps * self.flops_per_token / (self.peak_flops * info.world_size)
                    if self.metrics:
                        self.metrics.write(rec)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_v:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}", refresh=False)
                _fault_hook(self.step)
                if self.step % cfg.log.val_every_steps == 0 and self.step != self.end_step:
                    self._val(summary)
                if self.step % cfg.checkpoint.every_steps == 0 or self.step == self.end_step:
                    last_ckpt = self.save(phase_end=self.step == self.end_step) or last_ckpt
            self._val(summary)
        finally:
            bar.close()
            self.loader.close()
            if self.metrics:
                self.metrics.close()
        self.print_summary(summary, last_ckpt)
        return 0

    def print_summary(self, s: dict, last_ckpt) -> None:
        if not self.info.is_main:
            return
        wall = time.perf_counter() - s["t0"]
        steps = self.step - s["start_step"]
        tok = steps * self.cfg.train.batch_tokens
        rows = [("phase", f"{self.phase}"), ("steps", f"{s['start_step']} → {self.step} ({steps} this run)"),
                ("tokens", f"{tok:,} this run, {self.step * self.cfg.train.batch_tokens:,} in total"),
                ("wall time", f"{wall:.1f} s"), ("throughput", f"{tok / max(wall, 1e-9):,.0f} tokens/s (incl. val + checkpoints)"),
                ("data loader", f"{100 * s['data_s'] / max(wall, 1e-9):.2f}% of wall time")]
        if "loss_first" in s:
            rows.append(("train loss", f"{s['loss_first']:.4f} → {s['loss_last']:.4f}"))
        if "val_first" in s:
            rows.append(("val loss", f"{s['val_first']:.4f} → {s['val_last']:.4f} (this phase, mean over sources)"))
            vals = [r for r in read_jsonl(self.run_dir / "metrics.jsonl") if r.get("kind") == "val"]
            if self.phase == 2 and vals and vals[0]["step"] == 0:
                rows.append(("val loss, run", f"{vals[0]['mean']:.4f} at step 0 → {s['val_last']:.4f} at step "
                                              f"{self.step}"))
        rows.append(("checkpoint", str(last_ckpt)))
        width = max(len(k) for k, _ in rows)
        print(f"== phase {self.phase} summary")
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        sys.stdout.flush()


def _format_rows(rows) -> str:
    """plan_mixture's rows (dicts) as a table when it returns data rather than text."""
    if not rows:
        return "(empty plan)"
    rows = [r if isinstance(r, dict) else getattr(r, "__dict__", {"row": str(r)}) for r in rows]
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    lines = ["  ".join(f"{k:>{widths[k]}}" for k in keys)]
    lines += ["  ".join(f"{_fmt(r.get(k)):>{widths[k]}}" for k in keys) for r in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def train(cfg: RunConfig, phase: int, run_dir: Path) -> int:
    threads = torch.get_num_threads()
    try:
        return Trainer(cfg, phase, Path(run_dir)).run()
    finally:
        torch.set_num_threads(threads)  # train.threads is for this run, not for a caller in the same process


if __name__ == "__main__":
    sys.exit(main())
