"""`python -m trainer report`: PNGs from a run's metrics.jsonl and a corpus manifest; corpus numbers right."""
import json

import matplotlib.image as mpimg
import pytest

from trainer.report import corpus_table, expert_shares, main


def _metrics(run):
    run.mkdir(parents=True)
    lines = [{"kind": "event", "step": 0, "phase": 1, "event": "phase_start", "shares": {"web": 0.75, "code": 0.25}}]
    for step in range(1, 31):
        phase = 1 if step <= 20 else 2
        src = {"web": 96, "code": 32} if phase == 1 else {"web": 32, "code": 32, "math": 64}
        lines.append({"kind": "train", "step": step, "phase": phase, "loss": 6 - step / 30, "lm_loss": 6 - step / 30,
                      "lr": 1e-3, "source_tokens": src,
                      "expert_tokens": {"attn": [[step, 2, 3, 4], [1, 1, 1, 1]], "mlp": [[4, 3, 2, 1], [2, 2, 2, 2]]}})
        if step % 10 == 0:
            lines.append({"kind": "val", "step": step, "phase": phase, "loss": {"web": 6 - step / 40}, "mean": 6})
        if step == 20:
            lines.append({"kind": "event", "step": 20, "phase": 2, "event": "phase_start",
                          "shares": {"web": 0.25, "code": 0.25, "math": 0.5}})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _manifest(corpus):
    corpus.mkdir(parents=True)
    acc = [{"stage": "format", "docs_in": 100, "docs_out": 95, "dropped": {}, "rejected": {"invalid_json": 5}},
           {"stage": "filter", "docs_in": 95, "docs_out": 80, "dropped": {"gopher_short_doc": 15}, "rejected": {}},
           {"stage": "dedup", "docs_in": 80, "docs_out": 60, "dropped": {"exact_dup": 12, "minhash_dup": 8},
            "rejected": {}},
           {"stage": "tokenize", "docs_in": 60, "docs_out": 60, "dropped": {}, "rejected": {}}]
    m = {"corpus": "t", "sources": {
        "web": {"splits": {"train": {"n_tokens": 5000, "n_docs": 55}, "val": {"n_tokens": 400, "n_docs": 5}},
                "accounting": acc},
        "code": {"splits": {"train": {"n_tokens": 900, "n_docs": 9}, "val": {"n_tokens": 100, "n_docs": 1}},
                 "accounting": [{"stage": "format", "docs_in": 10, "docs_out": 10, "dropped": {}, "rejected": {}}]}}}
    (corpus / "manifest.json").write_text(json.dumps(m))
    return m


def test_corpus_numbers():
    import pathlib, tempfile
    with tempfile.TemporaryDirectory() as d:
        rows = {r["source"]: r for r in corpus_table(_manifest(pathlib.Path(d) / "c"))}
    web = rows["web"]
    assert web["dedup"] == 20 and web["dedup_in"] == 80 and web["dedup_rate"] == pytest.approx(0.25)
    assert web["reasons"] == {"gopher_short_doc": 15, "rejected: invalid_json": 5}
    assert web["docs_in"] == 100 and web["train_tokens"] == 5000
    assert rows["code"]["dedup_rate"] == 0.0 and rows["code"]["reasons"] == {}


def test_expert_shares_sum_to_one_per_layer(tmp_path):
    _metrics(tmp_path / "run")
    from trainer.report import load_run
    train, _, _ = load_run(tmp_path / "run")
    shares, steps = expert_shares(train, "attn", bins=10)
    assert shares.shape == (2 * 4, 10) and steps[-1] == 30
    assert shares.reshape(2, 4, 10).sum(1) == pytest.approx(1.0)
    assert shares[1, :].max() < shares[0, -1]  # layer 0's expert 0 takes over as step grows in this fake run


def test_report_writes_every_png(tmp_path, capsys):
    _metrics(tmp_path / "run")
    _manifest(tmp_path / "corpus")
    out = tmp_path / "out"
    assert main(["--run", str(tmp_path / "run"), "--corpus", str(tmp_path / "corpus"), "--out", str(out)]) == 0
    names = ["loss", "lr", "expert_load", "mixture", "corpus_tokens", "corpus_drops", "corpus_dedup"]
    for n in names:
        img = mpimg.imread(out / f"{n}.png")
        assert img.shape[0] > 200 and img.shape[1] > 400, n
        assert img.std() > 0.01, n                       # not a blank canvas
    printed = capsys.readouterr().out
    assert all(f"{n}.png" in printed for n in names)
    assert not list(out.glob(".*.tmp"))


def test_report_errors_name_the_missing_file(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "metrics.jsonl" in capsys.readouterr().err
    assert main(["--corpus", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "manifest.json" in capsys.readouterr().err
