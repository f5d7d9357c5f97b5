"""Per-kind expert counts (attn_n_experts/attn_top_k, mlp_n_experts/mlp_top_k): defaults, dense layers, counts,
the padded expert_counts, and the Hugging Face export refusing a model whose MoA and MoE counts differ."""
import pytest
import torch
import torch.nn.functional as F

from trainer.model import JetMoE, ModelConfig, count_params, save_checkpoint_weights
from trainer.model.flops import param_breakdown
from trainer.model.hf import export_main
from trainer.model.jetmoe import MoA, apply_rope, rope_cos_sin


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                ffn_hidden=48, max_seq_len=32, init_std=0.1, backend="torch")
    base.update(kw)
    return ModelConfig(**base)


def test_absent_keys_take_the_shared_counts():
    cfg = tiny()
    assert cfg.experts("attn") == cfg.experts("mlp") == (4, 2) and cfg.same_experts
    mixed = tiny(attn_n_experts=1, attn_top_k=1)
    assert mixed.experts("attn") == (1, 1) and mixed.experts("mlp") == (4, 2) and not mixed.same_experts
    assert mixed.n_q_heads == mixed.n_kv_heads  # dense attention: one head set
    assert ModelConfig.from_dict(mixed.to_dict()) == mixed


@pytest.mark.parametrize("bad, match", [(dict(mlp_n_experts=2, mlp_top_k=3), "mlp_top_k=3 exceeds mlp_n_experts=2"),
                                        (dict(attn_n_experts=1), "attn_top_k=2 exceeds attn_n_experts=1"),
                                        (dict(attn_top_k=0), "attn_top_k must be a positive")])
def test_bad_per_kind_counts_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny(**bad)


def test_one_expert_top1_moa_is_dense_attention():
    torch.manual_seed(0)
    cfg = tiny(n_experts=1, top_k=1, n_kv_heads=3)
    moa = MoA(cfg)
    for p in moa.parameters():
        torch.nn.init.normal_(p, std=0.3)
    b, t, h, hd = 2, 7, cfg.n_kv_heads, cfg.head_dim
    x = torch.randn(b, t, cfg.d_model)
    cos, sin = rope_cos_sin(t, hd, cfg.rope_theta, x.device, x.dtype)
    y, routing = moa(x, cos, sin)
    # textbook multi-head causal attention with W_q, [W_k; W_v], W_o and an output bias
    q = apply_rope(F.linear(x, moa.q_proj.weight[0]).view(b, t, h, hd), cos, sin)
    k, v = F.linear(x, moa.kv_proj.weight).view(b, t, 2, h, hd).unbind(2)
    k = apply_rope(k, cos, sin)
    att = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    dense = F.linear(att.transpose(1, 2).reshape(b, t, h * hd), moa.o_proj.weight[0]) + moa.bias
    torch.testing.assert_close(y, dense)
    assert (routing.gates == 1).all()


def test_mixed_model_builds_per_kind_layers_and_pads_counts():
    torch.manual_seed(0)
    cfg = tiny(attn_n_experts=1, attn_top_k=1, mlp_n_experts=8, mlp_top_k=2)
    model = JetMoE(cfg)
    block = model.layers[0]
    assert block.attn.q_proj.weight.shape[0] == 1 and block.mlp.input_linear.weight.shape[0] == 8
    assert count_params(cfg)[0] == sum(p.numel() for p in model.parameters())
    out = model(torch.randint(0, 64, (2, 5)), labels=torch.randint(0, 64, (2, 5)))
    assert out.expert_counts.shape == (2, 2, 8)
    assert (out.expert_counts[:, 0, 0] == 10).all() and (out.expert_counts[:, 0, 1:] == 0).all()
    assert (out.expert_counts[:, 1].sum(-1) == 20).all()
    out.loss.backward()


def test_active_params_follow_each_kind():
    base = param_breakdown(tiny())
    mixed = param_breakdown(tiny(mlp_n_experts=8, mlp_top_k=1))
    assert mixed["moe experts"]["active"] * 2 == base["moe experts"]["active"]
    assert mixed["moe experts"]["total"] == 2 * base["moe experts"]["total"]
    assert mixed["moa q+o experts"] == base["moa q+o experts"]


def test_export_refuses_different_moa_and_moe_counts(tmp_path, capsys):
    model = JetMoE(tiny(attn_n_experts=1, attn_top_k=1))
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000001"
    save_checkpoint_weights(model, ckpt)
    (ckpt / "tokenizer.json").write_text("{}")
    out = tmp_path / "hf"
    assert export_main([str(ckpt), str(out)]) == 1
    assert "1 attention experts top-1 but 4 MLP experts top-2" in capsys.readouterr().err
    assert not out.exists()


def test_export_error_names_both_counts():
    from trainer.model.hf import to_hf_config
    with pytest.raises(ValueError, match="1 attention experts top-1 but 4 MLP experts top-2.*num_local_experts"):
        to_hf_config(tiny(attn_n_experts=1, attn_top_k=1))
