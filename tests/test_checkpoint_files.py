"""Checkpoint folders: complete or absent, verified by SHA256SUMS, corrupt newest → previous with a warning,
last K kept (plus phase ends), weights_only-loadable state, RNG round trip."""
import json
import random

import numpy as np
import pytest
import torch

from trainer import checkpoint as ckpt
from trainer.dist import DistInfo


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _setup(seed=0):
    torch.manual_seed(seed)
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    net(torch.randn(3, 4)).sum().backward()
    opt.step()
    return net, opt


def _save(run, step, net, opt, keep=10, phase_end=False, tok=None):
    return ckpt.save(run, step, model=net, optimizer=opt, model_config={"name": "net"},
                     train_state={"step": step, "phase": 1, "phase_end": phase_end, "loader": {}},
                     tokenizer_path=tok, keep_last=keep, info=DistInfo())


def test_save_writes_a_verified_folder_and_loads_back(tmp_path):
    net, opt = _setup()
    tok = tmp_path / "tokenizer.json"
    tok.write_text("{}")
    path = _save(tmp_path, 7, net, opt, tok=tok)
    assert path.name == "step-00000007"
    assert sorted(p.name for p in path.iterdir()) == sorted(ckpt.REQUIRED + ("SHA256SUMS", "tokenizer.json"))
    assert ckpt.verify(path) is None
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    # Only tensors and plain values: these load with weights_only=True.
    torch.load(path / "optimizer.pt", weights_only=True)
    torch.load(path / "rng.pt", weights_only=True)
    net2, opt2 = _setup(seed=1)
    found = ckpt.find_latest(tmp_path)
    assert found.step == 7 and found.state["step"] == 7
    ckpt.load_into(found, model=net2, optimizer=opt2, info=DistInfo())
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for k in s1:
        assert torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) and torch.equal(s1[k]["step"], s2[k]["step"])


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_sums", "delete_file"])
def test_corrupt_newest_falls_back_with_a_warning(tmp_path, damage):
    net, opt = _setup()
    _save(tmp_path, 5, net, opt)
    newest = _save(tmp_path, 10, net, opt)
    target = newest / "model.safetensors"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "delete_sums":
        (newest / "SHA256SUMS").unlink()
    else:
        (newest / "optimizer.pt").unlink()
    msgs = []
    found = ckpt.find_latest(tmp_path, warn=msgs.append)
    assert found.step == 5
    assert len(msgs) == 1 and "step-00000010" in msgs[0] and "step-00000005" in msgs[0]


def test_nothing_valid_returns_none_and_says_so(tmp_path):
    net, opt = _setup()
    p = _save(tmp_path, 3, net, opt)
    (p / "rng.pt").write_bytes(b"garbage")
    msgs = []
    assert ckpt.find_latest(tmp_path, warn=msgs.append) is None
    assert "no older valid checkpoint" in msgs[0]
    assert ckpt.find_latest(tmp_path / "empty") is None


def test_keep_last_k_but_never_a_phase_end(tmp_path):
    net, opt = _setup()
    _save(tmp_path, 10, net, opt, keep=2, phase_end=True)
    for s in (12, 14, 16, 18):
        _save(tmp_path, s, net, opt, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [10, 16, 18]


def test_rewrite_of_an_existing_step_replaces_it(tmp_path):
    net, opt = _setup()
    p = _save(tmp_path, 4, net, opt)
    (p / "model.safetensors").write_bytes(b"bad")
    assert ckpt.verify(p) is not None
    _save(tmp_path, 4, net, opt)
    assert ckpt.verify(p) is None
    assert [q.name for q in (tmp_path / "checkpoints").iterdir()] == ["step-00000004"]


def test_stale_temp_folders_are_ignored_and_cleaned(tmp_path):
    net, opt = _setup()
    _save(tmp_path, 2, net, opt)
    stale = tmp_path / "checkpoints" / ".tmp-step-00000004"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    assert ckpt.find_latest(tmp_path).step == 2
    ckpt.clean_stale(tmp_path)
    assert not stale.exists()


def test_rng_round_trip():
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    state = ckpt.rng_state(torch.device("cpu"))
    a = (random.random(), random.gauss(0, 1), np.random.rand(), torch.rand(2))
    ckpt.set_rng_state(state, torch.device("cpu"))
    b = (random.random(), random.gauss(0, 1), np.random.rand(), torch.rand(2))
    assert a[:3] == b[:3] and torch.equal(a[3], b[3])


def test_sums_file_is_sha256sum_compatible(tmp_path):
    net, opt = _setup()
    p = _save(tmp_path, 1, net, opt)
    for line in (p / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert ckpt.sha256_file(p / name) == digest
    assert json.loads((p / "train_state.json").read_text())["step"] == 1
