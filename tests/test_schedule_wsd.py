"""WSD schedule values at the phase boundaries, decay shapes, and the AdamW no-decay groups."""
import math

import pytest
import torch

from trainer.config import load_run_config, CONFIG_DIR
from trainer.optim import WSDSchedule, build_optimizer, param_groups, phase_steps


def sched(decay="exponential", **kw):
    args = dict(max_lr=1.0, warmup_steps=10, phase1_steps=100, phase2_steps=20, init_frac=0.1, final_frac=0.1,
                decay=decay)
    args.update(kw)
    return WSDSchedule(**args)


@pytest.mark.parametrize("decay", ["exponential", "linear", "cosine"])
def test_boundaries(decay):
    s = sched(decay)
    assert s.factor(0) == pytest.approx(0.1)                  # warmup starts at 10% of max
    assert s.factor(5) == pytest.approx(0.1 + 0.9 * 0.5)      # linear in between
    assert s.factor(9) < 1.0
    assert s.factor(10) == 1.0                                # stable from the end of warmup
    assert s.factor(99) == 1.0                                # ... to the last step of phase 1
    assert s.factor(100) < 1.0                                # phase 2's first step already decays
    assert s.factor(119) == pytest.approx(0.1)                # the last step lands on 10% of max
    assert s.factor(500) == pytest.approx(0.1)                # and stays there
    assert s.phase_of(99) == 1 and s.phase_of(100) == 2
    seq = [s.factor(i) for i in range(100, 120)]
    assert all(a > b for a, b in zip(seq, seq[1:]))           # strictly decreasing


def test_decay_shapes_midpoint():
    assert sched("exponential").factor(109) == pytest.approx(0.1 ** 0.5)
    assert sched("linear").factor(109) == pytest.approx(1 - 0.9 * 0.5)
    assert sched("cosine").factor(109) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_no_warmup_and_no_phase2():
    s = sched(warmup_steps=0, phase2_steps=0)
    assert s.factor(0) == 1.0 and s.factor(150) == 1.0


def test_paper_schedule_in_tokens():
    cfg = load_run_config(CONFIG_DIR / "jetmoe-8b.toml")
    s = WSDSchedule.from_config(cfg)
    bt = cfg.train.batch_tokens
    assert s.warmup_steps == math.ceil(10e9 / bt)
    assert phase_steps(cfg) == {1: math.ceil(1e12 / bt), 2: math.ceil(250e9 / bt)}
    assert s.lr(0) == pytest.approx(5e-5)
    assert s.lr(s.warmup_steps) == pytest.approx(5e-4)
    assert s.lr(s.phase1_steps - 1) == pytest.approx(5e-4)
    assert s.lr(s.total_steps - 1) == pytest.approx(5e-5)


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(10, 4)
        self.norm = torch.nn.RMSNorm(4)
        self.proj = torch.nn.Linear(4, 4, bias=True)
        self.experts = torch.nn.Parameter(torch.zeros(3, 4, 4))
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed_tokens.weight  # tied


def test_param_groups_exclude_norms_biases_embeddings():
    m = Toy()
    decay, keep = param_groups(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == ["experts", "proj.weight"]
    assert sorted(names[id(p)] for p in keep["params"]) == ["embed_tokens.weight", "norm.weight", "proj.bias"]
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    cfg = load_run_config(None)
    opt = build_optimizer(m, cfg, torch.device("cpu"))
    assert sum(len(g["params"]) for g in opt.param_groups) == 5   # the tied weight appears once
