"""trainer.perf: per-block torch.compile (no graph breaks, no recompiles across optimizer steps, a clean
fallback to eager), the weight-precision plan, and the profile grouping; the trainer's train_step
(trainer.step) accumulating micro-batches as one big batch."""
import types

import pytest
import torch

from trainer.model import JetMoE, ModelConfig
from tests.trainer_kit.steps import one_step
from trainer.perf import apply_weight_precision, compile_blocks, uncompile_blocks, weight_precision_plan
from trainer.perf.compile import is_compiled
from trainer.perf.profile import FAMILIES, family_of, format_groups, group_events


def cfg(**kw):
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                ffn_hidden=48, max_seq_len=64, init_std=0.1, backend="grouped_mm")
    base.update(kw)
    return ModelConfig(**base)


def batches(n=2, seed=0):
    return list(torch.randint(0, 64, (n, 2, 17), generator=torch.Generator().manual_seed(seed)))


def setup(seed=0, **kw):
    torch.manual_seed(seed)
    model = JetMoE(cfg(**kw))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=True)


@pytest.mark.slow
def test_compiled_blocks_match_eager_without_graph_breaks_or_recompiles():
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    eager, opt_e = setup()
    model, opt = setup()
    for m, o in ((eager, opt_e), (model, opt)):
        m.cache_weight_casts(torch.bfloat16, o)   # before compiling: the copies are graph inputs from the start
    data = batches()
    probe = lambda: one_step(model, opt.__class__([torch.zeros(1, requires_grad=True)]), data[:1],  # noqa: E731
                             precision="bf16")
    # aot_eager: dynamo + AOTAutograd (where graph breaks and recompiles come from) without inductor's C++
    # build, which takes minutes on a small CPU; the CUDA tests compile with inductor.
    assert compile_blocks(model, backend="aot_eager", probe=probe)
    assert all(p.grad is None for p in model.parameters())     # the probe's gradients are cleared
    with torch._dynamo.config.patch(error_on_recompile=True):
        grads = []
        for m in (eager, model):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                m(data[0][:, :-1], labels=data[0][:, 1:]).loss.backward()
            grads.append([p.grad for p in m.parameters()])
            m.zero_grad(set_to_none=True)
        for g_eager, g_compiled in zip(*grads):
            assert ((g_compiled - g_eager).abs().max() / g_eager.abs().max()) < 5e-2
        for _ in range(2):                                     # the cast copies are replaced after each step
            a = one_step(eager, opt_e, data, precision="bf16")
            b = one_step(model, opt, data, precision="bf16")
            assert b.loss == pytest.approx(a.loss, rel=2e-2, abs=2e-2)
    assert is_compiled(model)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1             # one graph shared by both blocks
    uncompile_blocks(model)
    assert not is_compiled(model)


def test_compile_failure_falls_back_to_eager_with_one_warning():
    import torch._dynamo

    torch._dynamo.reset()
    model, opt = setup()
    ids = batches()[0]
    ref = model(ids[:, :-1], labels=ids[:, 1:]).loss

    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C compiler here")

    warnings = []
    assert compile_blocks(model, backend=broken_backend, warn=warnings.append) is True  # lazily compiled
    out = model(ids[:, :-1], labels=ids[:, 1:]).loss         # the failing forward finishes eagerly
    assert torch.equal(out, ref)
    assert len(warnings) == 1 and "torch.compile of the blocks failed" in warnings[0] and "running eager" in warnings[0]
    assert not is_compiled(model)
    # with a probe, the failure shows at once and the function says so
    warnings.clear()
    assert compile_blocks(model, backend=broken_backend, warn=warnings.append,
                          probe=lambda: model(ids[:, :-1], labels=ids[:, 1:]).loss.backward()) is False
    assert len(warnings) == 1 and all(p.grad is None for p in model.parameters())


def test_model_errors_are_not_mistaken_for_compile_failures():
    model, _ = setup()
    compile_blocks(model, backend="aot_eager")
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_train_step_accumulation_equals_one_big_batch():
    # load balance is not linear in the batch (f_e * P_e over the batch), so it is left out here
    data = batches(2)
    big = [torch.cat(data)]
    results = []
    for micro in (data, big):
        model, _ = setup(load_balance_coef=0.0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)  # linear in the gradient, unlike Adam near 0
        r = one_step(model, opt, micro, grad_clip=0.5)
        results.append((r, [p.detach().clone() for p in model.parameters()]))
    (ra, pa), (rb, pb) = results
    assert ra.loss == pytest.approx(rb.loss, rel=1e-6, abs=1e-6)
    assert ra.grad_norm == pytest.approx(rb.grad_norm, rel=1e-5, abs=1e-6)
    for a, b in zip(pa, pb):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_weight_precision_plan():
    assert weight_precision_plan("bf16", fsdp=False) == "cast-cache"
    assert weight_precision_plan("bf16", fsdp=True) == "fsdp-mixed"
    assert weight_precision_plan("bf16", fsdp=False, casts="per-step") == "cast-cache"
    assert weight_precision_plan("bf16", fsdp=True, casts="per-forward") == "none"
    assert weight_precision_plan("fp32", fsdp=False) == "none"
    assert weight_precision_plan("fp32", fsdp=True, casts="per-forward") == "none"
    with pytest.raises(ValueError, match="resolve 'auto'"):
        weight_precision_plan("auto", fsdp=False)
    with pytest.raises(ValueError, match="need bf16 training"):
        weight_precision_plan("fp32", fsdp=False, casts="per-step")
    model, opt = setup()
    cache = apply_weight_precision(model, "cast-cache", opt)
    assert model.weight_casts is cache and len(cache.modules) == 11
    assert apply_weight_precision(model, "none") is None and model.weight_casts is None
    with pytest.raises(ValueError, match="needs the optimizer"):
        apply_weight_precision(model, "cast-cache")


