"""The model's speed paths compute what the plain formulas compute: the token permutations and the
gate-weighted combine (values and gradients, gathers only in backward), the router's offsets, the chunked
loss, and the per-step weight cast cache (bit-identical to casting every time, refreshed after each
optimizer step, including fused AdamW's which does not bump version counters)."""
import pytest
import torch
import torch.nn.functional as F

from trainer.model import JetMoE, ModelConfig
from trainer.model.loss import linear_cross_entropy
from trainer.model.moe import TopKRouter


def cfg(**kw):
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                ffn_hidden=48, max_seq_len=64, init_std=0.1, backend="torch")
    base.update(kw)
    return ModelConfig(**base)


def routing(n=13, d=6, e=4, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    router = TopKRouter(d, e, k).double()
    with torch.no_grad():
        router.weight.copy_(torch.randn(e, d, generator=g, dtype=torch.float64))
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return router(x)


def ops_in_backward(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_router_offsets_and_inverse(k):
    r = routing(n=29, e=5, k=k)
    flat = r.experts.reshape(-1)
    assert r.counts.tolist() == torch.bincount(flat, minlength=5).tolist()
    assert r.ends.dtype == torch.int32 and r.ends.tolist() == torch.cumsum(r.counts, 0).tolist()
    assert torch.equal(r.order[r.inverse], torch.arange(flat.numel()))
    assert torch.equal(flat[r.order], flat[r.order].sort().values)  # expert order
    assert torch.equal(r.token, r.order // k)


def test_permutations_and_combine_equal_plain_formulas_with_gather_only_backwards():
    r = routing(n=11, d=6, e=4, k=2)
    n, k = r.experts.shape
    w = 5
    x = torch.randn(n, w, dtype=torch.float64, requires_grad=True)
    y = torch.randn(n * k, w, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(w, dtype=torch.float64, requires_grad=True)
    gates = r.gates.detach().clone().requires_grad_(True)
    r.gates = gates
    go = torch.randn(n * k, w, dtype=torch.float64)
    gc = torch.randn(n, w, dtype=torch.float64)

    def ours():
        return (r.gather_tokens(x) * go).sum() + (r.combine(y, bias) * gc).sum() + (r.unsort(y) ** 2).sum()

    def plain():  # the formulas the model used before: expand + index_select, unsort + bmm
        xs = x.unsqueeze(1).expand(n, k, w).reshape(n * k, w).index_select(0, r.order)
        inv = torch.empty_like(r.order)
        inv[r.order] = torch.arange(n * k)
        yu = y.index_select(0, inv).view(n, k, w)
        comb = torch.bmm(gates.unsqueeze(1), yu).squeeze(1) + bias
        return (xs * go).sum() + (comb * gc).sum() + (yu ** 2).sum()

    a = torch.autograd.grad(ours(), (x, y, bias, gates))
    b = torch.autograd.grad(plain(), (x, y, bias, gates))
    for ga, gb in zip(a, b):
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours(), plain(), rtol=1e-12, atol=1e-12)
    # backward is gathers only: no index_add_ / scatter-add (atomic, nondeterministic on CUDA)
    names = ops_in_backward(lambda: ours().backward())
    assert "aten::index_select" in names
    assert not {"aten::index_add_", "aten::scatter_add_", "aten::index_put_"} & names, names


def test_head_permutation_is_the_attention_layout_and_its_inverse():
    r = routing(n=6, e=4, k=2)        # 6 tokens = batch 2 x seq 3
    n, k = r.experts.shape
    h, hd = 3, 2
    q_sorted = torch.randn(n * k, h * hd, dtype=torch.float64)
    to_attn, to_sorted = r.head_permutation(h)
    ours = q_sorted.view(-1, hd)[to_attn].view(2, 3, h * k, hd)
    # plain: unsort to [token, choice, head, hd], then lay out (kv head, choice) kv-head-major per token
    plain = r.unsort(q_sorted).view(2, 3, k, h, hd).permute(0, 1, 3, 2, 4).reshape(2, 3, h * k, hd)
    assert torch.equal(ours, plain)
    assert torch.equal(to_attn[to_sorted], torch.arange(n * k * h))
    assert torch.equal(ours.reshape(-1, hd)[to_sorted].view(n * k, h * hd), q_sorted)


@pytest.mark.parametrize("chunk", [None, 3])
def test_linear_cross_entropy_equals_reference_fp32(chunk):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(10, 16, generator=g, requires_grad=True)
    w = torch.randn(40, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 40, (10,), generator=g)
    labels[[1, 7]] = -100
    ref = F.cross_entropy(F.linear(h, w).float(), labels, ignore_index=-100)
    got = linear_cross_entropy(h, w, labels, chunk_rows=chunk)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(torch.autograd.grad(3.0 * got, (h, w)), torch.autograd.grad(3.0 * ref, (h, w))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # no gradient work under no_grad, same value
        torch.testing.assert_close(linear_cross_entropy(h, w, labels, chunk_rows=chunk), ref, rtol=1e-6, atol=1e-6)
    everything_ignored = torch.full_like(labels, -100)
    assert linear_cross_entropy(h, w, everything_ignored).isnan() and \
        F.cross_entropy(F.linear(h, w), everything_ignored).isnan()


def test_linear_cross_entropy_does_gradient_work_only_when_a_gradient_can_be_taken():
    # the gradient rows are formed in the forward; validation (no_grad) must not pay for them
    from torch.utils.flop_counter import FlopCounterMode

    g = torch.Generator().manual_seed(2)
    h = torch.randn(10, 16, generator=g, requires_grad=True)
    w = torch.randn(40, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 40, (10,), generator=g)
    logits_flops = 2 * 10 * 16 * 40

    def flops(**kw):
        with FlopCounterMode(display=False) as counter:
            linear_cross_entropy(h, w, labels, chunk_rows=3, **kw)
        return counter.get_total_flops()

    assert flops() == 3 * logits_flops                 # logits, and the rows of d/dh and d/dw
    with torch.no_grad():
        assert flops() == logits_flops
    with torch.inference_mode():
        assert flops() == logits_flops
    h.requires_grad_(False)
    assert flops() == 2 * logits_flops                 # d/dw only
    h.requires_grad_(True)


def test_linear_cross_entropy_bf16_autocast_within_bf16_rounding():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(24, 32, generator=g, requires_grad=True)
    w = (0.2 * torch.randn(50, 32, generator=g)).requires_grad_(True)
    labels = torch.randint(0, 50, (24,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.cross_entropy(F.linear(h, w).float(), labels)
        got = linear_cross_entropy(h, w, labels, chunk_rows=5)
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3)
    for a, b in zip(torch.autograd.grad(got, (h, w)), torch.autograd.grad(ref, (h, w))):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)


def test_model_loss_without_logits_equals_loss_of_logits():
    torch.manual_seed(0)
    model = JetMoE(cfg())
    ids = torch.randint(0, 64, (2, 17))
    lean = model(ids[:, :-1], labels=ids[:, 1:])
    full = model(ids[:, :-1], labels=ids[:, 1:], return_logits=True)
    assert lean.logits is None and full.logits.shape == (2, 16, 64)
    torch.testing.assert_close(lean.lm_loss, full.lm_loss, rtol=1e-6, atol=1e-6)
    ga = torch.autograd.grad(lean.loss, list(model.parameters()))
    gb = torch.autograd.grad(full.loss, list(model.parameters()))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _steps(model, opt, batches, n_steps=2):
    """n_steps optimizer steps, 2 micro-batches each, bf16 autocast; losses and the grads of the last step."""
    losses = []
    for s in range(n_steps):
        for ids in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
            (loss / len(batches)).backward()
            losses.append(loss.detach())
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        opt.zero_grad(set_to_none=True)
    return losses, grads


@pytest.mark.parametrize("backend", ["torch", "grouped_mm"])
@pytest.mark.parametrize("optim", [dict(fused=True), dict(foreach=True)])
def test_cast_cache_is_bit_identical_and_refreshes_after_each_step(backend, optim):
    ids = torch.randint(0, 64, (2, 2, 17), generator=torch.Generator().manual_seed(5))
    runs = []
    for cached in (False, True):
        torch.manual_seed(0)
        model = JetMoE(cfg(backend=backend))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, **optim)
        if cached:
            cache = model.cache_weight_casts(torch.bfloat16, opt)
        runs.append(_steps(model, opt, ids, n_steps=3))
    (la, ga), (lb, gb) = runs
    assert all(torch.equal(a, b) for a, b in zip(la, lb)), (la, lb)
    assert all(torch.equal(a, b) for a, b in zip(ga, gb))
    # stale copies after the last step: the next forward re-casts every one of them, the one after none
    n_weights = 1 + 5 * 2  # embedding/head + (q, o, kv, in, out) per layer
    assert cache.refresh() == n_weights and cache.refresh() == 0
    assert all(torch.equal(m.weight_lp, m.weight.to(torch.bfloat16)) for m in cache.modules)


def test_cast_cache_follows_loads_and_grad_mode():
    torch.manual_seed(0)
    model = JetMoE(cfg())
    cache = model.cache_weight_casts(torch.bfloat16)
    ids = torch.randint(0, 64, (1, 9))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(ids)
        assert cache.refresh() == 0
    # copies made under no_grad cannot carry gradients: a training forward re-casts them
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(ids[:, :-1], labels=ids[:, 1:]).loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    other = JetMoE(cfg())
    model.load_state_dict(other.state_dict())           # in-place copies bump the version counters
    assert cache.refresh() == len(cache.modules)
    assert torch.equal(model.embed.weight_lp, other.embed.weight.to(torch.bfloat16))
    model.cache_weight_casts(None)
    assert model.embed.weight_lp is None and model.weight_casts is None
