"""The trainer never reports a false success: it checks the shards it reads (part hashes at start, token ids as
it reads, the format version), every disk fault is an exit 2 naming the path, the errno's meaning and the
fix (checkpoints, the run folder, metrics, exports), a run whose checkpoints are all unusable stops instead
of starting over, and the advice in its messages works when followed."""
import errno
import json
import random
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from jetmoe_core.io import sha256_file
from tests.trainer_kit.corpus import make_corpus, read_all_tokens
from tests.trainer_kit.disk import FailingDisk
from tests.trainer_kit.runs import ROOT, run_args, train_records
from trainer import checkpoint as ckpt
from trainer.config import ConfigError, load_run_config
from trainer.data import BlendedLoader, Corpus, CorpusError, MixtureError, ValLoader, parse_mixture
from trainer.train import main

SHORT = ["--train.phase1_tokens=1536", "--schedule.warmup_tokens=1024"]  # 6 steps: checkpoint at 5 and 6


def corpus_copy(train_assets, tmp_path):
    dst = tmp_path / "corpus"
    shutil.copytree(train_assets / "corpus", dst)
    return dst


def first_read_doc(corpus, source="web", seed=1234, seq_len=32) -> int:
    """The document the loader's first sequence of `source` starts with (run_args' data seed and seq_len)."""
    from trainer.data import SourceSequences

    docs = []
    c = Corpus.open(corpus)
    SourceSequences(c.open_stream(source), source, seed, seq_len).fill(0, np.empty(seq_len + 1, np.int64), docs)
    return docs[0]


def set_token(corpus, new_id, fix_manifest, doc=0, source="web", split="train"):
    """Change the first token of a document in its part file, in place: (the part, the document's row)."""
    m = json.loads((corpus / "manifest.json").read_text())
    parts = m["sources"][source]["splits"][split]["parts"]
    k, row = 0, doc
    while row >= parts[k]["n_docs"]:
        row -= parts[k]["n_docs"]
        k += 1
    path = corpus / parts[k]["path"]
    first = read_all_tokens(corpus, source, split)[doc][:8].astype("<u2").tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(first)
    assert at > 0 and data.count(first) == 1
    data[at:at + 2] = int(new_id).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    if fix_manifest:  # a part built wrong, not changed afterwards: the manifest agrees with it
        parts[k]["sha256"], parts[k]["bytes"] = sha256_file(path), path.stat().st_size
        (corpus / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True))
    return path, row


def test_a_changed_token_is_caught_by_the_part_hash(train_assets, tmp_path, capsys):
    corpus = corpus_copy(train_assets, tmp_path)
    old = int(read_all_tokens(corpus, "web")[0][0])
    path, _ = set_token(corpus, 3 + (old - 3 + 1) % 509, fix_manifest=False)  # still a valid id
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1, *SHORT, f"--data.corpus={corpus}")) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "sha256" in err and "pipeline verify" in err, err
    assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists()   # before any work
    # it is the hash that catches it: the size check lets the same corpus through
    assert main(run_args(train_assets, run, 1, *SHORT, f"--data.corpus={corpus}", "--data.verify=size")) == 0
    assert "data.verify = 'size'" in capsys.readouterr().err


def test_a_truncated_part_is_caught_by_the_size_check(train_assets, tmp_path, capsys):
    corpus = corpus_copy(train_assets, tmp_path)
    part = json.loads((corpus / "manifest.json").read_text())["sources"]["web"]["splits"]["train"]["parts"][0]
    path = corpus / part["path"]
    path.write_bytes(path.read_bytes()[:-100])
    assert main(run_args(train_assets, tmp_path / "run", 1, *SHORT, f"--data.corpus={corpus}",
                         "--data.verify=size")) == 2
    assert f"{path}: {part['bytes'] - 100} bytes, the manifest says {part['bytes']}" in capsys.readouterr().err


def test_a_token_id_past_the_vocabulary_names_the_file(train_assets, tmp_path, capsys):
    corpus = corpus_copy(train_assets, tmp_path)
    path, row = set_token(corpus, 517, fix_manifest=True, doc=first_read_doc(corpus))
    assert main(run_args(train_assets, tmp_path / "run", 1, *SHORT, f"--data.corpus={corpus}")) == 2
    err = capsys.readouterr().err
    want = f"{path}: document {row} holds token id 517, but the vocabulary has 512 ids"
    assert want in err and "pipeline verify" in err and "Traceback" not in err, err
    # the same error whichever way the loader reads: in this thread, a prefetch thread or worker processes
    c = Corpus.open(corpus)
    mix = parse_mixture({"sources": {"web": 1}}, c)
    for workers, prefetch in ((0, 0), (0, 2), (1, 2)):
        with BlendedLoader(c, mix, seq_len=32, seed=1234, micro_batch=4, num_workers=workers,
                           prefetch=prefetch) as loader:
            with pytest.raises(CorpusError, match=want):
                next(loader)
    # ... and the validation loader
    path, row = set_token(corpus, 600, fix_manifest=True, source="code", split="val")
    with pytest.raises(CorpusError, match=f"{path}: document {row} holds token id 600"):
        list(ValLoader(Corpus.open(corpus), "code", seq_len=16, batch_size=4))


