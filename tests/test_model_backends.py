"""Every expert backend this machine has gives the reference (`torch`) backend's outputs and gradients."""
import pytest
import torch

from trainer.model import JetMoE, ModelConfig, available_backends
from trainer.model.moe import resolve_backend

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def cfg(**kw):
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                ffn_hidden=48, max_seq_len=32, init_std=0.1, backend="torch")
    base.update(kw)
    return ModelConfig(**base)


def _run(model, ids):
    model.zero_grad(set_to_none=True)
    out = model(ids, labels=ids.roll(-1, 1), return_logits=True)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [dict(), dict(n_experts=8, top_k=1), dict(n_experts=3, top_k=3, n_kv_heads=1, head_dim=16)])
def test_backends_match_reference(device, shape):
    torch.manual_seed(0)
    model = JetMoE(cfg(**shape)).to(device)
    ids = torch.randint(0, 64, (2, 16), device=device)
    ref_out, ref_grads = _run(model, ids)
    others = [b for b in available_backends(device) if b != "torch"]
    if not others:
        pytest.skip(f"only the reference backend exists on {device}")
    for backend in others:
        model.set_backend(backend)
        out, grads = _run(model, ids)
        torch.testing.assert_close(out.logits, ref_out.logits, atol=1e-5, rtol=1e-5, msg=backend)
        assert torch.equal(out.expert_counts, ref_out.expert_counts)
        for n, g in grads.items():
            torch.testing.assert_close(g, ref_grads[n], atol=1e-5, rtol=1e-4, msg=f"{backend} grad {n}")
        model.set_backend("torch")


def test_auto_and_forced_backends():
    assert resolve_backend("torch", torch.device("cpu"), (32, 48), mlp=True) == "torch"
    auto = resolve_backend("auto", torch.device("cpu"), (32, 48), mlp=True)
    assert auto in available_backends("cpu")
    # unaligned widths cannot use grouped_mm: auto falls back, forcing it is a clear error
    assert resolve_backend("auto", torch.device("cpu"), (30, 48), mlp=True) == "torch"
    if "grouped_mm" in available_backends("cpu"):
        with pytest.raises(RuntimeError, match="multiple of 8"):
            resolve_backend("grouped_mm", torch.device("cpu"), (30, 48), mlp=True)
    if "megablocks" not in available_backends("cpu"):
        with pytest.raises(RuntimeError, match="not available"):
            resolve_backend("megablocks", torch.device("cpu"), (32, 48), mlp=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_backends_match_bf16_reference():
    torch.manual_seed(0)
    model = JetMoE(cfg(d_model=64, ffn_hidden=128, head_dim=16)).cuda().to(torch.bfloat16)
    ids = torch.randint(0, 64, (2, 32), device="cuda")
    ref = model(ids).logits.float()
    for backend in available_backends("cuda"):
        model.set_backend(backend)
        out = model(ids).logits.float()
        torch.testing.assert_close(out, ref, atol=3e-2, rtol=3e-2, msg=backend)


def test_bf16_autocast_keeps_router_fp32_and_backends_agree():
    torch.manual_seed(0)
    model = JetMoE(cfg())
    ids = torch.randint(0, 64, (2, 16))
    outs = {}
    for backend in available_backends("cpu"):
        model.set_backend(backend)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            r = model.layers[0].mlp.router(torch.randn(5, 32))
            assert r.logits.dtype == torch.float32
            outs[backend] = model(ids).logits.float()
    for backend, logits in outs.items():
        torch.testing.assert_close(logits, outs["torch"], atol=2e-2, rtol=2e-2, msg=backend)


def test_unsupported_dtype_falls_back_to_reference():
    torch.manual_seed(0)
    model = JetMoE(cfg(backend="auto")).double()
    ids = torch.randint(0, 64, (1, 8))
    ref = JetMoE(cfg()).double()
    ref.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(ids).logits, ref(ids).logits)


def _gpu_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "gpu_model.py"
    spec = importlib.util.spec_from_file_location("gpu_model_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_gpu_bench_fails_clearly_without_cuda(capsys):
    assert _gpu_bench().main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_bench_parity_harness_runs_on_cpu():
    bench = _gpu_bench()
    small = bench.small_config().replace(vocab_size=256, d_model=64, n_kv_heads=2, head_dim=16, ffn_hidden=96)
    rows = bench.check_backends(torch.device("cpu"), compile_backend="aot_eager", cfg=small, shape=(2, 48))
    names = [r["row"] for r in rows]
    assert names == [f"{b}, bf16 weights" for b in available_backends("cpu") if b != "torch"] + [
        "grouped_mm, autocast", "grouped_mm, autocast, cast cache (reused)",
        "grouped_mm, autocast, cast cache, compiled"]
    assert all(r["ok"] for r in rows), bench.format_rows(rows)
    # each row names what it ran, and it is never what the reference ran
    assert rows[0]["reference_ran"] == {"moa": "torch", "moe": "torch"}
    assert rows[0]["ran"] == {"moa": "grouped_mm", "moe": "grouped_mm"}
    assert rows[-1]["ran"] == {"moa": "grouped_mm (compiled)", "moe": "grouped_mm (compiled)"}


def test_gpu_bench_refuses_to_compare_a_backend_with_itself():
    bench = _gpu_bench()
    torch.manual_seed(0)
    model = JetMoE(cfg())
    ids = torch.randint(0, 64, (2, 17))
    ref = bench.run_once(model, ids, autocast=False)
    again = bench.run_once(model, ids, autocast=False)
    row = bench.compare("torch again", ref, again)
    assert row["logits_rel_err"] == 0.0 and not row["ok"]
    assert "compared with itself" in row["problems"][0]
