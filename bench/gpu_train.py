"""Training speed of a JetMoE-8B-shaped model on GPU, measured on the trainer's own step, next to transformers.

    python bench/gpu_train.py --plan-only               # the 8B memory and cost plans; no GPU needed
    python bench/gpu_train.py --layers 8                # the trainer's defaults, the run config's micro-batch
    python bench/gpu_train.py --layers 8 --micro-batch 4 \
        --variants defaults,eager,no-compile,full-logits,per-forward-casts --compare-hf --profile
    python bench/gpu_train.py --layers 8 --train.compile_backend=aot_eager   # any run-config override, all variants
    torchrun --nproc-per-node 8 bench/gpu_train.py --layers 24 --micro-batch 1    # the full 8B, FSDP2

The model and the run are the run config's (trainer/configs/jetmoe-8b.toml: d_model 2048, 8 experts top-2 in
MoA and MoE, vocab 32000, seq 4096) with --layers blocks, built by the trainer itself: `trainer.build.
plan_levers` + `build_model` (precision, FSDP2 units, the weight cast plan, compiled blocks, the run's fused
AdamW), random tokens (speed does not depend on the data) handed over as the loader's Batch on the host.

What is timed: `trainer.step.train_step`, the step a run takes: the micro-batches of one optimizer step
(host-to-device copy, forward + backward each on the model's own out.loss, the sums kept on the device),
the one all-reduce of the logged scalars and its host copy, gradient clipping, the AdamW update. The run's
accumulation is train.batch_tokens / (seq × micro-batch × GPUs) micro-batches per step (trainer.build.
plan_steps; 256 for the 8B's 4M-token batch on one GPU at micro-batch 4); a timed step runs min(that,
--max-accum) of them, and CUDA events recorded at StepSetup.mark split it into micro-batch time and update
time, from which tokens/s at the run's own accumulation is computed (the update's cost spread over all of
its micro-batches). Both figures are printed.

Variants (VARIANTS): run-config overrides on top of the run config, so "defaults" is what a run of the
config gets on this machine (train.compile = auto: compiled on CUDA; train.weight_casts = auto: bf16 weight
copies once per step; the chunked loss) and each other row switches levers off the way a user would. Per
variant one JSON line: tokens/s/GPU, MFU with 6·N_active and with the model's FLOP count (attention
included) over the GPU's dense bf16 peak, peak memory next to the memory plan's figure for the same shape,
the loss, and the levers line a run prints. --compare-hf times transformers' JetMoeForCausalLM (sdpa) with
the same shape, micro-batch, accumulation and step function, and prints the ratio. --profile prints one
step of the first variant grouped into GEMM / grouped GEMM / attention / permutation / casts / optimizer /
other (trainer.perf.profile). A variant that runs out of memory is reported as such. Without CUDA it prints
the plans and exits with status 1: the GPU figures are owed.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer import build as B  # noqa: E402
from trainer.config import CONFIG_DIR, load_run_config  # noqa: E402
from trainer.costs import format_memory_plan, format_plan, memory_plan, plan_run  # noqa: E402
from trainer.data.loader import Batch  # noqa: E402
from trainer.metrics import device_peak_tflops  # noqa: E402
from trainer.model import count_params, flops_per_token, load_model_config  # noqa: E402
from trainer.step import StepSetup, autocast_for, train_step  # noqa: E402

# name → (run-config overrides, full logits): the rows switch the trainer's levers off one at a time.
OFF_COMPILE, PER_FORWARD = "--train.compile=false", "--train.weight_casts=per-forward"
VARIANTS: dict[str, tuple[list[str], bool]] = {
    "defaults": ([], False),
    "no-compile": ([OFF_COMPILE], False),
    "per-forward-casts": ([PER_FORWARD], False),
    "full-logits": ([], True),
    "eager": ([OFF_COMPILE, PER_FORWARD], True),
    "torch-backend": (["--model.backend=torch", OFF_COMPILE, PER_FORWARD], True),
}


def print_plans(gpu_gib: float) -> list[dict]:
    run = load_run_config(CONFIG_DIR / "jetmoe-8b.toml")
    m = load_model_config(run.model_config_path())
    total, active = count_params(m)
    print(f"== JetMoE-8B: {total / 1e9:.2f}B parameters, {active / 1e9:.2f}B active per token")
    print(f"== memory plan: FSDP2 over 8 GPUs of {gpu_gib:.0f} GiB, seq {run.data.seq_len}, bf16 activations")
    rows = [memory_plan(m, 8, mb, run.data.seq_len, ck, gpu_gib=gpu_gib) for ck in (False, True) for mb in (1, 2, 4)]
    print(format_memory_plan(rows, gpu_gib))
    one = memory_plan(m, 1, 1, run.data.seq_len, True, gpu_gib=gpu_gib)
    print(f"(one GPU alone would need {one['total_gib']:.0f} GiB even with activation checkpointing: FSDP2 is required)")
    print(f"== cost plan: {run.cost.gpus} × {run.cost.gpu}, assumed MFU {run.cost.mfu:.0%}")
    print(format_plan(plan_run(run, m)))
    return rows


class FullLogits(torch.nn.Module):
    """Our model with the loss taken from the batch's full [B, T, vocab] logits (the path the chunked loss
    replaced), called the way train_step calls a model."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels=None):
        return self.model(input_ids, labels=labels, return_logits=True)

    def set_requires_gradient_sync(self, sync: bool) -> None:  # FSDP2
        self.model.set_requires_gradient_sync(sync)


