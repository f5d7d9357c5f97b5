"""`python -m trainer score`: per-document NLL equals transformers' loss on the same tokens."""
import json

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from trainer.model import JetMoE, ModelConfig, save_checkpoint_weights  # noqa: E402
from trainer.model.hf import export_main  # noqa: E402
from trainer.model.score import main as score_main  # noqa: E402

from .test_model_hf import make_tokenizer, randomize  # noqa: E402

DOCS = [[5, 9, 3, 3, 7, 1, 2], [4, 4], [10, 3, 8, 6, 2, 5, 9, 9, 9, 1, 0, 7, 3]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("score")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=3, head_dim=8, n_experts=4, top_k=2,
                      ffn_hidden=24, max_seq_len=16, backend="torch")
    model = JetMoE(cfg).eval()
    randomize(model, 5)
    save_checkpoint_weights(model, tmp / "ck")
    make_tokenizer(tmp / "ck" / "tokenizer.json")
    assert export_main([str(tmp / "ck"), str(tmp / "hf")]) == 0
    return tmp, model


def _score(capsys, *args):
    assert score_main([*map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_token_ids_score_equals_transformers_loss(exported, capsys):
    tmp, _ = exported
    (tmp / "ids.txt").write_text("\n".join(" ".join(map(str, d)) for d in DOCS) + "\n\n")
    ours = _score(capsys, tmp / "ck", tmp / "ids.txt", "--token-ids")
    hf_folder = _score(capsys, tmp / "hf", tmp / "ids.txt", "--token-ids", "--batch-size", "1")
    hf = transformers.JetMoeForCausalLM.from_pretrained(tmp / "hf", dtype=torch.float32).eval()
    for doc, row, row_hf in zip(DOCS, ours["documents"], hf_folder["documents"]):
        ids = torch.tensor([doc])
        with torch.no_grad():
            loss = hf(ids, labels=ids).loss.item()
        assert row["n_predicted"] == len(doc) - 1
        assert row["nll"] == pytest.approx(loss, abs=1e-5)
        assert row_hf["nll"] == pytest.approx(loss, abs=1e-5)
    n = sum(len(d) - 1 for d in DOCS)
    weighted = sum(r["nll"] * r["n_predicted"] for r in ours["documents"]) / n
    assert ours["total"]["nll"] == pytest.approx(weighted, rel=1e-9)


def test_long_documents_are_scored_in_windows(exported, capsys):
    tmp, model = exported
    doc = [(7 * i + 3) % 64 for i in range(40)]  # max_seq_len 16 -> windows of 16 predictions
    (tmp / "long.txt").write_text(" ".join(map(str, doc)) + "\n")
    row = _score(capsys, tmp / "ck", tmp / "long.txt", "--token-ids")["documents"][0]
    total = 0.0
    with torch.no_grad():
        for s in range(0, 39, 16):
            chunk = torch.tensor([doc[s:s + 17]])
            logits = model(chunk[:, :-1]).logits
            total += F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item()
    assert row["nll"] == pytest.approx(total / 39, abs=1e-5)


def test_text_is_framed_with_eos(exported, capsys):
    tmp, model = exported
    (tmp / "doc.txt").write_text("the cat sat\non a mat\n\n\nthe dog ran\n")
    out = _score(capsys, tmp / "ck", tmp / "doc.txt")
    assert [d["line"] for d in out["documents"]] == [1, 5]
    first = [2, 3, 4, 5, 6, 8, 7, 2]  # EOS + "the cat sat\non a mat" + EOS
    ids = torch.tensor([first])
    with torch.no_grad():
        ref = F.cross_entropy(model(ids[:, :-1]).logits[0], ids[0, 1:]).item()
    assert out["documents"][0]["nll"] == pytest.approx(ref, abs=1e-5)
    bare = _score(capsys, tmp / "ck", tmp / "doc.txt", "--no-boundary")
    assert bare["documents"][0]["n_tokens"] == 6


def test_bad_token_ids_name_the_line(exported, capsys):
    tmp, _ = exported
    (tmp / "bad.txt").write_text("1 2 3\n4 five 6\n")
    assert score_main([str(tmp / "ck"), str(tmp / "bad.txt"), "--token-ids"]) == 1
    assert "bad.txt:2" in capsys.readouterr().err
    (tmp / "big.txt").write_text("1 2 300\n")
    assert score_main([str(tmp / "ck"), str(tmp / "big.txt"), "--token-ids"]) == 1
    assert "vocab_size=64" in capsys.readouterr().err


def test_table_output(exported, capsys):
    tmp, _ = exported
    (tmp / "ids2.txt").write_text("1 2 3\n")
    assert score_main([str(tmp / "ck"), str(tmp / "ids2.txt"), "--token-ids"]) == 0
    out = capsys.readouterr().out
    assert "nll" in out and "ppl" in out and out.strip().splitlines()[-1].startswith("  all")
