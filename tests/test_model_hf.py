"""Hugging Face conversion: exported folders load in transformers with equal logits, HF folders import
back with equal logits, on several tiny shapes (experts 4/8, top-k 1/2, odd head counts)."""
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from trainer.model import JetMoE, ModelConfig, load_checkpoint_weights, save_checkpoint_weights  # noqa: E402
from trainer.model.hf import export_main, import_main  # noqa: E402

SHAPES = [
    dict(n_experts=4, top_k=1, n_kv_heads=3, head_dim=8),
    dict(n_experts=8, top_k=2, n_kv_heads=1, head_dim=16),
    dict(n_experts=4, top_k=2, n_kv_heads=3, head_dim=8),
    dict(n_experts=8, top_k=1, n_kv_heads=5, head_dim=4, n_layers=1),
]
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran"]


def cfg(**kw) -> ModelConfig:
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                ffn_hidden=24, max_seq_len=64, rms_norm_eps=1e-5, backend="torch")
    base.update(kw)
    return ModelConfig(**base)


def make_tokenizer(path):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (biases and norm gains too) so a mis-mapped tensor cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if p.ndim == 1 else 0.0))


def hf_model(path):
    m = transformers.JetMoeForCausalLM.from_pretrained(path, dtype=torch.float32)
    return m.eval()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"E{s['n_experts']}k{s['top_k']}h{s['n_kv_heads']}")
def test_export_logits_equal_transformers(tmp_path, shape):
    torch.manual_seed(0)
    model = JetMoE(cfg(**shape)).eval()
    randomize(model, 1)
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "step-00000007"
    save_checkpoint_weights(model, ckpt)
    make_tokenizer(ckpt / "tokenizer.json")
    assert export_main([str(run), str(tmp_path / "hf")]) == 0  # a run folder resolves to its newest step

    hf = hf_model(tmp_path / "hf")
    ids = torch.randint(0, 64, (2, 17))
    with torch.no_grad():
        ours, theirs = model(ids).logits, hf(ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        hf_loss = hf(ids, labels=ids).loss
        our_loss = model(ids[:, :-1], labels=ids[:, 1:]).lm_loss
    torch.testing.assert_close(our_loss, hf_loss, atol=1e-5, rtol=1e-5)

    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok.eos_token == "</s>" and tok.eos_token_id == 2 and tok.bos_token_id == 1 and tok.unk_token_id == 0
    assert tok("the cat sat")["input_ids"][-3:] == [3, 4, 5]


@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: f"E{s['n_experts']}k{s['top_k']}h{s['n_kv_heads']}")
def test_import_from_transformers_folder(tmp_path, shape):
    c = cfg(**shape)
    hf_cfg = transformers.JetMoeConfig(
        vocab_size=c.vocab_size, hidden_size=c.d_model, num_hidden_layers=c.n_layers,
        num_key_value_heads=c.n_kv_heads, kv_channels=c.head_dim, intermediate_size=c.ffn_hidden,
        num_local_experts=c.n_experts, num_experts_per_tok=c.top_k, max_position_embeddings=c.max_seq_len,
        rms_norm_eps=1e-5, rope_theta=5000.0)
    torch.manual_seed(0)
    hf = transformers.JetMoeForCausalLM(hf_cfg).eval()
    randomize(hf, 2)
    hf.save_pretrained(tmp_path / "hf")
    make_tokenizer(tmp_path / "hf" / "tokenizer.json")
    assert import_main([str(tmp_path / "hf"), str(tmp_path / "ck")]) == 0
    ours = load_checkpoint_weights(tmp_path / "ck").eval()
    assert ours.cfg.rope_theta == 5000.0 and len(ours.cfg.tokenizer_sha256) == 64
    ids = torch.randint(0, 64, (2, 19))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(ids).logits, atol=1e-5, rtol=1e-5)

    # and back out again: the round trip keeps every tensor bit for bit
    assert export_main([str(tmp_path / "ck"), str(tmp_path / "hf2")]) == 0
    from safetensors.torch import load_file
    a, b = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "hf2" / "model.safetensors")
    a.pop("lm_head.weight", None)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_export_refuses_non_hf_block_eps(tmp_path, capsys):
    save_checkpoint_weights(JetMoE(cfg(block_norm_eps=1e-5)), tmp_path / "ck")
    make_tokenizer(tmp_path / "ck" / "tokenizer.json")
    assert export_main([str(tmp_path / "ck"), str(tmp_path / "hf")]) == 1
    assert "block_norm_eps" in capsys.readouterr().err


def test_export_errors_name_the_problem(tmp_path, capsys):
    assert export_main([str(tmp_path), str(tmp_path / "hf")]) == 1
    assert "checkpoints/step-*" in capsys.readouterr().err
    save_checkpoint_weights(JetMoE(cfg()), tmp_path / "ck")
    assert export_main([str(tmp_path / "ck"), str(tmp_path / "hf")]) == 1
    assert "--tokenizer" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert import_main([str(tmp_path / "bad"), str(tmp_path / "ck2")]) == 1
    assert "model_type" in capsys.readouterr().err


def test_hf_config_defaults_fill_missing_keys():
    """A config.json that leaves keys out gets JetMoeConfig's defaults, as transformers does: 24 layers
    on the defaults is the published jetmoe-8b shape, and counts the same as our jetmoe-8b.toml."""
    from pathlib import Path

    from trainer.model import count_params, load_model_config
    from trainer.model.hf import from_hf_config

    ours = load_model_config(Path(__file__).resolve().parents[1] / "trainer/configs/model/jetmoe-8b.toml")
    imported = from_hf_config({"model_type": "jetmoe", "num_hidden_layers": 24, "rms_norm_eps": 1e-5})
    assert count_params(imported) == count_params(ours)
    assert imported.replace(name="", init_std=ours.init_std) == ours.replace(name="")
