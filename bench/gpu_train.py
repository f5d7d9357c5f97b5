"""Phase-1 training steps of a JetMoE-8B-shaped model on GPU(s): tokens/s/GPU, MFU and peak memory, plus the
memory plan of the full 8B on 8 × 80 GB with FSDP2 (printed first, with or without a GPU).

    python bench/gpu_train.py                       # 1 GPU: the 8B's width with --layers 4 (fits 80 GB)
    python bench/gpu_train.py --layers 2 --steps 5  # smaller / shorter
    torchrun --nproc-per-node 8 bench/gpu_train.py --layers 24 --micro-batch 1   # the full 8B, FSDP2
    python bench/gpu_train.py --plan-only           # the memory and cost plans, no GPU needed

The model is trainer/configs/model/jetmoe-8b.toml (d_model 2048, 8 experts top-2 in MoA and MoE, vocab 32000,
seq 4096) with n_layers from --layers; AdamW (fused), bf16 autocast, the same loss as the trainer, random
tokens (throughput does not depend on the data). The first --warmup steps are not timed. MFU = tokens/s ×
FLOPs/token ÷ (GPUs × dense bf16 peak), with FLOPs/token counted both ways (6·N_active, and the model's count
including attention). The measured peak memory is printed next to the plan's prediction for the same shape,
which checks the plan. Without CUDA it prints the plans and exits with status 1: the GPU figures are owed.
Ends with one JSON line of figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.config import CONFIG_DIR, load_run_config  # noqa: E402
from trainer.costs import format_memory_plan, format_plan, memory_plan, plan_run  # noqa: E402
from trainer.metrics import device_peak_tflops  # noqa: E402
from trainer.model import JetMoE, count_params, flops_per_token, load_model_config  # noqa: E402
from trainer.optim import build_optimizer  # noqa: E402


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4, help="blocks of the 8B's width (24 = the full model)")
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--backend", default="auto", help="expert backend: auto | torch | grouped_mm | megablocks")
    p.add_argument("--gpu-gib", type=float, default=80.0)
    p.add_argument("--plan-only", action="store_true")
    args = p.parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    plans = print_plans(args.gpu_gib) if rank == 0 else []
    if args.plan_only:
        print(json.dumps({"plan_8x80_micro1_gib": round(plans[0]["total_gib"], 1), "gpu_run": "not requested"}))
        return 0
    if not torch.cuda.is_available():
        print("\nerror: no CUDA device here, so the GPU throughput/MFU/peak-memory run did not happen (owed). Run "
              "this script on a GPU machine: python bench/gpu_train.py  (or torchrun ... for FSDP2).", file=sys.stderr)
        print(json.dumps({"plan_8x80_micro1_gib": round(plans[0]["total_gib"], 1), "gpu_run": "owed: no CUDA"}))
        return 1

    from trainer import dist as D
    info = D.init()
    dev = info.device
    run = load_run_config(CONFIG_DIR / "jetmoe-8b.toml", [f"--data.micro_batch={args.micro_batch}"])
    m = load_model_config(run.model_config_path()).replace(n_layers=args.layers, backend=args.backend)
    torch.manual_seed(0)
    with torch.device("meta"):
        model = JetMoE(m)
    if info.distributed:
        D.shard_model(model, reshard_after_forward=True)
    model.to_empty(device=dev)
    model.init_weights()
    opt = build_optimizer(model, run, dev)
    g = torch.Generator(device="cpu").manual_seed(rank)
    tokens = torch.randint(0, m.vocab_size, (args.micro_batch, args.seq_len + 1), generator=g).to(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for step in range(args.warmup + args.steps):
        torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(tokens[:, :-1], labels=tokens[:, 1:])
        loss = out.lm_loss + run.train.aux_coef * out.load_balance_loss + run.train.z_coef * out.z_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(dev)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = sorted(times)[len(times) // 2]
    tps_gpu = args.micro_batch * args.seq_len / step_s
    name = torch.cuda.get_device_name(dev)
    peak = device_peak_tflops(name)
    _, active = count_params(m)
    f6n, fmodel = 6.0 * active, flops_per_token(m, args.seq_len)
    peak_mem = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    predicted = memory_plan(m, info.world_size, args.micro_batch, args.seq_len, False, gpu_gib=args.gpu_gib)
    figures = {"device": name, "gpus": info.world_size, "layers": args.layers, "micro_batch": args.micro_batch,
               "seq_len": args.seq_len, "backends": model.backends(dev) if hasattr(model, "backends") else {},
               "step_s_median": step_s, "tokens_per_s_per_gpu": tps_gpu,
               "mfu_6n": tps_gpu * f6n / (peak * 1e12) if peak else None,
               "mfu_model": tps_gpu * fmodel / (peak * 1e12) if peak else None,
               "peak_mem_gib": peak_mem, "plan_mem_gib": predicted["total_gib"],
               "loss_last": float(loss)}
    if info.is_main:
        print(f"\n== measured on {info.world_size} × {name}: JetMoE-8B width, {args.layers} layers, micro-batch "
              f"{args.micro_batch} × {args.seq_len}")
        print(f"{'median step':<22}{step_s * 1e3:,.1f} ms")
        print(f"{'tokens/s/GPU':<22}{tps_gpu:,.0f}")
        if peak:
            print(f"{'MFU (6·N_active)':<22}{figures['mfu_6n']:.1%}   (paper ≈ 14% on 96 H100 with Megatron)")
            print(f"{'MFU (with attention)':<22}{figures['mfu_model']:.1%}")
        print(f"{'peak memory':<22}{peak_mem:,.1f} GiB (plan for this shape: {predicted['total_gib']:,.1f} GiB)")
        print(json.dumps(figures))
    D.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
