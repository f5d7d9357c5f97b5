"""Training in bf16, the trainer builds FSDP2 with bf16 matmul-weight units (trainer.perf.shard_mixed_precision)
on 2 ranks (gloo, CPU) and the weight cast cache on one process; both take the same steps: the matmuls see
bf16 weights, the routers fp32, and the losses agree to fp32 rounding of the gradient reduction."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="needs torch.distributed with gloo")


def run(*launcher):
    # the script imports the test kits (``tests.…``): a script's own folder is first on its path, not the repo's
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([*launcher, str(ROOT / "tests" / "_fsdp_mixed.py")], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


@pytest.mark.slow
def test_fsdp_mixed_precision_units_equal_one_process_cast_cache():
    one = run(sys.executable)
    two = run(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")
    assert (one["weights"], two["weights"]) == ("cast-cache", "fsdp-mixed")
    assert two["dtypes"] == {"expert": "bfloat16", "kv": "bfloat16", "router": "float32"}
    assert one["dtypes"] == {"expert": "float32", "kv": "float32", "router": "float32"}  # cast inside forward
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-6, abs=1e-6)
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-5)
