"""Core JetMoE model tests: config loading, forward outputs, invariants, aux losses, gradients, weights I/O."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trainer.model import (JetMoE, ModelConfig, load_checkpoint_weights,
                           load_model_config, save_checkpoint_weights)
from trainer.model.moe import MoEMLP, TopKRouter

CONFIG_DIR = Path(__file__).resolve().parents[1] / "trainer" / "configs" / "model"


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                ffn_hidden=48, max_seq_len=32, init_std=0.1, backend="torch")
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_model_config_loads(path):
    cfg = load_model_config(path)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_tiny_config_matches_sample_tokenizer():
    cfg = load_model_config(CONFIG_DIR / "tiny.toml")
    assert cfg.vocab_size == 8192 and cfg.n_experts == 8 and cfg.top_k == 2


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[model]\nd_model = 64\nn_layer = 2\n")
    with pytest.raises(ValueError, match="n_layer"):
        load_model_config(p)
    with pytest.raises(ValueError, match="top_k"):
        ModelConfig(n_experts=2, top_k=3)
    with pytest.raises(ValueError, match="backend"):
        ModelConfig(backend="cuda-magic")


def test_forward_shapes_counts_and_loss():
    torch.manual_seed(0)
    cfg = tiny()
    model = JetMoE(cfg)
    ids = torch.randint(0, cfg.vocab_size, (3, 10))
    labels = torch.randint(0, cfg.vocab_size, (3, 10))
    labels[0, :4] = -100
    out = model(ids, labels=labels, return_logits=True)
    assert out.logits.shape == (3, 10, cfg.vocab_size)
    assert out.expert_counts.shape == (cfg.n_layers, 2, cfg.n_experts)
    assert out.expert_counts.dtype == torch.int64
    assert (out.expert_counts.sum(-1) == 3 * 10 * cfg.top_k).all()
    ref = F.cross_entropy(out.logits.view(-1, cfg.vocab_size), labels.view(-1), ignore_index=-100)
    torch.testing.assert_close(out.lm_loss, ref)
    assert out.load_balance_per_layer.shape == (cfg.n_layers, 2)
    torch.testing.assert_close(out.load_balance_loss, out.load_balance_per_layer.sum())
    torch.testing.assert_close(out.loss, out.lm_loss + 0.01 * out.load_balance_loss + 0.001 * out.z_loss)
    assert model(ids).lm_loss is None
    # with labels and no request for logits: no logits, the same loss (computed chunk by chunk)
    lean = model(ids, labels=labels)
    assert lean.logits is None
    torch.testing.assert_close(lean.lm_loss, ref, rtol=1e-6, atol=1e-6)


def test_causal():
    torch.manual_seed(0)
    cfg = tiny()
    model = JetMoE(cfg)
    ids = torch.randint(0, cfg.vocab_size, (1, 12))
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % cfg.vocab_size
    a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_one_expert_top1_moe_is_dense_swiglu():
    torch.manual_seed(0)
    d, f = 16, 24
    moe = MoEMLP(d, f, n_experts=1, top_k=1, backend="torch")
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 5, d)
    y, routing = moe(x)
    w_gate, w_up = moe.input_linear.weight[0].split(f, dim=0)
    dense = F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), moe.output_linear.weight[0]) + moe.bias
    torch.testing.assert_close(y, dense)
    assert (routing.gates == 1).all()


def test_router_gates_and_aux_losses_by_hand():
    router = TopKRouter(d_model=2, n_experts=3, top_k=2)
    with torch.no_grad():
        router.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 0.5]])
    r = router(x)
    logits = torch.tensor([[2.0, 0.0, 2.0], [0.0, 3.0, 3.0], [1.0, 1.0, 2.0], [-1.0, 0.5, -0.5]])
    torch.testing.assert_close(r.logits, logits)
    # top-2 per token, then softmax over those two logits only
    top = logits.topk(2, dim=-1)
    torch.testing.assert_close(r.gates, torch.softmax(top.values, -1))
    counts = torch.bincount(top.indices.flatten(), minlength=3)
    assert r.counts.tolist() == counts.tolist()
    probs = torch.softmax(logits, -1).mean(0)
    expected_lb = 3 * sum(counts[e].item() / 8 * probs[e].item() for e in range(3))
    assert math.isclose(r.load_balance_loss().item(), expected_lb, rel_tol=1e-6)
    expected_z = sum(math.log(sum(math.exp(v) for v in row)) ** 2 for row in logits.tolist()) / 4
    assert math.isclose(r.z_loss().item(), expected_z, rel_tol=1e-6)


def test_balanced_routing_gives_unit_load_balance():
    router = TopKRouter(d_model=2, n_experts=2, top_k=1)
    with torch.no_grad():
        router.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert math.isclose(router(x).load_balance_loss().item(), 1.0, rel_tol=1e-6)


def test_gradients_reach_routers_experts_and_everything():
    torch.manual_seed(0)
    cfg = tiny()
    model = JetMoE(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    model(ids, labels=ids.roll(-1, 1)).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"
    blk = model.layers[0]
    for p in (blk.attn.router.weight, blk.mlp.router.weight, blk.attn.q_proj.weight, blk.mlp.input_linear.weight):
        assert torch.isfinite(p.grad).all()


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    cfg = tiny(name="t")
    model = JetMoE(cfg)
    save_checkpoint_weights(model, tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["model.safetensors", "model_config.json"]
    assert json.loads((tmp_path / "ck" / "model_config.json").read_text())["d_model"] == 32
    loaded = load_checkpoint_weights(tmp_path / "ck")
    assert loaded.cfg == cfg
    ids = torch.randint(0, cfg.vocab_size, (2, 7))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    first = (tmp_path / "ck" / "model.safetensors").read_bytes()
    save_checkpoint_weights(loaded, tmp_path / "ck2")
    assert (tmp_path / "ck2" / "model.safetensors").read_bytes() == first


def test_load_rejects_mismatched_config(tmp_path):
    torch.manual_seed(0)
    save_checkpoint_weights(JetMoE(tiny()), tmp_path)
    cfg = json.loads((tmp_path / "model_config.json").read_text())
    cfg["ffn_hidden"] = 40
    (tmp_path / "model_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="shape"):
        load_checkpoint_weights(tmp_path)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = JetMoE(tiny())
    torch.manual_seed(3)
    b = JetMoE(tiny())
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_same_inputs_same_gradient_bytes(backend):
    ids = torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(4))
    grads = []
    for _ in range(2):
        torch.manual_seed(9)
        model = JetMoE(tiny(backend=backend))
        model(ids, labels=ids.roll(-1, 1)).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_init_weights_defines_every_parameter():
    """A meta-device model (FSDP2) materialised and re-initialised equals an eager one given the same seed:
    init_weights leaves nothing from the constructors' own init."""
    torch.manual_seed(1)
    eager = JetMoE(tiny())
    with torch.device("meta"):
        lazy = JetMoE(tiny())
    lazy.to_empty(device="cpu")
    for m in (eager, lazy):
        torch.manual_seed(2)
        m.init_weights()
    for (n, a), b in zip(eager.named_parameters(), lazy.parameters()):
        assert torch.equal(a, b), n
