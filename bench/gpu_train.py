"""Training speed of a JetMoE-8B-shaped model on GPU, measured on the step a run takes, next to transformers.

    python bench/gpu_train.py --plan-only               # the 8B memory and cost plans; no GPU needed
    python bench/gpu_train.py --layers 8                # all speed levers, the run config's micro-batch
    python bench/gpu_train.py --layers 8 --micro-batch 4 --variants all,no-compile,no-cast-cache,full-logits \\
        --compare-hf --profile                          # lever by lever, transformers, where the time goes
    torchrun --nproc-per-node 8 bench/gpu_train.py --layers 24 --micro-batch 1    # the full 8B, FSDP2

The model is the run config's (trainer/configs/jetmoe-8b.toml: d_model 2048, 8 experts top-2 in MoA and
MoE, vocab 32000, seq 4096) with --layers blocks; fp32 master weights, bf16 autocast, the run's AdamW
(trainer.optim.build_optimizer: fused on CUDA), random tokens (speed does not depend on the data).

What is timed: `trainer.perf.train_step`, the step a run takes: the micro-batches of one optimizer step
(forward + backward each, the model's own out.loss), gradient clipping, the AdamW update. The run's
accumulation is train.batch_tokens / (seq × micro-batch × GPUs) micro-batches per step (512 for the 8B's
4M-token batch on one GPU at micro-batch 2); a timed step runs min(that, --max-accum) of them, and device
events split it into micro-batch time and update time, from which tokens/s at the run's own accumulation
is computed (the update's cost spread over all of its micro-batches). Both figures are printed.

Per variant (levers on/off; see VARIANTS) one JSON line: tokens/s/GPU, MFU with 6·N_active and with the
model's FLOP count (attention included) over the GPU's dense bf16 peak, peak memory next to the memory
plan's figure for the same shape, and the loss. --compare-hf times transformers' JetMoeForCausalLM (sdpa
attention) with the same shape, micro-batch, accumulation and step code, and prints the ratio. --profile
prints one step of the first variant grouped into GEMM / grouped GEMM / attention / permutation / casts /
optimizer / other (trainer.perf.profile). A variant that runs out of memory is reported as such. Without
CUDA it prints the plans and exits with status 1: the GPU figures are owed.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.config import CONFIG_DIR, load_run_config  # noqa: E402
from trainer.costs import format_memory_plan, format_plan, memory_plan, plan_run  # noqa: E402
from trainer.metrics import device_peak_tflops  # noqa: E402
from trainer.model import JetMoE, count_params, flops_per_token, load_model_config  # noqa: E402


@dataclass(frozen=True)
class Variant:
    compile: bool = True
    cast_cache: bool = True
    chunked_loss: bool = True
    backend: str = "auto"


VARIANTS = {
    "all": Variant(),
    "no-compile": Variant(compile=False),
    "no-cast-cache": Variant(cast_cache=False),
    "full-logits": Variant(chunked_loss=False),
    "eager": Variant(compile=False, cast_cache=False, chunked_loss=False),
    "torch-backend": Variant(compile=False, cast_cache=False, chunked_loss=False, backend="torch"),
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


def our_loss(chunked: bool):
    def loss_fn(model, tokens):
        return model(tokens[:, :-1], labels=tokens[:, 1:], return_logits=None if chunked else True).loss
    return loss_fn


def hf_loss(model, tokens):
    # transformers shifts the labels inside: same inputs forwarded, one fewer predicted position
    return model(input_ids=tokens[:, :-1], labels=tokens[:, :-1]).loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Times train_step calls, whole and split into accumulation and update: CUDA events on a GPU, the host
    clock elsewhere (the tests run the bench's logic on CPU)."""

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


