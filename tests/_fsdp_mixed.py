"""Three optimizer steps of a tiny JetMoE under CPU bf16 autocast, as one process with the weight cast cache
or (under torchrun) as FSDP2 ranks with `trainer.perf.shard_mixed_precision`; prints the losses, the last
gradient norm and the dtypes the layers saw, as one JSON line. Run by tests/test_perf_fsdp.py."""
import json

import torch

from trainer import dist as D
from trainer.model import JetMoE, ModelConfig
from trainer.perf import shard_mixed_precision, train_step

cfg = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                  ffn_hidden=48, max_seq_len=64, init_std=0.1, backend="grouped_mm")
info = D.init()
torch.manual_seed(0)
model = JetMoE(cfg)
data = torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(1))
if info.distributed:
    shard_mixed_precision(model)
    mine = [data[info.rank * 2:(info.rank + 1) * 2]]
else:
    mine = [data[:2], data[2:]]           # the same 4 sequences per step as 2 micro-batches
seen = {}                                 # weight dtypes inside forward (after FSDP2's all-gather hooks)
block = model.layers[0]
for name, mod in (("expert", block.mlp.input_linear), ("kv", block.attn.kv_proj), ("router", block.mlp.router)):
    def hook(m, args, name=name):
        seen.setdefault(name, str(m.weight.dtype).removeprefix("torch."))
    mod.register_forward_pre_hook(hook)
opt = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=True)
if not info.distributed:
    model.cache_weight_casts(torch.bfloat16, opt)
losses = []
for _ in range(3):
    r = train_step(model, opt, mine, autocast=torch.bfloat16)
    loss = r.loss.clone()
    D.all_reduce_sum(loss, info)
    losses.append(loss.item() / info.world_size)
grad_norm = float(r.grad_norm.full_tensor() if hasattr(r.grad_norm, "full_tensor") else r.grad_norm)
if info.is_main:
    print(json.dumps({"losses": losses, "grad_norm": grad_norm, "dtypes": seen}))
D.shutdown()
