"""FSDP2 across 2 ranks (gloo on CPU, via torchrun) takes the same steps as 1 process with the same global
batch: equal losses within fp32 tolerance through phase 1 and, after a restart that loads the sharded model
and optimizer from the checkpoint, phase 2; and its checkpoints hold the full model."""
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer_kit.runs import ROOT, run_args, train_records
from trainer import checkpoint as ckpt
from trainer.train import main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="needs torch.distributed with gloo")


def test_two_ranks_equal_one_rank(train_assets, tmp_path):
    steps, steps2 = 6, 3
    extra = [f"--train.phase1_tokens={steps * 256}", f"--train.phase2_tokens={steps2 * 256}",
             "--checkpoint.every_steps=3", "--log.val_every_steps=100"]
    one = tmp_path / "one"
    # 1 process: 8 sequences per step as 2 micro-batches of 4 (gradient accumulation).
    for phase in (1, 2):
        assert main(run_args(train_assets, one, phase, *extra)) == 0
    two = tmp_path / "two"
    # 2 ranks: the same 8 sequences per step as 1 micro-batch of 4 on each rank, FSDP2-sharded.
    for phase in (1, 2):
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                            "-m", "trainer", "train", *run_args(train_assets, two, phase, *extra, "--parallel.fsdp=true")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        assert "FSDP2" in r.stdout and "1 micro-batch(es) × 4 × 32 × 2 rank(s)" in r.stdout
    a, b = train_records(one), train_records(two)
    assert [x["step"] for x in a] == [x["step"] for x in b] == list(range(1, steps + steps2 + 1))
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5, abs=1e-6)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4, abs=1e-6)
        assert x["source_tokens"] == y["source_tokens"] and x["expert_tokens"] == y["expert_tokens"]
    wa = load_file(str(ckpt.step_dir(one, steps + steps2) / "model.safetensors"))
    wb = load_file(str(ckpt.step_dir(two, steps + steps2) / "model.safetensors"))
    assert wa.keys() == wb.keys()                          # the 2-rank checkpoint holds the full model
    for k in wa:
        assert wa[k].shape == wb[k].shape
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