def test_another_format_version_is_refused(train_assets, tmp_path):
    corpus = corpus_copy(train_assets, tmp_path)
    m = json.loads((corpus / "manifest.json").read_text())
    m["format"] = "jetmoe-shard-v0"
    (corpus / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="format = 'jetmoe-shard-v0', but this trainer reads 'jetmoe-shard-v1'"):
        Corpus.open(corpus)


# ---------------------------------------------------------------------------------------------- disk faults
class FullAtOptimizer(FailingDisk):
    """The disk fills up exactly when optimizer.pt is written: inside torch's C++ writer."""

    def op(self, path):
        if path.endswith("optimizer.pt"):
            self.failed = True
        return super().op(path)


def test_a_full_disk_during_a_checkpoint_write(train_assets, reference_run, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    disk = FullAtOptimizer(run, errno.ENOSPC, at=None).install(monkeypatch)
    rc = main(run_args(train_assets, run, 1))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and disk.failed, err
    assert f"error: writing {run}/checkpoints/.tmp-step-00000005/optimizer.pt: no space left on device (ENOSPC)" \
        in err and "checkpoint step-00000005 was not saved" in err, err
    assert "free space" in err and "inline_container" not in err, err
    assert not list((run / "checkpoints").iterdir())            # no half-written folder, temp or final
    # free space, run again: it starts over (there was no checkpoint) and ends as the uninterrupted run
    assert main(run_args(train_assets, run, 1)) == 0
    assert (ckpt.step_dir(run, 20) / "model.safetensors").read_bytes() == \
        (ckpt.step_dir(reference_run, 20) / "model.safetensors").read_bytes()


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only file system (EROFS)"),
                                         (errno.EACCES, "permission denied (EACCES)")])
def test_an_unwritable_run_folder_stops_before_any_work(train_assets, tmp_path, capsys, monkeypatch, code, words):
    run = tmp_path / "run"
    disk = FailingDisk(run, code, at=1).install(monkeypatch)
    rc = main(run_args(train_assets, run, 1, *SHORT))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and disk.ops == 1, err
    assert f"error: cannot write to the run folder {run}" in err and words in err and "Traceback" not in err


