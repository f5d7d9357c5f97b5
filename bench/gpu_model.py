"""GPU check and benchmark of the JetMoE expert backends on one H100/H200 (owed: no GPU in the CPU sessions).

    python bench/gpu_model.py                       # check backends, then time jetmoe-8b width, auto layers
    python bench/gpu_model.py --layers 8 --batch 1 --seq 4096 --steps 10
    python bench/gpu_model.py --check-only          # just the parity checks (seconds)

1. Parity: a small JetMoE (8 experts top-2, bf16 weights) on CUDA; every CUDA backend (grouped_mm =
   PyTorch's grouped GEMM, megablocks where installed) against the `torch` reference backend in the same
   dtype: logits and all gradients within bf16 tolerances, identical expert counts.
2. Speed: jetmoe-8b at full width (d_model 2048, 8 experts top-2 in MoA and MoE, ffn 5632, 32k vocab,
   seq 4096) with as many layers as fit (estimated from memory, fewer on OOM), fp32 master weights,
   bf16 autocast, fused AdamW; one training step = forward + backward + optimizer step. Per backend:
   tokens/s, MFU = flops_per_token(cfg, seq) · tokens/s / dense bf16 peak (H100/H200 SXM 989 TFLOP/s),
   peak memory. Goal: ≥ 40 % MFU. Ends with one JSON line.
Without CUDA it exits with status 2 and says so.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.model import JetMoE, ModelConfig, available_backends, flops_per_token, load_model_config  # noqa: E402
from trainer.model.flops import count_params  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, matched against torch.cuda.get_device_name().
PEAKS = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("GH200", 989.0),
         ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0)]


def device_peak(name: str) -> float | None:
    for key, tflops in PEAKS:
        if key.lower() in name.lower():
            return tflops * 1e12
    return None


def check_backends(device: torch.device) -> list[dict]:
    cfg = ModelConfig(vocab_size=1024, d_model=256, n_layers=2, n_kv_heads=4, head_dim=64, n_experts=8, top_k=2,
                      ffn_hidden=512, max_seq_len=512, init_std=0.02, backend="torch")
    torch.manual_seed(0)
    model = JetMoE(cfg).to(device=device, dtype=torch.bfloat16)
    ids = torch.randint(0, cfg.vocab_size, (4, 256), device=device)

    def run(backend):
        model.set_backend(backend)
        model.zero_grad(set_to_none=True)
        out = model(ids[:, :-1], labels=ids[:, 1:])
        out.loss.backward()
        return out, {n: p.grad.float().clone() for n, p in model.named_parameters()}

    ref, ref_grads = run("torch")
    rows = []
    for backend in available_backends(device):
        if backend == "torch":
            continue
        out, grads = run(backend)
        logit_err = (out.logits.float() - ref.logits.float()).abs().max().item()
        grad_err = max(((grads[n] - g).abs().max() / g.abs().max().clamp_min(1e-6)).item()
                       for n, g in ref_grads.items())
        counts_equal = torch.equal(out.expert_counts, ref.expert_counts)
        ok = logit_err < 5e-2 and grad_err < 5e-2 and counts_equal
        rows.append({"backend": backend, "logits_max_abs_err": logit_err, "grad_max_rel_err": grad_err,
                     "counts_equal": counts_equal, "ok": ok})
    return rows


def layers_that_fit(cfg: ModelConfig, batch: int, seq: int, device: torch.device) -> int:
    """Layers of jetmoe-8b width that fit: 16 B/param (fp32 weight + grad + 2 Adam moments) plus a rough
    activation budget per layer (bf16, saved for backward), leaving 10 % headroom."""
    free, _ = torch.cuda.mem_get_info(device)
    per_layer_params = count_params(cfg.replace(n_layers=2))[0] - count_params(cfg.replace(n_layers=1))[0]
    zero_layers = count_params(cfg.replace(n_layers=1))[0] - per_layer_params  # embedding + final norm
    tokens = batch * seq
    # saved activations per token per layer, bytes (bf16): residual/norm inputs, q for k experts, k, v,
    # attention out, expert-sorted copies, MLP hidden (gate, up, act) for k experts
    act_per_token = 2 * (6 * cfg.d_model + 4 * cfg.top_k * cfg.attn_width + 2 * cfg.attn_width
                         + cfg.top_k * 4 * cfg.ffn_hidden + 2 * cfg.top_k * cfg.d_model)
    per_layer = 16 * per_layer_params + act_per_token * tokens
    fixed = 16 * zero_layers + tokens * cfg.vocab_size * 4 * 3  # embedding/head states + fp32 logits and grads
    return max(1, int((0.9 * free - fixed) // per_layer))


def time_training(cfg: ModelConfig, backend: str, batch: int, seq: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = JetMoE(cfg.replace(backend=backend)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]

    cuda = device.type == "cuda"

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = model(x, labels=y)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out

    for _ in range(2):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = step()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    tokens_s = batch * seq / step_s
    result = {"backend": backend, "resolved": model.backends(device), "layers": cfg.n_layers, "step_s": step_s,
              "tokens_per_s": tokens_s, "flops_per_token": flops_per_token(cfg, seq),
              "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan"),
              "loss": out.lm_loss.item()}
    del model, opt
    if cuda:
        torch.cuda.empty_cache()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=0, help="blocks of the jetmoe-8b-shaped model (0 = as many as fit)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--backends", default="", help="comma list (default: every CUDA backend available)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="dense bf16 peak (default: from the device name)")
    ap.add_argument("--check-only", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/gpu_model.py needs a CUDA GPU (torch.cuda.is_available() is False); run it on an H100/H200 "
              "with a CUDA build of torch", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else device_peak(name)
    print(f"device: {name}; torch {torch.__version__}; backends: {', '.join(available_backends(device))}")

    checks = check_backends(device)
    print(f"\nparity vs torch reference (bf16): {'backend':<12} {'logits err':>10} {'grad rel err':>12} counts ok")
    for r in checks:
        print(f"{'':34}{r['backend']:<12} {r['logits_max_abs_err']:>10.2e} {r['grad_max_rel_err']:>12.2e} "
              f"{str(r['counts_equal']):>6} {'OK' if r['ok'] else 'FAIL'}")
    summary: dict = {"bench": "gpu_model", "device": name, "checks_ok": all(r["ok"] for r in checks)}
    if args.check_only:
        print(json.dumps(summary))
        return 0 if summary["checks_ok"] else 1

    base = load_model_config(ROOT / "trainer/configs/model/jetmoe-8b.toml")
    layers = args.layers or min(base.n_layers, layers_that_fit(base, args.batch, args.seq, device))
    backends = args.backends.split(",") if args.backends else [b for b in available_backends(device)]
    results = []
    for backend in backends:
        n = layers
        while True:
            try:
                results.append(time_training(base.replace(n_layers=n), backend, args.batch, args.seq, args.steps, device))
                break
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if n == 1:
                    raise
                n = max(1, n - max(1, n // 4))
                print(f"{backend}: out of memory, retrying with {n} layers", file=sys.stderr)
    print(f"\njetmoe-8b width, batch {args.batch} x {args.seq}, bf16 autocast + fused AdamW, median of {args.steps} steps"
          f"; MFU over {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s dense bf16")
    print(f"{'backend':<12} {'moa/moe':<24} {'layers':>6} {'step s':>8} {'tok/s':>9} {'MFU':>6} {'peak GiB':>9}")
    for r in results:
        r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / peak if peak else None
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"{r['backend']:<12} {r['resolved']['moa'] + '/' + r['resolved']['moe']:<24} {r['layers']:>6} "
              f"{r['step_s']:>8.3f} {r['tokens_per_s']:>9.0f} {mfu:>6} {r['peak_mem_gib']:>9.1f}")
        summary[f"{r['backend']}_tokens_per_s"] = round(r["tokens_per_s"], 1)
        summary[f"{r['backend']}_mfu"] = round(r["mfu"], 4) if r["mfu"] is not None else None
        summary[f"{r['backend']}_peak_mem_gib"] = round(r["peak_mem_gib"], 2)
        summary[f"{r['backend']}_layers"] = r["layers"]
    summary.update({"batch": args.batch, "seq": args.seq})
    print(json.dumps(summary))
    return 0 if summary["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