# ---- profile grouping

@pytest.mark.parametrize("op,kernel,ancestors,family", [
    ("aten::bmm", "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x1_tn_align2>", (),
     "GEMM"),
    ("aten::mm", "nvjet_tst_128x256_64x4_2x1_v_bz_coopB_NNT", ("aten::linear",), "GEMM"),
    ("aten::_grouped_mm", "void cutlass::device_kernel<...GroupProblemShape...>", (), "grouped GEMM"),
    ("aten::mm", None, ("aten::_grouped_mm",), "grouped GEMM"),           # CPU grouped_mm loops over mm
    ("aten::bmm", None, ("aten::scaled_dot_product_attention",), "attention"),
    ("aten::_flash_attention_backward", "flash_bwd_kernel", (), "attention"),
    ("aten::index_select", "void at::native::indexSelectLargeIndex<...>", (), "permutation"),
    ("aten::index_add_", "indexFuncLargeIndex", (), "permutation"),
    ("aten::sort", "DeviceRadixSortOnesweepKernel", (), "permutation"),
    ("aten::topk", None, (), "permutation"),                             # not "aten::to"
    ("aten::copy_", "void at::native::elementwise_kernel<...copy_kernel...>", ("aten::to", "aten::_to_copy"), "casts"),
    ("aten::copy_", None, ("Optimizer.step#AdamW.step",), "optimizer"),
    ("aten::_fused_adamw_", "fused_adamw_kernel", (), "optimizer"),
    ("aten::_foreach_norm", "multi_tensor_apply_kernel", (), "optimizer"),
    ("Torch-Compiled Region: 0/0", "triton_poi_fused_index_select_mul_0", (), "permutation"),
    ("Torch-Compiled Region: 0/0", "triton_red_fused__to_copy_add_rms_norm_1", (), "other"),
    ("aten::silu", "vectorized_elementwise_kernel", (), "other"),
])
def test_family_of(op, kernel, ancestors, family):
    assert family_of(op, kernel, ancestors) == family


def _event(name, parent=None, kernels=(), self_us=0.0):
    e = types.SimpleNamespace(name=name, cpu_parent=parent, is_async=False, device_type="DeviceType.CPU",
                              kernels=[types.SimpleNamespace(name=k, duration=us) for k, us in kernels],
                              self_cpu_time_total=self_us)
    return e


def test_group_events_counts_each_kernel_once_under_its_launching_op():
    linear = _event("aten::linear")
    mm = _event("aten::mm", linear, kernels=[("nvjet_gemm", 3000.0)])
    opt = _event("Optimizer.step#AdamW.step")
    adam = _event("aten::_fused_adamw_", opt, kernels=[("fused_adamw", 2000.0)])
    copy = _event("aten::copy_", _event("aten::to"), kernels=[("copy_kernel", 1000.0)])
    compiled = _event("Torch-Compiled Region: 0/1", kernels=[("triton_poi_fused_index_select_0", 500.0),
                                                              ("triton_per_fused_mul_sum_1", 250.0)])
    g = group_events([linear, mm, opt, adam, copy, compiled], steps=2)
    assert g.device == "cuda"
    assert g.ms["GEMM"] == 1.5 and g.ms["optimizer"] == 1.0 and g.ms["casts"] == 0.5
    assert g.ms["permutation"] == 0.25 and g.ms["other"] == 0.125
    assert g.total_ms == pytest.approx(3.375)
    assert "GPU kernel time per step: 3.4 ms" in format_groups(g)


def test_group_a_real_cpu_profile_of_a_training_step():
    from torch.profiler import ProfilerActivity, profile

    model, opt = setup()
    data = batches()
    one_step(model, opt, data, precision="bf16")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        one_step(model, opt, data, precision="bf16")
    g = group_events(prof.events(), steps=1)
    assert g.device == "cpu" and set(g.ms) == set(FAMILIES)
    for fam in ("GEMM", "grouped GEMM", "attention", "permutation", "casts", "optimizer"):
        assert g.ms[fam] > 0, (fam, format_groups(g))
    assert g.total_ms == pytest.approx(sum(e.self_cpu_time_total for e in prof.events()) / 1e3, rel=1e-6)