def test_a_full_disk_while_logging_metrics(train_assets, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"

    class AtMetrics(FailingDisk):  # the disk fills up while the 3rd step's line is written
        def op(self, path):
            if path.endswith("metrics.jsonl") and len(train_records(run)) == 2:
                self.failed = True
            return super().op(path)
    AtMetrics(run, errno.ENOSPC, at=None).install(monkeypatch)
    rc = main(run_args(train_assets, run, 1, *SHORT))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and f"error: writing the metrics log {run / 'metrics.jsonl'}: no space left" in err, err


def test_a_full_disk_during_an_export_leaves_nothing(reference_run, tmp_path, capsys, monkeypatch):
    from trainer.__main__ import main as cli

    out = tmp_path / "hf"
    FailingDisk(tmp_path, errno.ENOSPC, at=3).install(monkeypatch)
    rc = cli(["export", str(reference_run), str(out)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and "error: writing the export" in err and "(ENOSPC)" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert cli(["export", str(reference_run), str(out)]) == 0


def test_an_unwritable_plot_folder(train_assets, tmp_path, capsys, monkeypatch):
    from trainer.__main__ import main as cli

    FailingDisk(tmp_path / "plots", errno.EROFS, at=1).install(monkeypatch)
    rc = cli(["plan", str(train_assets / "m1.toml"), "--corpus", str(train_assets / "corpus"), "--tokens", "1e4",
              "--plot", str(tmp_path / "plots" / "mix.png")])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and f"error: writing the plot {tmp_path / 'plots'}" in err and "(EROFS)" in err, err


def test_a_real_write_failure_inside_torch_save(train_assets, tmp_path):
    """A real kernel error, not a patched one: a file-size limit that model.safetensors fits under and
    optimizer.pt (twice its size) does not makes the write fail inside torch's C++ writer (EFBIG), which by
    itself says only "unexpected pos"."""
    from trainer.model import JetMoE, load_model_config

    run = tmp_path / "run"
    n_bytes = 4 * sum(p.numel() for p in JetMoE(load_model_config(train_assets / "model.toml")).parameters())
    cap = n_bytes + 64 * 1024

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    r = subprocess.run([sys.executable, "-m", "trainer", "train",
                        *run_args(train_assets, run, 1, "--train.phase1_tokens=512", "--schedule.warmup_tokens=0")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "file too large (EFBIG)" in r.stderr and "optimizer.pt" in r.stderr, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and not list((run / "checkpoints").iterdir())


# ---------------------------------------------------------------------------------------------- resume
def test_all_checkpoints_unusable_stops_and_restart_starts_over(train_assets, reference_run, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1, *SHORT)) == 0
    bad = {}
    for _, path in ckpt.list_checkpoints(run):
        data = bytearray((path / "model.safetensors").read_bytes())
        data[len(data) // 2] ^= 1
        (path / "model.safetensors").write_bytes(bytes(data))
        bad[path] = bytes(data)
    capsys.readouterr()
    assert main(run_args(train_assets, run, 1, *SHORT)) == 2
    err = capsys.readouterr().err
    assert "none of the checkpoints" in err and "--restart" in err and "step-00000006" in err, err
    assert all((p / "model.safetensors").read_bytes() == b for p, b in bad.items())    # nothing overwritten
    assert main(run_args(train_assets, run, 2, *SHORT)) == 2                          # phase 2 says the same
    assert "none of the checkpoints" in capsys.readouterr().err
    # the advice works: --restart moves them aside and trains from step 0, as the uninterrupted run did
    assert main(run_args(train_assets, run, 1, *SHORT, "--restart")) == 0
    assert sorted(p.name for p in (run / "previous-1" / "checkpoints").iterdir()) == [p.name for p in bad]
    assert (run / "previous-1" / "metrics.jsonl").is_file()
    got = [(r["step"], r["loss"]) for r in train_records(run)]
    assert got == [(r["step"], r["loss"]) for r in train_records(reference_run)[:6]]
    assert main(run_args(train_assets, run, 2, *SHORT, "--restart")) == 2           # phase 1 only
    assert "--restart starts phase 1 over" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- advice, config
def test_weight_zero_for_a_source_the_corpus_lacks_is_accepted(tmp_path):
    c = Corpus.open(make_corpus(tmp_path / "c", {"web": 300, "code": 200}, vocab=50))
    with pytest.raises(MixtureError, match="set its weight to 0") as e:
        parse_mixture({"sources": {"web": 1, "wikipedia": 1}}, c)
    assert "sources.wikipedia" in str(e.value)
    mix = parse_mixture({"sources": {"web": 1, "wikipedia": 0}}, c)          # the advice, followed
    assert mix.shares == {"web": 1.0}
    with pytest.raises(MixtureError, match="set the group's weight to 0"):
        parse_mixture({"sources": {"web": 1}, "groups": {"pile": {"weight": 2, "members": ["code", "arxiv"]}}}, c)
    mix = parse_mixture({"sources": {"web": 1}, "groups": {"pile": {"weight": 0, "members": ["code", "arxiv"]}}}, c)
    assert mix.shares == {"web": 1.0}
    mix = parse_mixture({"sources": {"web": 1}, "groups": {"pile": {"weight": 2, "members": ["code"]}}}, c)
    assert set(mix.shares) == {"web", "code"}


@pytest.mark.parametrize("override, key", [
    ("--train.threads=-1", "train.threads"), ("--optim.eps=0", "optim.eps"), ("--optim.eps=-1e-8", "optim.eps"),
    ("--log.val_batch_size=0", "log.val_batch_size"), ("--log.val_batches=0", "log.val_batches"),
    ("--data.num_workers=-1", "data.num_workers"), ("--data.prefetch=-2", "data.prefetch"),
    ("--data.seed=-1", "data.seed"), ("--train.seed=-1", "train.seed"), ("--train.seed=5e9", "train.seed"),
    ("--optim.lr=inf", "optim.lr"), ("--optim.grad_clip=nan", "optim.grad_clip"),
    ("--cost.peak_tflops=inf", "cost.peak_tflops"), ("--data.verify=md5", "data.verify"),
])
def test_every_value_is_checked_when_the_config_is_read(override, key):
    with pytest.raises(ConfigError) as e:
        load_run_config(ROOT / "trainer/configs/tiny.toml", [override])
    assert key in str(e.value) and override in str(e.value), str(e.value)


def test_bad_threads_and_eps_are_clear_errors_not_tracebacks(train_assets, tmp_path, capsys):
    for override, key in (("--train.threads=-1", "train.threads"), ("--optim.eps=0", "optim.eps")):
        assert main(run_args(train_assets, tmp_path / "run", 1, override)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: override {override}:") and key in err, err


def test_python_and_numpy_rngs_are_seeded(train_assets, tmp_path):
    """A fresh run's RNG states (saved in rng.pt) do not depend on what ran before it in the process."""
    states = []
    for i in range(2):
        random.seed(100 + i)
        np.random.seed(100 + i)
        run = tmp_path / f"run{i}"
        assert main(run_args(train_assets, run, 1, "--train.phase1_tokens=512", "--schedule.warmup_tokens=0")) == 0
        states.append(torch.load(ckpt.step_dir(run, 2) / "rng.pt", weights_only=True)["rank0"])
    for key in ("python_state", "numpy_keys", "numpy_pos", "torch_cpu"):
        assert torch.equal(states[0][key], states[1][key]), key
    random.seed(0)
    np.random.seed(0)
    assert torch.equal(states[0]["python_state"], torch.tensor(random.getstate()[1], dtype=torch.int64))


def test_the_verify_cost_bench_runs():
    r = subprocess.run([sys.executable, "bench/bench_verify.py", "--mb", "8", "--parts", "4"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert figures["cold_1t_s_per_gb"] > 0 and figures["warm_8t_s_per_gb"] > 0
