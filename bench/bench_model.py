"""Forward+backward step time of our JetMoE vs transformers' JetMoeForCausalLM, same config and weights.

    python bench/bench_model.py            # quick: tiny + mid configs, batch 2 x 256 tokens, CPU fp32
    python bench/bench_model.py --full     # batch 4 x 512 and more repetitions
    python bench/bench_model.py --threads 0   # torch's default thread count (default: 1 thread)

Both models get the same weights (ours converted with trainer.model.hf) and the same token batch; the
logits are checked equal before timing. Each timed step is zero_grad + forward + cross-entropy + backward.
Rounds interleave the contenders (HF, torch, grouped_mm, ...) so a noisy shared machine slows them alike;
the figure per contender is its fastest step (the least disturbed by other processes; the median is
printed beside it). Prints a table, then one JSON line.
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
from trainer.model import JetMoE, ModelConfig, available_backends, load_model_config  # noqa: E402
from trainer.model.hf import to_hf_config, to_hf_state_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def configs() -> dict[str, ModelConfig]:
    tiny = load_model_config(ROOT / "trainer/configs/model/tiny.toml")
    mid = tiny.replace(name="mid", d_model=512, n_layers=4, n_kv_heads=8, head_dim=64, ffn_hidden=1024,
                       max_seq_len=1024)
    return {"tiny": tiny, "mid": mid}


def hf_config(cfg: ModelConfig, **overrides):
    """transformers' JetMoeConfig of the same architecture."""
    import transformers

    hc = to_hf_config(cfg)
    for k in ("architectures", "model_type", "torch_dtype", "rope_parameters"):
        hc.pop(k)
    return transformers.JetMoeConfig(**{**hc, **overrides})


def hf_twin(model: JetMoE):
    import transformers

    hf = transformers.JetMoeForCausalLM(hf_config(model.cfg))
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model.state_dict()), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"weight transfer failed: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf


def bench_config(name: str, cfg: ModelConfig, batch: int, seq: int, rounds: int) -> dict:
    torch.manual_seed(0)
    ours = JetMoE(cfg.replace(backend="torch"))
    hf = hf_twin(ours)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1), generator=torch.Generator().manual_seed(1))
    x, y = ids[:, :-1], ids[:, 1:]
    with torch.no_grad():
        diff = (ours(x).logits - hf(x).logits).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f"{name}: logits differ from transformers by {diff}; the comparison would be unfair")

    def step_hf():
        hf.zero_grad(set_to_none=True)
        # HF shifts labels inside, so pass the inputs as labels: same tokens forwarded, same loss shape
        hf(x, labels=x).loss.backward()

    def make_ours(backend):
        def step():
            ours.set_backend(backend)
            ours.zero_grad(set_to_none=True)
            ours(x, labels=y).loss.backward()
        return step

    contenders = {"transformers": step_hf}
    for b in available_backends("cpu"):
        contenders[f"ours/{b}"] = make_ours(b)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():  # warm-up: allocator, thread pools, lazy inits
        fn()
    for _ in range(rounds):
        for k, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"config": name, "batch": batch, "seq": seq, "params": sum(p.numel() for p in ours.parameters()),
            "logits_max_diff": diff, "step_s": best, "median_s": med,
            "speedup": {k: best["transformers"] / v for k, v in best.items() if k != "transformers"}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="batch 4 x 512 tokens, 7 rounds")
    ap.add_argument("--quick", action="store_true", help="the default size (batch 2 x 256, 5 rounds)")
    # One thread by default: on a small shared machine, multi-threaded timings swing with the neighbours' load.
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--configs", default="tiny,mid")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    batch, seq, rounds = (4, 512, 7) if args.full else (2, 256, 5)
    results = []
    for name in args.configs.split(","):
        r = bench_config(name, configs()[name], batch, seq, rounds)
        results.append(r)
    print(f"\nJetMoE fwd+bwd step, CPU fp32, {torch.get_num_threads()} threads, batch {batch} x {seq} tokens, "
          f"best of {rounds} interleaved rounds")
    print(f"{'config':<6} {'params':>11} {'contender':<18} {'best s':>8} {'median s':>9} {'tok/s':>9} {'vs HF':>7}")
    for r in results:
        for k, v in r["step_s"].items():
            sp = r["speedup"].get(k)
            print(f"{r['config']:<6} {r['params']:>11,} {k:<18} {v:>8.3f} {r['median_s'][k]:>9.3f} "
                  f"{batch * seq / v:>9.0f} {(f'{sp:.2f}x' if sp else '1.00x'):>7}")
    summary = {"bench": "model_cpu_fwd_bwd", "threads": torch.get_num_threads(), "batch": batch, "seq": seq}
    for r in results:
        for k, v in r["step_s"].items():
            summary[f"{r['config']}_{k.replace('ours/', '')}_step_s"] = round(v, 4)
        for k, v in r["speedup"].items():
            summary[f"{r['config']}_{k.replace('ours/', '')}_speedup_vs_hf"] = round(v, 3)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
