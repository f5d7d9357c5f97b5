"""SFT and DPO on 2 ranks (FSDP2, gloo on CPU, via torchrun) take the same steps as 1 process with the same batch:
the same padded micro-batches (dealt to the ranks), the loss normalised over the whole step, equal logged
losses, rewards and gradient norms within fp32 tolerance, and checkpoints that hold the full model."""
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer_kit.chat import ROOT, align_args, records
from trainer import checkpoint as ckpt

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="needs torch.distributed with gloo")

KEYS = {"sft": ("loss", "grad_norm", "trained_tokens", "step_tokens"),
        "dpo": ("loss", "grad_norm", "rewards_chosen", "rewards_rejected", "margins", "accuracy", "logps_chosen")}


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_two_ranks_equal_one_process(chat_assets, chat_runs, tmp_path, stage):
    one = chat_runs[0] if stage == "sft" else chat_runs[1]   # 1 process: 2 micro-batches a step, accumulated
    two = tmp_path / stage                                    # 2 ranks: 1 micro-batch each
    extra = [] if stage == "sft" else [f"--init.checkpoint={chat_runs[0]}"]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                        "trainer", stage, *align_args(chat_assets, two, stage, *extra, "--parallel.fsdp=true")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "FSDP2" in r.stdout and "1 micro-batch(es) × " in r.stdout and "× 2 rank(s)" in r.stdout
    a, b = records(one, "train"), records(two, "train")
    assert [x["step"] for x in a] == [x["step"] for x in b]
    for x, y in zip(a, b):
        for k in KEYS[stage]:
            assert y[k] == pytest.approx(x[k], rel=1e-5, abs=1e-6), (x["step"], k)
        assert x["expert_tokens"] == y["expert_tokens"]
    for x, y in zip(records(one, "val"), records(two, "val")):
        assert y["mean"] == pytest.approx(x["mean"], rel=1e-5)
    last = a[-1]["step"]
    wa = load_file(str(ckpt.step_dir(one, last) / "model.safetensors"))
    wb = load_file(str(ckpt.step_dir(two, last) / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
