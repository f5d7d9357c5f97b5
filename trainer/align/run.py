"""Train the chat model: SFT (phase 3a) from pretraining's final checkpoint, then DPO (phase 3b) from SFT's.

    python -m trainer sft trainer/configs/align/sft-tiny.toml --run-dir runs/tiny-sft [--section.key=value ...]
    python -m trainer dpo trainer/configs/align/dpo-tiny.toml --run-dir runs/tiny-dpo
    torchrun --nproc-per-node 8 -m trainer sft trainer/configs/align/sft-jetmoe-8b.toml --run-dir runs/8b-sft

A stage starts from `init.checkpoint` (a run folder's final checkpoint of the previous stage, or a checkpoint
folder) and trains on its kind of rows of the chat corpus (`data.corpus`): SFT on the conversations, with the
loss on the assistant tokens only; DPO on the preference pairs, against a frozen copy of its starting weights.
Everything else is pretraining's: checkpoints in <run-dir>/checkpoints/ (resumed from the newest valid one,
bit-exact on CPU after a kill -9), FSDP2 under torchrun, <run-dir>/metrics.jsonl, exit codes 0 done, 2 bad
input or I/O failure, 3 the loss became NaN/inf. A finished stage run again says so and does nothing.
docs/alignment.md has the whole story.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from trainer import build as B
from trainer import checkpoint as ckpt
from trainer import dist as D
from trainer import hooks
from trainer.align import build as AB
from trainer.align.batches import collate_dpo, collate_sft
from trainer.align.config import AlignConfig, load_align_config
from trainer.align.step import AlignSetup, dpo_step, dpo_val, sft_step, sft_val
from trainer.console import say
from trainer.metrics import MetricsLog
from trainer.step import autocast_for
from trainer.train import TrainingDiverged, exit_code

__all__ = ["main", "sft_main", "dpo_main", "train"]


def parse_args(stage: str, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog=f"python -m trainer {stage}", description=__doc__.split("\n\n")[0])
    p.add_argument("config", help=f"{stage} config TOML, e.g. trainer/configs/align/{stage}-tiny.toml")
    p.add_argument("--run-dir", required=True, help="run folder of this stage: checkpoints/, metrics.jsonl, tb/")
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if not (a.startswith("--") and "=" in a and "." in a.split("=", 1)[0])]
    if bad:
        p.error(f"unrecognised arguments {bad}; config overrides are written --section.key=value")
    return args, rest


def main(stage: str, argv: list[str] | None = None) -> int:
    args, overrides = parse_args(stage, list(sys.argv[1:] if argv is None else argv))
    try:
        cfg = load_align_config(stage, args.config, overrides)
        return train(cfg, Path(args.run_dir))
    except BaseException as e:  # noqa: BLE001 - exit_code re-raises what it does not map
        return exit_code(e)
    finally:
        D.shutdown()


def sft_main(argv: list[str] | None = None) -> int:
    return main("sft", argv)


def dpo_main(argv: list[str] | None = None) -> int:
    return main("dpo", argv)


def train(cfg: AlignConfig, run_dir: Path) -> int:
    threads = torch.get_num_threads()
    try:
        return _train(cfg, Path(run_dir))
    finally:
        torch.set_num_threads(threads)


def _verify(cfg: AlignConfig, data: AB.Data, info: D.DistInfo) -> None:
    """data.verify over the parts this stage reads (its kind's train and val parts), split over the ranks."""
    if cfg.data.verify == "off":
        return
    parts = data.chat.parts("train") + data.chat.parts("val")
    problems = data.chat.corpus.check_parts(parts[info.rank::info.world_size], cfg.data.verify)
    problems = [m for rank in D.all_gather_object(problems, info) for m in rank]
    if problems:
        from trainer.data import CorpusError
        raise CorpusError(f"data.verify = {cfg.data.verify!r} found a part that does not match its manifest: "
                          f"{problems[0]}")


def _train(cfg: AlignConfig, run_dir: Path) -> int:
    info = B.build_dist(cfg)
    warn = (lambda m: say(info, f"warning: {m}"))
    init = AB.resolve_init(cfg, info, warn)
    data = AB.build_data(cfg, init)
    steps = AB.plan_steps(cfg, data, info)
    found = AB.build_resume(cfg, run_dir, data, info, warn)
    start = found.step if found is not None else 0
    if start >= steps.total:
        if info.is_main:
            print(f"{cfg.stage} of {run_dir} is already complete at step {start} ({found.path}); nothing to do")
        return 0
    _verify(cfg, data, info)
    B.check_run_dir(run_dir, info)
    model, optimizer, ref, fsdp = AB.build_models(cfg, init, found, info, run_dir)
    precision = B.precision_of(cfg, info)
    setup = AlignSetup(model, optimizer, info, grad_clip=cfg.optim.grad_clip,
                       autocast=autocast_for(precision, info.device), fsdp=fsdp,
                       router_aux_loss=cfg.train.router_aux_loss, ref=ref,
                       beta=cfg.dpo.beta if cfg.stage == "dpo" else 0.0)
    return Loop(cfg, run_dir, info, init, data, steps, found, setup, precision).run()


class Loop:
    """The stage's steps, with its logging, validation and checkpoint cadence."""

    def __init__(self, cfg, run_dir, info, init, data, steps, found, setup, precision):
        self.cfg, self.run_dir, self.info, self.init, self.data = cfg, run_dir, info, init, data
        self.steps, self.found, self.setup, self.precision = steps, found, setup, precision
        self.step = found.step if found is not None else 0
        self.tokens = found.state.get("tokens", 0) if found is not None else 0
        self.pad_id = data.chat.corpus.eos_id
        self.vocab = init.mcfg.vocab_size
        self.last_ckpt = found.path if found is not None else None
        self.summary: dict = {"start_step": self.step, "data_s": 0.0}
        self.metrics = None

    # ------------------------------------------------------------------------------------------- pieces
    def micro_batches(self) -> list:
        cfg, info, train = self.cfg, self.info, self.data.train
        groups = self.steps.plan.micro_groups(self.step, train.lengths, cfg.data.micro_batch, info.rank,
                                              info.world_size)
        collate = collate_sft if cfg.stage == "sft" else collate_dpo
        return [collate(train, g, self.pad_id, cfg.data.pad_multiple, self.vocab) for g in groups]

    def one_step(self, lr: float):
        """(the step's metrics, seconds spent cutting its batches)."""
        t0 = time.perf_counter()
        batches = self.micro_batches()
        data_s = time.perf_counter() - t0
        if self.cfg.stage == "sft":
            n_trained = int(self.data.train.trained[self.steps.plan.step_rows(self.step)].sum())
            return sft_step(self.setup, batches, n_trained, lr), data_s
        return dpo_step(self.setup, batches, self.cfg.train.batch, lr), data_s

    def val(self) -> None:
        val, cfg, s = self.data.val, self.cfg, self.setup
        if val is None:
            return
        kw = dict(batch_size=cfg.log.val_batch_size, batches=cfg.log.val_batches, pad_id=self.pad_id,
                  autocast=s.autocast, device=self.info.device)
        rec = {"kind": "val", "stage": cfg.stage, "step": self.step, "tokens": self.tokens}
        if cfg.stage == "sft":
            losses = sft_val(s.model, val, **kw)
            rec.update(loss=losses, mean=sum(losses.values()) / len(losses))
            say(self.info, f"step {self.step}: val loss {rec['mean']:.4f} (assistant tokens, mean of "
                           f"{len(losses)} sources)")
        else:
            m = dpo_val(s.model, s.ref, val, beta=s.beta, **kw)
            rec.update(loss={"dpo": m["loss"]}, mean=m["loss"], **{k: v for k, v in m.items() if k != "loss"})
            say(self.info, f"step {self.step}: val DPO loss {m['loss']:.4f}, accuracy {m['accuracy']:.3f}, "
                           f"margin {m['margins']:.4g}")
        self.summary.setdefault("val_first", rec["mean"])
        self.summary["val_last"] = rec["mean"]
        self.metrics.write(rec)

    def save(self, end: bool) -> None:
        cfg, steps = self.cfg, self.steps
        state = {"step": self.step, "stage": cfg.stage, "phase_end": end, "tokens": self.tokens,
                 "epoch": steps.plan.epoch_at(self.step), "run_config": cfg.to_dict(),
                 "world_size": self.info.world_size, "init": str(self.init.path),
                 "init_sha256": self.init.weights_sha256, "data": AB.data_fingerprint(cfg, self.data),
                 "lr_next": steps.sched.lr(min(self.step, steps.total - 1))}
        path = ckpt.save(self.run_dir, self.step, model=self.setup.model, optimizer=self.setup.optimizer,
                         model_config=self.init.mcfg.to_dict(), train_state=state, tokenizer_path=self.init.tokenizer,
                         keep_last=cfg.checkpoint.keep_last, info=self.info)
        self.last_ckpt = path or self.last_ckpt

    def record(self, m, lr: float, dt: float, data_s: float) -> dict:
        rec = {"kind": "train", "stage": self.cfg.stage, "step": self.step, "tokens": self.tokens,
               "epoch": self.steps.plan.epoch_at(self.step), **m.values, "lr": lr, "grad_norm": m.grad_norm,
               "tokens_per_s": m.values["step_tokens"] / dt, "step_s": dt, "data_s": data_s,
               "expert_tokens": {"attn": m.expert_counts[:, 0].tolist(), "mlp": m.expert_counts[:, 1].tolist()}}
        return rec

    # ------------------------------------------------------------------------------------------- the loop
    def run(self) -> int:
        cfg, info, steps = self.cfg, self.info, self.steps
        self.print_plan()
        self.metrics = MetricsLog(self.run_dir, enabled=info.is_main, tensorboard=cfg.log.tensorboard,
                                  resume_step=self.step)
        if self.found is None:
            t = self.data.train
            self.metrics.write({"kind": "event", "step": 0, "stage": cfg.stage, "event": "stage_start",
                                "init": str(self.init.path), "rows": t.n, "cut": getattr(t, "cut", 0),
                                "dropped": t.dropped, "steps": steps.total})
            self.val()
        from tqdm import tqdm
        bar = tqdm(total=steps.total, initial=self.step, desc=cfg.stage, unit="step",
                   disable=not (cfg.log.progress and info.is_main), dynamic_ncols=True, file=sys.stderr)
        t_run = time.perf_counter()
        try:
            while self.step < steps.total:
                t0 = time.perf_counter()
                lr = steps.sched.lr(self.step)
                m, data_s = self.one_step(lr)
                if not m.stepped:
                    raise TrainingDiverged(
                        f"loss is not finite at step {self.step} ({cfg.stage}, lr {lr:.3g}); the optimizer step was "
                        f"not taken. Last good checkpoint: {self.last_ckpt or 'none (no checkpoint yet)'}. Resume "
                        "from it with a lower --optim.lr or tighter --optim.grad_clip")
                self.step += 1
                self.tokens += m.values["step_tokens"]
                self.summary["data_s"] += data_s
                dt = time.perf_counter() - t0
                self.summary.setdefault("loss_first", m.values["loss"])
                self.summary["loss_last"] = m.values["loss"]
                if self.step % cfg.log.every_steps == 0 or self.step == steps.total:
                    self.metrics.write(self.record(m, lr, dt, data_s))
                bar.update(1)
                bar.set_postfix(loss=f"{m.values['loss']:.3f}", lr=f"{lr:.2e}", refresh=False)
                hooks.HOOKS.after_step(self.step)
                if self.step % cfg.log.val_every_steps == 0 and self.step != steps.total:
                    self.val()
                if self.step % cfg.checkpoint.every_steps == 0 or self.step == steps.total:
                    self.save(end=self.step == steps.total)
            self.val()
        finally:
            bar.close()
            self.metrics.close()
        self.print_summary(time.perf_counter() - t_run)
        return 0

    # ------------------------------------------------------------------------------------------- console
    def print_plan(self) -> None:
        if not self.info.is_main:
            return
        cfg, steps, t, info = self.cfg, self.steps, self.data.train, self.info
        what = "conversations" if cfg.stage == "sft" else "pairs"
        print(f"== {cfg.stage}: {cfg.source} → {self.run_dir}  model {self.init.mcfg.name or 'from init'} "
              f"({info.world_size} × {info.device.type}, {self.precision}, "
              f"{'FSDP2' if self.setup.fsdp else 'single process'})")
        if self.found is not None:
            print(f"resuming from {self.found.path} (step {self.found.step})")
        else:
            print(f"starting from {self.init.path}")
        kept = f"{t.n:,} {what} of {', '.join(t.sources)}"
        if cfg.stage == "sft":
            kept += (f"; {t.cut} longer than data.max_len = {cfg.data.max_len} cut to it ({t.cut_trained:,} trained "
                     f"tokens left out), {t.dropped} dropped (nothing trained left)")
        else:
            kept += f"; {t.dropped} longer than data.max_len = {cfg.data.max_len} dropped"
        print(kept)
        print(f"steps {self.step}..{steps.total} ({cfg.train.epochs:g} epoch(s) of {t.n:,} {what}, batch "
              f"{cfg.train.batch} = {steps.accum} micro-batch(es) × {cfg.data.micro_batch} × {info.world_size} "
              f"rank(s)); lr {cfg.optim.lr:.3g}: warmup {steps.sched.warmup_steps} step(s), cosine to 0"
              + (f"; β = {cfg.dpo.beta:g}" if cfg.stage == "dpo" else ""))
        sys.stdout.flush()

    def print_summary(self, wall: float) -> None:
        if not self.info.is_main:
            return
        s = self.summary
        rows = [("stage", self.cfg.stage), ("steps", f"{s['start_step']} → {self.step}"),
                ("tokens", f"{self.tokens:,} in total"), ("wall time", f"{wall:.1f} s")]
        if "loss_first" in s:
            rows.append(("train loss", f"{s['loss_first']:.4f} → {s['loss_last']:.4f}"))
        if "val_first" in s:
            rows.append(("val loss", f"{s['val_first']:.4f} → {s['val_last']:.4f}"))
        rows.append(("checkpoint", str(self.last_ckpt)))
        width = max(len(k) for k, _ in rows)
        print(f"== {self.cfg.stage} summary")
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        sys.stdout.flush()