class HFAsOurs(torch.nn.Module):
    """transformers' JetMoeForCausalLM behind our model's call (model(inputs, labels=targets) with out.loss
    and the parts train_step logs), so the very same train_step runs it."""

    def __init__(self, hf: torch.nn.Module, n_layers: int, n_experts: int):
        super().__init__()
        self.hf = hf
        self.counts_shape = (n_layers, 2, n_experts)

    def forward(self, input_ids, labels=None):
        # transformers shifts the labels inside: the same inputs forwarded, one fewer predicted position
        out = self.hf(input_ids=input_ids, labels=input_ids)
        zero = out.loss.new_zeros(())
        aux = out.aux_loss if out.aux_loss is not None else zero
        return SimpleNamespace(loss=out.loss, lm_loss=out.loss, load_balance_loss=aux, z_loss=zero,
                               expert_counts=torch.zeros(self.counts_shape, dtype=torch.long, device=out.loss.device))


def make_batches(n: int, micro_batch: int, seq: int, vocab: int, seed: int) -> list[Batch]:
    """`n` loader-shaped batches on the host (train_step copies them to the device, as in a run)."""
    g = torch.Generator().manual_seed(seed)
    return [Batch(tokens=torch.randint(0, vocab, (micro_batch, seq + 1), generator=g),
                  source_ids=torch.zeros(micro_batch, dtype=torch.long),
                  positions=torch.arange(micro_batch) + i * micro_batch) for i in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Times train_step calls, whole and split into accumulation and update at StepSetup.mark: CUDA events on
    a GPU, the host clock elsewhere (the tests run the bench's logic on CPU)."""

    def __init__(self, device: torch.device):
        self.device, self.records = device, []

    def time(self, fn):
        if self.device.type == "cuda":
            ev = {k: torch.cuda.Event(enable_timing=True) for k in ("start", "accumulated", "updated")}
            ev["start"].record()
            result = fn(lambda name: ev[name].record())
            torch.cuda.synchronize(self.device)
            self.records.append((ev["start"].elapsed_time(ev["accumulated"]) / 1e3,
                                 ev["accumulated"].elapsed_time(ev["updated"]) / 1e3))
            return result
        marks = {"start": time.perf_counter()}
        result = fn(lambda name: marks.__setitem__(name, time.perf_counter()))
        self.records.append((marks["accumulated"] - marks["start"], marks["updated"] - marks["accumulated"]))
        return result

    def median(self) -> tuple[float, float]:
        return (statistics.median(r[0] for r in self.records), statistics.median(r[1] for r in self.records))


def measure(setup: StepSetup, batches: list[Batch], lr: float, steps: int, warmup: int) -> dict:
    """Warm up (the first step compiles), then time `steps` train_step calls of len(batches) micro-batches."""
    device = setup.info.device
    cuda = device.type == "cuda"
    stream = itertools.cycle(batches)
    t0 = time.perf_counter()
    for _ in range(warmup):
        train_step(setup, stream, lr)
    _sync(device)
    warm_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    timer = StepTimer(device)
    for _ in range(steps):
        m = timer.time(lambda mark: train_step(dataclasses.replace(setup, mark=mark), stream, lr))
    accum_s, update_s = timer.median()
    return {"accumulate_s": accum_s, "update_s": update_s, "warmup_s": warm_s, "loss": m.loss,
            "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if cuda else float("nan")}


def figures(t: dict, micro_batch: int, seq: int, accum: int, run_accum: int, f6n: float, fmodel: float,
            peak_flops: float | None) -> dict:
    per_micro = t["accumulate_s"] / accum
    tokens = micro_batch * seq
    out = {"micro_batch_s": per_micro, "update_s": t["update_s"],
           "tokens_per_s": accum * tokens / (t["accumulate_s"] + t["update_s"]),
           "tokens_per_s_run_accum": run_accum * tokens / (run_accum * per_micro + t["update_s"])}
    for key in ("tokens_per_s", "tokens_per_s_run_accum"):
        suffix = key.removeprefix("tokens_per_s")
        out[f"mfu_6n{suffix}"] = out[key] * f6n / peak_flops if peak_flops else None
        out[f"mfu_model{suffix}"] = out[key] * fmodel / peak_flops if peak_flops else None
    return out


@dataclasses.dataclass
class Bench:
    """What every variant shares: the run config and overrides, the shape, the batches, the FLOP counts."""

    run_config: str
    overrides: list[str]
    layers: int
    info: object  # trainer.dist.DistInfo
    batches: list[Batch]
    run_accum: int
    steps: int
    warmup: int
    f6n: float
    fmodel: float
    peak_flops: float | None
    common: dict
    profile: bool = False

    def config(self, extra: list[str]):
        cfg = load_run_config(self.run_config, self.overrides + extra)
        return cfg, B.build_model_config(cfg).replace(n_layers=self.layers)

    def figures(self, t: dict, micro_batch: int, accum: int, run_accum: int) -> dict:
        seq = self.batches[0].tokens.shape[1] - 1
        return figures(t, micro_batch, seq, accum, run_accum, self.f6n, self.fmodel, self.peak_flops)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Any --section.key=value is a run-config override for every variant.")
    p.add_argument("--run-config", default=str(CONFIG_DIR / "jetmoe-8b.toml"))
    p.add_argument("--layers", type=int, default=8, help="blocks of the 8B's width (24 = the full model)")
    p.add_argument("--micro-batch", type=int, default=0, help="sequences per forward (0 = the run config's)")
    p.add_argument("--seq-len", type=int, default=0, help="0 = the run config's")
    p.add_argument("--max-accum", type=int, default=4, help="most micro-batches in a timed step")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first one compiles)")
    p.add_argument("--variants", default="defaults", help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--compare-hf", action="store_true", help="also time transformers' JetMoeForCausalLM (sdpa)")
    p.add_argument("--profile", action="store_true", help="profile one step of the first variant, right after it")
    p.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory for the printed 8B plan")
    p.add_argument("--plan-only", action="store_true")
    args, extra = p.parse_known_args(argv)
    bad = [a for a in extra if not (a.startswith("--") and "=" in a and "." in a.split("=", 1)[0])]
    if bad:
        p.error(f"unrecognised arguments {bad}; run-config overrides are written --section.key=value")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        p.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    overrides = extra + ([f"--data.micro_batch={args.micro_batch}"] if args.micro_batch else []) \
        + ([f"--data.seq_len={args.seq_len}"] if args.seq_len else [])
    rank = int(os.environ.get("RANK", "0"))
    plans = print_plans(args.gpu_gib) if rank == 0 else []
    if args.plan_only:
        print(json.dumps({"plan_8x80_micro1_gib": round(plans[0]["total_gib"], 1), "gpu_run": "not requested"}))
        return 0
    if not torch.cuda.is_available():
        print("\nbench/gpu_train.py needs CUDA for the measured run (torch.cuda.is_available() is False): the GPU "
              "throughput / MFU / peak-memory figures are owed. Run it on a GPU machine (bench/gpu_check.sh runs "
              "every GPU check at once).", file=sys.stderr)
        print(json.dumps({"plan_8x80_micro1_gib": round(plans[0]["total_gib"], 1), "gpu_run": "owed: no CUDA"}))
        return 1

    from trainer import dist as D
    info = D.init()
    bench = make_bench(args.run_config, overrides, args.layers, info, args.max_accum, args.steps, args.warmup,
                       torch.cuda.get_device_name(info.device), args.profile)
    results = run_variants(bench, variants)
    if args.compare_hf:
        report_hf(time_transformers(bench), results, info.is_main)
    D.shutdown()
    return 0


def make_bench(run_config: str, overrides: list[str], layers: int, info, max_accum: int, steps: int, warmup: int,
               device_name: str, profile: bool = False) -> Bench:
    """The shape and accumulation the trainer would use for this run config on `info`'s ranks."""
    cfg = load_run_config(run_config, overrides)
    mcfg = B.build_model_config(cfg).replace(n_layers=layers)
    mb, seq = cfg.data.micro_batch, cfg.data.seq_len
    run_accum = B.plan_steps(cfg, 1, info).accum
    accum = min(run_accum, max_accum)
    peak = device_peak_tflops(device_name)
    _, active = count_params(mcfg)
    if info.device.type == "cuda":
        total_gib = torch.cuda.get_device_properties(info.device).total_memory / 2 ** 30
    else:
        total_gib = 80.0
    plan = memory_plan(mcfg, info.world_size, mb, seq, cfg.parallel.activation_checkpoint, gpu_gib=total_gib)
    common = {"bench": "gpu_train", "device": device_name, "torch": torch.__version__, "gpus": info.world_size,
              "layers": layers, "micro_batch": mb, "seq_len": seq, "accum_timed": accum, "run_accum": run_accum,
              "active_params": active, "flops_per_token_6n": 6.0 * active,
              "flops_per_token_model": flops_per_token(mcfg, seq), "peak_tflops": peak,
              "plan_mem_gib": round(plan["total_gib"], 1), "overrides": overrides}
    if info.is_main:
        print(f"\n== {info.world_size} × {device_name}: {layers} layers of the 8B's width, micro-batch {mb} × {seq}, "
              f"{accum} micro-batches per timed step (the run's: {run_accum}); dense bf16 peak "
              f"{peak or float('nan'):.0f} TFLOP/s")
    return Bench(run_config, overrides, layers, info, make_batches(accum, mb, seq, mcfg.vocab_size, info.rank),
                 run_accum, steps, warmup, 6.0 * active, flops_per_token(mcfg, seq),
                 peak * 1e12 if peak else None, common, profile)


def _compiled_state(model, levers) -> str:
    from trainer.perf.compile import is_compiled

    if is_compiled(model):
        return f"compiled ({levers.compile})"
    return "eager (compile failed)" if levers.compile != "off" else "eager"


def run_variants(bench: Bench, variants: list[str]) -> dict[str, dict]:
    """Build each variant as the trainer builds a run of it, time it, free it; one JSON line each."""
    info = bench.info
    mb, accum = bench.batches[0].tokens.shape[0], len(bench.batches)
    results = {}
    for name in variants:
        extra, full_logits = VARIANTS[name]
        cfg, mcfg = bench.config(extra)
        levers = B.plan_levers(cfg, info)
        row = {**bench.common, "variant": name, "variant_overrides": extra, "full_logits": full_logits,
               "levers": levers.describe()}
        built = setup = None
        try:
            built = B.build_model(cfg, mcfg, info, levers)
            row["backends"] = built.model.backends(info.device)
            setup = StepSetup(FullLogits(built.model) if full_logits else built.model, built.optimizer, info,
                              accum=accum, grad_clip=cfg.optim.grad_clip,
                              autocast=autocast_for(levers.precision, info.device), fsdp=levers.fsdp, n_sources=1)
            t = measure(setup, bench.batches, cfg.optim.lr, bench.steps, bench.warmup)
            row["compiled"] = _compiled_state(built.model, levers)
            row.update(t)
            row.update(bench.figures(t, mb, accum, bench.run_accum))
        except torch.cuda.OutOfMemoryError as e:
            row["error"] = f"out of memory: {str(e).splitlines()[0][:200]}"
        results[name] = row
        if info.is_main:
            print(format_row(row))
            print(json.dumps(row), flush=True)
        if bench.profile and name == variants[0] and "error" not in row:
            # right after the first variant, with its levers still set (an early result if time runs out)
            prof = profile_step(setup, bench.batches, cfg.optim.lr)
            results["profile"] = {**bench.common, "variant": name, **prof}
            if info.is_main:
                print(json.dumps(results["profile"]), flush=True)
        built = setup = None
        if levers.compile != "off":
            import torch._dynamo
            torch._dynamo.reset()  # its caches must not keep this model's weights alive for the next variant
        _free(info.device)
    return results


def report_hf(hf_row: dict, results: dict, is_main: bool) -> None:
    best = max((r for r in results.values() if "tokens_per_s" in r), key=lambda r: r["tokens_per_s"], default=None)
    if best and "tokens_per_s" in hf_row:
        hf_row["ours_variant"] = best["variant"]
        hf_row["speedup_ours_vs_hf"] = best["tokens_per_s"] / hf_row["tokens_per_s"]
        hf_row["speedup_ours_vs_hf_run_accum"] = best["tokens_per_s_run_accum"] / hf_row["tokens_per_s_run_accum"]
    if is_main:
        print(format_row(hf_row))
        if "speedup_ours_vs_hf" in hf_row:
            print(f"ours ({best['variant']}) / transformers: {hf_row['speedup_ours_vs_hf']:.2f}× tokens/s")
        print(json.dumps(hf_row), flush=True)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['variant']:<17} {r['error']}"
    mfu = (f"MFU 6N {r['mfu_6n']:.1%} / model {r['mfu_model']:.1%} (run's accumulation: {r['mfu_6n_run_accum']:.1%} / "
           f"{r['mfu_model_run_accum']:.1%})" if r.get("mfu_6n") is not None else "MFU n/a (unknown peak)")
    return (f"{r['variant']:<17} {r.get('compiled', ''):<20} {r['tokens_per_s']:>9,.0f} tok/s/GPU "
            f"({r['tokens_per_s_run_accum']:,.0f} at the run's accumulation)  {mfu}  micro-batch "
            f"{r['micro_batch_s'] * 1e3:.1f} ms, update {r['update_s'] * 1e3:.1f} ms  peak {r['peak_mem_gib']:.1f} GiB "
            f"(plan {r['plan_mem_gib']:.1f})  loss {r['loss']:.3f}")


def profile_step(setup: StepSetup, batches: list[Batch], lr: float) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from trainer.perf.profile import format_groups, group_events

    device = setup.info.device
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    stream = itertools.cycle(batches)
    train_step(setup, stream, lr)
    _sync(device)
    with profile(activities=activities) as prof:
        train_step(setup, stream, lr)
        _sync(device)
    g = group_events(prof.events(), steps=1, top=20)
    if setup.info.is_main:
        print(format_groups(g), flush=True)
    return {"profile_device": g.device, "profile_total_ms": round(g.total_ms, 2),
            "profile_ms": {k: round(v, 2) for k, v in g.ms.items()},
            "profile_top": [[round(ms, 2), calls, fam, name] for ms, calls, fam, name in g.top[:10]]}


def time_transformers(bench: Bench) -> dict:
    """transformers' JetMoeForCausalLM (sdpa) through the same train_step, shape, micro-batch and accumulation,
    in the run's precision with the run's AdamW; on OOM at our micro-batch, half the micro-batch and twice
    the accumulation (same tokens per step)."""
    import transformers

    from trainer.optim import build_optimizer
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_model import hf_config

    info = bench.info
    cfg, mcfg = bench.config([])
    precision = B.precision_of(cfg, info)
    row = {**bench.common, "variant": "transformers", "impl": f"JetMoeForCausalLM sdpa, transformers {transformers.__version__}"}
    if info.distributed:
        row["error"] = "not measured under torchrun (single-GPU comparison)"
        return row
    hc = hf_config(mcfg, output_router_logits=True)  # its aux loss too, as ours computes its own
    mb, accum, seq = bench.batches[0].tokens.shape[0], len(bench.batches), bench.batches[0].tokens.shape[1] - 1
    micro = mb
    while micro >= 1:
        model = setup = None
        _free(info.device)
        try:
            torch.manual_seed(0)
            with torch.device(info.device):
                hf = transformers.AutoModelForCausalLM.from_config(hc, attn_implementation="sdpa", dtype=torch.float32)
            hf.train()
            model = HFAsOurs(hf, mcfg.n_layers, mcfg.n_experts)
            n = accum * mb // micro
            setup = StepSetup(model, build_optimizer(model, cfg, info.device), info, accum=n,
                              grad_clip=cfg.optim.grad_clip, autocast=autocast_for(precision, info.device),
                              fsdp=False, n_sources=1)
            t = measure(setup, make_batches(n, micro, seq, mcfg.vocab_size, seed=1), cfg.optim.lr, bench.steps,
                        bench.warmup)
            row.update(t)
            row.update({"micro_batch": micro, "accum_timed": n, "compiled": "eager"})
            row.update(bench.figures(t, micro, n, bench.run_accum * mb // micro))
            break
        except torch.cuda.OutOfMemoryError as e:
            row["oom_at_micro_batch"] = micro
            row["error"] = f"out of memory at micro-batch {micro}: {str(e).splitlines()[0][:160]}"
            micro //= 2
    if "tokens_per_s" in row:
        row.pop("error", None)
    model = setup = None
    _free(info.device)
    return row


if __name__ == "__main__":
    sys.exit(main())
