"""GPU parity of the JetMoE expert backends and speed levers against the reference, in bf16.

    python bench/gpu_model.py                  # every row below; about a minute on an H100/H200 (one compile)
    python bench/gpu_model.py --no-compile     # without the torch.compile row

A small JetMoE (8 experts top-2 in MoA and MoE, 2 layers) on CUDA, one forward + backward per row, each
against the reference: the `torch` backend (one F.linear per expert), eager, same weights and tokens.
- bf16 weights: every other CUDA backend (grouped_mm, megablocks where installed).
- fp32 master weights under bf16 autocast (how training runs): grouped_mm; grouped_mm with the weight
  cast cache; grouped_mm compiled per block (`trainer.perf.compile_blocks`) with the cast cache.
Each row prints the kernels it RAN, read back from the expert layers after the forward (`ExpertLinear.ran`;
a compiled row is one whose blocks stayed compiled and recorded nothing eagerly), not the backend it asked
for: a row whose candidate ran the same kernels as the reference fails as "compared with itself".
Checked per row: max |Δ logits| / max |logits|, |Δ lm loss|, the largest per-tensor gradient error relative
to that tensor's largest gradient, the first router's expert counts (identical inputs: must be equal) and
the share of all routing assignments that differ (bf16 rounding in earlier layers can flip near-ties
later). Ends with one JSON line; exit 0 when every row passes, 1 when one fails, 2 without CUDA.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.model import JetMoE, ModelConfig, available_backends  # noqa: E402
from trainer.model.moe import ExpertLinear  # noqa: E402

# bf16 tolerances: relative errors of a few bf16 ulps accumulated over two layers
LOGITS_TOL, GRAD_TOL, LOSS_TOL, FLIPPED_TOL = 5e-2, 5e-2, 2e-2, 0.02


def small_config() -> ModelConfig:
    return ModelConfig(vocab_size=1024, d_model=256, n_layers=2, n_kv_heads=4, head_dim=64, n_experts=8, top_k=2,
                       ffn_hidden=512, max_seq_len=512, init_std=0.02, backend="torch")


def ran_kernels(model: JetMoE) -> dict[str, str]:
    """What the expert layers ran in the last eager forward, per MoA / MoE ("" = nothing recorded)."""
    out = {}
    for part, names in (("moa", ("q_proj", "o_proj")), ("moe", ("input_linear", "output_linear"))):
        seen = set()
        for block in model.blocks():
            owner = block.attn if part == "moa" else block.mlp
            seen |= {getattr(owner, n).ran for n in names}
        out[part] = "+".join(sorted(seen))
    return out


def _reset_ran(model: JetMoE) -> None:
    for m in model.modules():
        if isinstance(m, ExpertLinear):
            m.ran = ""


def run_once(model: JetMoE, ids: torch.Tensor, autocast: bool) -> dict:
    model.zero_grad(set_to_none=True)
    _reset_ran(model)
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(ids[:, :-1], labels=ids[:, 1:], return_logits=True)
    out.loss.backward()
    from trainer.perf.compile import is_compiled

    ran = ran_kernels(model)
    compiled = is_compiled(model) and not any(ran.values())  # compiled code records nothing
    if compiled:
        ran = {k: f"{v} (compiled)" for k, v in model.backends(ids.device).items()}
    return {"logits": out.logits.float().detach(), "lm_loss": out.lm_loss.item(), "compiled": compiled,
            "counts": out.expert_counts.detach().clone(), "ran": ran,
            "grads": {n: p.grad.float().clone() for n, p in model.named_parameters()}}


def compare(name: str, ref: dict, got: dict, expect_compiled: bool = False) -> dict:
    ran = got["ran"]
    logit_err = ((got["logits"] - ref["logits"]).abs().max() / ref["logits"].abs().max()).item()
    grad_err = max(((got["grads"][n] - g).abs().max() / g.abs().max().clamp_min(1e-12)).item()
                   for n, g in ref["grads"].items())
    first_equal = torch.equal(got["counts"][0, 0], ref["counts"][0, 0])
    # counts differ by 2 per flipped assignment (one expert loses it, another gains it)
    flipped = (got["counts"] - ref["counts"]).abs().sum().item() / 2 / ref["counts"].sum().item()
    problems = []
    if ran == ref["ran"]:
        problems.append(f"compared with itself: ran {ran} like the reference")
    if expect_compiled and not got["compiled"]:
        problems.append(f"not compiled: the blocks ran eagerly ({ran})")
    if not logit_err < LOGITS_TOL:
        problems.append(f"logits err {logit_err:.2e} >= {LOGITS_TOL}")
    if not grad_err < GRAD_TOL:
        problems.append(f"grad err {grad_err:.2e} >= {GRAD_TOL}")
    if not abs(got["lm_loss"] - ref["lm_loss"]) < LOSS_TOL:
        problems.append(f"loss differs by {abs(got['lm_loss'] - ref['lm_loss']):.2e}")
    if not first_equal:
        problems.append("first router's counts differ (its input is identical)")
    if not flipped <= FLIPPED_TOL:
        problems.append(f"{flipped:.1%} of the routing assignments differ")
    return {"row": name, "ran": ran, "reference_ran": ref["ran"], "logits_rel_err": logit_err,
            "loss_abs_err": abs(got["lm_loss"] - ref["lm_loss"]), "grad_rel_err": grad_err,
            "first_router_counts_equal": first_equal, "assignments_flipped": flipped, "ok": not problems,
            "problems": problems}


def check_backends(device: torch.device, compile_rows: bool = True, compile_backend: str = "inductor",
                   cfg: ModelConfig | None = None, shape: tuple[int, int] = (4, 256)) -> list[dict]:
    """All parity rows (see the module docstring) on `shape` = (batch, seq) tokens; runs on CPU too."""
    from trainer.perf import compile_blocks, uncompile_blocks

    cfg = cfg or small_config()
    torch.manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (shape[0], shape[1] + 1), device=device)
    rows = []
    # bf16 weights: each backend against the torch backend
    model = JetMoE(cfg).to(device=device, dtype=torch.bfloat16)
    ref = run_once(model, ids, autocast=False)
    for backend in available_backends(device):
        if backend != "torch":
            model.set_backend(backend)
            rows.append(compare(f"{backend}, bf16 weights", ref, run_once(model, ids, autocast=False)))
            model.set_backend("torch")
    # fp32 master weights + bf16 autocast: the training setting, with the speed levers
    if "grouped_mm" in available_backends(device):
        torch.manual_seed(0)
        model = JetMoE(cfg).to(device)
        ref = run_once(model, ids, autocast=True)
        model.set_backend("grouped_mm")
        rows.append(compare("grouped_mm, autocast", ref, run_once(model, ids, autocast=True)))
        model.cache_weight_casts(torch.bfloat16)
        run_once(model, ids, autocast=True)  # the first forward casts, the second reuses the copies
        rows.append(compare("grouped_mm, autocast, cast cache (reused)", ref, run_once(model, ids, autocast=True)))
        if compile_rows:
            compile_blocks(model, backend=compile_backend)
            run_once(model, ids, autocast=True)  # compiles
            rows.append(compare("grouped_mm, autocast, cast cache, compiled", ref, run_once(model, ids, autocast=True),
                                expect_compiled=True))
            uncompile_blocks(model)
        model.cache_weight_casts(None)
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'row':<44} {'ran (moa / moe)':<34} {'logits':>8} {'loss':>8} {'grads':>8} {'flipped':>8}  verdict",
             f"{'reference':<44} {rows[0]['reference_ran']['moa'] + ' / ' + rows[0]['reference_ran']['moe'] if rows else '':<34}"]
    for r in rows:
        lines.append(f"{r['row']:<44} {r['ran']['moa'] + ' / ' + r['ran']['moe']:<34} {r['logits_rel_err']:>8.1e} "
                     f"{r['loss_abs_err']:>8.1e} {r['grad_rel_err']:>8.1e} {r['assignments_flipped']:>8.2%}  "
                     + ("OK" if r["ok"] else "FAIL: " + "; ".join(r["problems"])))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/gpu_model.py needs a CUDA GPU (torch.cuda.is_available() is False); run it on an H100/H200 "
              "with a CUDA build of torch", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    print(f"device: {name}; torch {torch.__version__}; backends: {', '.join(available_backends(device))}")
    rows = check_backends(device, compile_rows=not args.no_compile)
    print(f"\nparity against the torch backend, eager (errors relative; see the docstring)\n{format_rows(rows)}")
    ok = bool(rows) and all(r["ok"] for r in rows)
    print(json.dumps({"bench": "gpu_model_parity", "device": name, "torch": torch.__version__, "ok": ok,
                      "rows": [{k: v for k, v in r.items() if k != "reference_ran"} for r in rows]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
