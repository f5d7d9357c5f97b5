"""CUDA: the bf16 backends and speed levers agree with the reference within bf16 tolerance (grouped_mm,
megablocks where installed, the weight cast cache, per-block torch.compile with inductor), the cast cache
is bit-identical under fused CUDA AdamW, the chunked loss matches, and the compiled grouped path neither
breaks its graph nor recompiles across optimizer steps. Skipped without CUDA (bench/gpu_check.sh runs them)."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trainer.model import JetMoE, ModelConfig
from trainer.model.loss import linear_cross_entropy
from tests.trainer_kit.steps import one_step
from trainer.perf import compile_blocks

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
ROOT = Path(__file__).resolve().parents[1]


def cfg(**kw):
    base = dict(vocab_size=512, d_model=128, n_layers=2, n_kv_heads=2, head_dim=32, n_experts=8, top_k=2,
                ffn_hidden=256, max_seq_len=256, init_std=0.02, backend="grouped_mm")
    base.update(kw)
    return ModelConfig(**base)


def test_parity_rows_of_every_backend_and_lever():
    spec = importlib.util.spec_from_file_location("gpu_model_bench_t", ROOT / "bench" / "gpu_model.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    rows = bench.check_backends(torch.device("cuda"))
    print(bench.format_rows(rows))
    assert any(r["row"].startswith("grouped_mm, bf16") for r in rows)
    assert any(r["row"].endswith("compiled") for r in rows)
    assert all(r["ok"] for r in rows), bench.format_rows(rows)


def test_cast_cache_bit_identical_with_fused_cuda_adamw():
    ids = torch.randint(0, 512, (2, 2, 129), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    runs = []
    for cached in (False, True):
        torch.manual_seed(0)
        model = JetMoE(cfg()).cuda()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        if cached:
            model.cache_weight_casts(torch.bfloat16, opt)
        losses = [one_step(model, opt, list(ids), precision="bf16").loss for _ in range(3)]
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    (la, pa), (lb, pb) = runs
    assert la == lb
    assert all(torch.equal(a, b) for a, b in zip(pa, pb))


def test_chunked_loss_bf16_cuda():
    g = torch.Generator("cuda").manual_seed(0)
    h = torch.randn(4096, 256, device="cuda", generator=g, requires_grad=True)
    w = (0.05 * torch.randn(8192, 256, device="cuda", generator=g)).requires_grad_(True)
    labels = torch.randint(0, 8192, (4096,), device="cuda", generator=g)
    labels[::7] = -100
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref = F.cross_entropy(F.linear(h, w).float(), labels)
        got = linear_cross_entropy(h, w, labels, chunk_rows=1000)
    torch.testing.assert_close(got, ref, rtol=2e-3, atol=2e-3)
    for a, b in zip(torch.autograd.grad(got, (h, w)), torch.autograd.grad(ref, (h, w))):
        assert ((a - b).abs().max() / b.abs().max()) < 2e-2


def test_compiled_grouped_path_has_no_graph_breaks_nor_recompiles():
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = JetMoE(cfg()).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    model.cache_weight_casts(torch.bfloat16, opt)
    data = list(torch.randint(0, 512, (2, 2, 129), device="cuda"))
    assert compile_blocks(model, probe=lambda: one_step(model, opt, data, precision="bf16"))
    with torch._dynamo.config.patch(error_on_recompile=True):
        losses = [one_step(model, opt, data, precision="bf16").loss for _ in range(3)]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]
    assert not counters["graph_break"], dict(counters["graph_break"])
