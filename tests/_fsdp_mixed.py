"""Three optimizer steps of a tiny JetMoE in bf16 built by the trainer (trainer.build.plan_levers +
build_model, stepped by trainer.step.train_step): as one process that is the weight cast cache, under torchrun
FSDP2 with bf16 matmul-weight units. Prints the losses, the last gradient norm, the weight plan and the
dtypes the layers saw, as one JSON line. Run by tests/test_perf_fsdp.py."""
import json

import torch

from tests.trainer_kit.steps import one_step
from trainer import build as B
from trainer import dist as D
from trainer.config import load_run_config
from trainer.model import ModelConfig

cfg = load_run_config(None, ["--train.precision=bf16", "--optim.lr=1e-2", "--optim.fused=false"])
mcfg = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                   ffn_hidden=48, max_seq_len=64, init_std=0.1, backend="grouped_mm")
info = D.init()
levers = B.plan_levers(cfg, info)
built = B.build_model(cfg, mcfg, info, levers)
model = built.model
data = torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(1))
# the same 4 sequences per step: 2 micro-batches of 2 on one process, 1 of 2 on each of 2 ranks
mine = [data[info.rank * 2:(info.rank + 1) * 2]] if info.distributed else [data[:2], data[2:]]
seen = {}                                 # weight dtypes inside forward (after FSDP2's all-gather hooks)
block = model.blocks()[0]
for name, mod in (("expert", block.mlp.input_linear), ("kv", block.attn.kv_proj), ("router", block.mlp.router)):
    def hook(m, args, name=name):
        seen.setdefault(name, str(m.weight.dtype).removeprefix("torch."))
    mod.register_forward_pre_hook(hook)
losses, m = [], None
for _ in range(3):
    m = one_step(model, built.optimizer, mine, precision="bf16", info=info, fsdp=levers.fsdp)
    losses.append(m.loss)                 # already the mean over micro-batches and ranks
if info.is_main:
    print(json.dumps({"losses": losses, "grad_norm": m.grad_norm, "dtypes": seen, "weights": levers.weights}))
D.shutdown()