def measure(model, opt, batches, loss_fn, steps: int, warmup: int, autocast=torch.bfloat16) -> dict:
    """Warm up, then time `steps` optimizer steps over `batches` (a list of micro-batches)."""
    from trainer.perf import train_step

    device = batches[0].device
    cuda = device.type == "cuda"
    t0 = time.perf_counter()
    for _ in range(warmup):
        r = train_step(model, opt, batches, autocast=autocast, loss_fn=loss_fn)
    _sync(device)
    warm_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    timer = StepTimer(device)
    for _ in range(steps):
        r = timer.time(lambda mark: train_step(model, opt, batches, autocast=autocast, loss_fn=loss_fn, mark=mark))
    accum_s, update_s = timer.median()
    return {"accumulate_s": accum_s, "update_s": update_s, "warmup_s": warm_s, "loss": float(r.loss),
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


def build_ours(mcfg, run, info, variant: Variant):
    from trainer import dist as D
    from trainer.optim import build_optimizer
    from trainer.perf import shard_mixed_precision

    torch.manual_seed(0)
    with torch.device("meta"):
        model = JetMoE(mcfg.replace(backend=variant.backend))
    if info.distributed:
        (shard_mixed_precision if variant.cast_cache else D.shard_model)(model, reshard_after_forward=True)
    model.to_empty(device=info.device)
    model.init_weights()
    return model, build_optimizer(model, run, info.device)


def set_levers(model, opt, variant: Variant, distributed: bool, example, compile_backend="inductor") -> str:
    """Switch `model` to `variant`; returns "compiled" / "eager" (after a failed compile, eager)."""
    from trainer.perf import compile_blocks, train_step, uncompile_blocks

    model.set_backend(variant.backend)
    if not distributed:  # sharded models get bf16 weights from the FSDP2 policy chosen at build time
        model.cache_weight_casts(torch.bfloat16 if variant.cast_cache else None, opt)
    uncompile_blocks(model)
    if not variant.compile:
        return "eager"
    probe = lambda: train_step(model, opt, [example], autocast=torch.bfloat16,  # noqa: E731
                               loss_fn=our_loss(variant.chunked_loss))
    return "compiled" if compile_blocks(model, probe=probe, backend=compile_backend) else "eager (compile failed)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-config", default=str(CONFIG_DIR / "jetmoe-8b.toml"))
    p.add_argument("--layers", type=int, default=8, help="blocks of the 8B's width (24 = the full model)")
    p.add_argument("--micro-batch", type=int, default=0, help="sequences per forward (0 = the run config's)")
    p.add_argument("--seq-len", type=int, default=0, help="0 = the run config's")
    p.add_argument("--max-accum", type=int, default=4, help="most micro-batches in a timed step")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first one compiles)")
    p.add_argument("--variants", default="all", help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--compare-hf", action="store_true", help="also time transformers' JetMoeForCausalLM (sdpa)")
    p.add_argument("--profile", action="store_true", help="profile one step of the first variant, right after it")
    p.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory for the printed 8B plan")
    p.add_argument("--plan-only", action="store_true")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        p.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
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
    run = load_run_config(args.run_config)
    mb = args.micro_batch or run.data.micro_batch
    seq = args.seq_len or run.data.seq_len
    mcfg = load_model_config(run.model_config_path()).replace(n_layers=args.layers, max_seq_len=max(seq, 1))
    run_accum = max(1, run.train.batch_tokens // (seq * mb * info.world_size))
    accum = min(run_accum, args.max_accum)
    name = torch.cuda.get_device_name(info.device)
    peak = device_peak_tflops(name)
    peak_flops = peak * 1e12 if peak else None
    _, active = count_params(mcfg)
    f6n, fmodel = 6.0 * active, flops_per_token(mcfg, seq)
    total_gib = torch.cuda.get_device_properties(info.device).total_memory / 2 ** 30
    plan = memory_plan(mcfg, info.world_size, mb, seq, run.parallel.activation_checkpoint, gpu_gib=total_gib)
    g = torch.Generator().manual_seed(rank)
    batches = [torch.randint(0, mcfg.vocab_size, (mb, seq + 1), generator=g).to(info.device) for _ in range(accum)]
    common = {"bench": "gpu_train", "device": name, "torch": torch.__version__, "gpus": info.world_size,
              "layers": args.layers, "micro_batch": mb, "seq_len": seq, "accum_timed": accum, "run_accum": run_accum,
              "active_params": active, "flops_per_token_6n": f6n, "flops_per_token_model": fmodel,
              "peak_tflops": peak, "plan_mem_gib": round(plan["total_gib"], 1)}
    if info.is_main:
        print(f"\n== {info.world_size} × {name}: {args.layers} layers of the 8B's width, micro-batch {mb} × {seq}, "
              f"{accum} micro-batches per timed step (the run's: {run_accum}); dense bf16 peak "
              f"{peak or float('nan'):.0f} TFLOP/s")
    results = run_variants(mcfg, run, info, variants, batches, args.steps, args.warmup, common, accum, run_accum,
                           f6n, fmodel, peak_flops, profile=args.profile)
    if args.compare_hf:
        hf_row = time_transformers(mcfg, run, info, mb, seq, accum, run_accum, args.steps, args.warmup, common,
                                   f6n, fmodel, peak_flops)
        report_hf(hf_row, results, info.is_main)
    D.shutdown()
    return 0


def run_variants(mcfg, run, info, variants, batches, steps, warmup, common, accum, run_accum, f6n, fmodel,
                 peak_flops, profile=False, compile_backend="inductor") -> dict[str, dict]:
    """Time each variant on one model (re-built only where FSDP2's precision differs); one JSON line each."""
    mb, seq = batches[0].shape[0], batches[0].shape[1] - 1
    results = {}
    model = opt = None
    built_for = None
    for vname in variants:
        variant = VARIANTS[vname]
        if model is None or (info.distributed and built_for != variant.cast_cache):
            model = opt = None
            _free(info.device)
            model, opt = build_ours(mcfg, run, info, variant)
            built_for = variant.cast_cache
        row = {**common, "variant": vname, **vars(variant)}
        try:
            row["compiled"] = set_levers(model, opt, variant, info.distributed, batches[0], compile_backend)
            row["backends"] = model.backends(info.device)
            t = measure(model, opt, batches, our_loss(variant.chunked_loss), steps, warmup)
            row.update(t)
            row.update(figures(t, mb, seq, accum, run_accum, f6n, fmodel, peak_flops))
        except torch.cuda.OutOfMemoryError as e:
            row["error"] = f"out of memory: {str(e).splitlines()[0][:200]}"
            opt.zero_grad(set_to_none=True)
            _free(info.device)
        results[vname] = row
        if info.is_main:
            print(format_row(row))
            print(json.dumps(row), flush=True)
        if profile and vname == variants[0] and info.is_main and "error" not in row:
            # right after the first variant, with its levers still set (an early result if time runs out)
            prof = profile_step(model, opt, batches, our_loss(variant.chunked_loss))
            results["profile"] = {**common, "variant": vname, **prof}
            print(json.dumps(results["profile"]), flush=True)
    model = opt = None
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
        return f"{r['variant']:<14} {r['error']}"
    mfu = (f"MFU 6N {r['mfu_6n']:.1%} / model {r['mfu_model']:.1%} (run's accumulation: {r['mfu_6n_run_accum']:.1%} / "
           f"{r['mfu_model_run_accum']:.1%})" if r.get("mfu_6n") is not None else "MFU n/a (unknown peak)")
    return (f"{r['variant']:<14} {r.get('compiled', ''):<10} {r['tokens_per_s']:>9,.0f} tok/s/GPU "
            f"({r['tokens_per_s_run_accum']:,.0f} at the run's accumulation)  {mfu}  micro-batch "
            f"{r['micro_batch_s'] * 1e3:.1f} ms, update {r['update_s'] * 1e3:.1f} ms  peak {r['peak_mem_gib']:.1f} GiB "
            f"(plan {r['plan_mem_gib']:.1f})  loss {r['loss']:.3f}")


def profile_step(model, opt, batches, loss_fn) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from trainer.perf import train_step
    from trainer.perf.profile import format_groups, group_events

    device = batches[0].device
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    train_step(model, opt, batches, autocast=torch.bfloat16, loss_fn=loss_fn)
    _sync(device)
    with profile(activities=activities) as prof:
        train_step(model, opt, batches, autocast=torch.bfloat16, loss_fn=loss_fn)
        _sync(device)
    g = group_events(prof.events(), steps=1, top=20)
    print(format_groups(g), flush=True)
    return {"profile_device": g.device, "profile_total_ms": round(g.total_ms, 2),
            "profile_ms": {k: round(v, 2) for k, v in g.ms.items()},
            "profile_top": [[round(ms, 2), calls, fam, name] for ms, calls, fam, name in g.top[:10]]}


def time_transformers(mcfg, run, info, mb, seq, accum, run_accum, steps, warmup, common, f6n, fmodel,
                      peak_flops) -> dict:
    """transformers' JetMoeForCausalLM (sdpa), same shape / micro-batch / accumulation / step code; on OOM at
    our micro-batch, half the micro-batch and twice the accumulation (same tokens per step)."""
    import transformers

    from trainer.optim import build_optimizer
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_model import hf_config

    row = {**common, "variant": "transformers", "impl": f"JetMoeForCausalLM sdpa, transformers {transformers.__version__}"}
    if info.distributed:
        row["error"] = "not measured under torchrun (single-GPU comparison)"
        return row
    hc = hf_config(mcfg, output_router_logits=True)  # its aux loss too, as ours computes its own
    g = torch.Generator().manual_seed(1)
    micro = mb
    while micro >= 1:
        model = opt = None
        _free(info.device)
        try:
            torch.manual_seed(0)
            with torch.device(info.device):
                model = transformers.AutoModelForCausalLM.from_config(hc, attn_implementation="sdpa",
                                                                      dtype=torch.float32)
            model.train()
            opt = build_optimizer(model, run, info.device)
            n = accum * mb // micro
            batches = [torch.randint(0, mcfg.vocab_size, (micro, seq + 1), generator=g).to(info.device)
                       for _ in range(n)]
            t = measure(model, opt, batches, hf_loss, steps, warmup)
            row.update(t)
            row.update({"micro_batch": micro, "accum_timed": n})
            row.update(figures(t, micro, seq, n, run_accum * mb // micro, f6n, fmodel, peak_flops))
            row["compiled"] = "eager"
            break
        except torch.cuda.OutOfMemoryError as e:
            row["oom_at_micro_batch"] = micro
            row["error"] = f"out of memory at micro-batch {micro}: {str(e).splitlines()[0][:160]}"
            micro //= 2
    if "tokens_per_s" in row:
        row.pop("error", None)
    model = opt = None
    _free(info.device)
    return row


if __name__ == "__main__":
    sys.exit(main())
