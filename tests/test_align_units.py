"""The pieces of the alignment stages on the chat sample: the row-length policy against a plain pyarrow read, the
step plan (every row once an epoch, the same padded micro-batches on 1 or 2 ranks), the labels of SFT and DPO
micro-batches, padding that changes no real token's log-probability, the DPO loss's definition, the schedule
against transformers' own, and the config's checks."""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import torch

from jetmoe_core import shards
from trainer.align.batches import IGNORE, StepPlan, check_split, collate_dpo, collate_sft
from trainer.align.config import ConfigError, load_align_config
from trainer.align.data import ChatCorpus
from trainer.align.losses import dpo_sigmoid, sequence_logps, token_logps
from trainer.align.schedule import CosineSchedule
from trainer.model import load_checkpoint_weights


def plain_rows(root, kind: str, split: str = "train") -> list[dict]:
    """Every row of the corpus's sources of `kind`, read with plain pyarrow (no memory map, no project code)."""
    man = json.loads((root / "manifest.json").read_text())
    out = []
    for name in sorted(man["sources"]):
        if man["sources"][name].get("kind") != kind:
            continue
        for part in man["sources"][name]["splits"][split]["parts"]:
            out += ipc.open_file(pa.OSFile(str(root / part["path"]))).read_all().to_pylist()
    return out


@pytest.fixture(scope="module")
def sft(chat_assets):
    return ChatCorpus.open(chat_assets / "shards", "sft")


@pytest.fixture(scope="module")
def dpo(chat_assets):
    return ChatCorpus.open(chat_assets / "shards", "dpo")


@pytest.mark.parametrize("max_len", [40, 128, 10_000])
def test_sft_length_policy_counts_what_it_cuts(chat_assets, sft, max_len):
    rows = plain_rows(chat_assets / "shards", "sft")
    conv = sft.rows("train", max_len)
    cut_trained = sum(sum(r["loss_mask"][max_len:]) for r in rows)
    kept = [r for r in rows if sum(r["loss_mask"][:max_len])]
    assert conv.n == len(kept) and conv.dropped == len(rows) - len(kept)
    assert conv.cut == sum(len(r["input_ids"]) > max_len for r in kept)
    assert conv.cut_trained == cut_trained
    assert conv.trained.sum() + cut_trained == sum(r["n_trained"] for r in rows)
    for i, r in zip(range(conv.n), kept):
        ids, mask = conv.conversation(i)
        assert ids.tolist() == r["input_ids"][:max_len] and mask.tolist() == r["loss_mask"][:max_len]


def test_dpo_length_policy_drops_long_pairs(chat_assets, dpo):
    rows = plain_rows(chat_assets / "shards", "dpo")
    pairs = dpo.rows("train", 128)
    fit = [r for r in rows if len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) <= 128]
    assert 0 < pairs.n == len(fit) < len(rows) and pairs.dropped == len(rows) - len(fit)
    p, c, r = pairs.pair(pairs.n - 1)
    assert (p.tolist(), c.tolist(), r.tolist()) == (fit[-1]["prompt_ids"], fit[-1]["chosen_ids"], fit[-1]["rejected_ids"])


def test_reader_refuses_a_pretraining_corpus(train_assets):
    with pytest.raises(ValueError, match=r"reads sft or dpo sources, but the corpus holds code \(pretrain\)"):
        ChatCorpus.open(train_assets / "corpus", "sft")


@pytest.mark.parametrize("batch,epochs", [(8, 3), (7, 2.5), (64, 1)])
def test_each_epoch_takes_every_row_once(batch, epochs):
    plan = StepPlan(n_rows=50, batch=batch, epochs=epochs, seed=3)
    assert plan.total_steps == math.ceil(epochs * 50 / batch)
    stream = np.concatenate([plan.step_rows(s) for s in range(plan.total_steps)])
    for e in range(int(epochs)):
        assert sorted(stream[e * 50:(e + 1) * 50].tolist()) == list(range(50))
    assert not np.array_equal(stream[:50], stream[50:100]) if epochs >= 2 else True
    again = StepPlan(n_rows=50, batch=batch, epochs=epochs, seed=3)
    assert np.array_equal(np.concatenate([again.step_rows(s) for s in reversed(range(plan.total_steps))][::-1]),
                          stream)  # a pure function of the step: resuming anywhere gives the same rows


def test_micro_batches_are_the_same_on_one_or_two_ranks():
    lengths = np.random.default_rng(0).integers(2, 200, size=40)
    plan = StepPlan(n_rows=40, batch=16, epochs=1, seed=0)
    one = plan.micro_groups(1, lengths, micro_batch=4)
    two = [plan.micro_groups(1, lengths, micro_batch=4, rank=r, world_size=2) for r in (0, 1)]
    assert [g.tolist() for g in one] == [g.tolist() for pair in zip(*two) for g in pair]
    assert sorted(np.concatenate(one).tolist()) == sorted(plan.step_rows(1).tolist())
    longest = [int(lengths[g].max()) for g in one]
    assert longest == sorted(longest, reverse=True)  # similar lengths together: little padding
    assert check_split(16, 4, 2, "pairs") == 2
    with pytest.raises(ValueError, match=r"train.batch = 12 pairs is not a multiple of data.micro_batch × ranks = "
                                         r"4 × 2; use e.g. --train.batch=16"):
        check_split(12, 4, 2, "pairs")


def test_sft_labels_are_the_trained_next_tokens(sft):
    conv = sft.rows("train", 10_000)  # no row cut: each ends with its last EOS
    rows = np.array([0, 5, 9])
    b = collate_sft(conv, rows, pad_id=2, pad_multiple=8)
    assert b.inputs.shape[1] % 8 == 0 and b.n_trained == int((b.labels != IGNORE).sum())
    for r, i in enumerate(rows):
        ids, mask = conv.conversation(int(i))
        n = len(ids) - 1
        assert b.inputs[r, :n].tolist() == ids[:-1].tolist() and (b.inputs[r, n:] == 2).all()
        want = [int(t) if m else IGNORE for t, m in zip(ids[1:], mask[1:])]
        assert b.labels[r, :n].tolist() == want and (b.labels[r, n:] == IGNORE).all()
        assert b.labels[r, n - 1] == ids[-1] == 2  # the last EOS is trained: the model learns to stop


def test_dpo_rows_are_prompt_plus_each_completion(dpo):
    pairs = dpo.rows("train", 128)
    rows = np.array([1, 2])
    b = collate_dpo(pairs, rows, pad_id=2)
    for r, i in enumerate(rows):
        p, c, rej = pairs.pair(int(i))
        for row, comp in ((r, c), (len(rows) + r, rej)):
            seq = np.concatenate([p, comp]).tolist()
            assert b.inputs[row, :len(seq) - 1].tolist() == seq[:-1]
            got = b.labels[row][b.labels[row] != IGNORE].tolist()
            assert got == comp.tolist()  # every completion token (EOS included), no prompt token
            assert b.labels[row, len(p) - 1] == comp[0]


def test_padding_changes_no_real_token(chat_assets, sft):
    """Causal attention and per-token (dropless) routing: a row scored alone and in a padded micro-batch with
    longer rows gets the same log-probabilities."""
    model = load_checkpoint_weights(chat_assets / "base").eval()
    conv = sft.rows("train", 128)
    lengths = conv.lengths
    rows = np.array([int(np.argmin(lengths)), int(np.argmax(lengths)), 3])
    b = collate_sft(conv, rows, pad_id=2)
    with torch.no_grad():
        batched = token_logps(model(b.inputs).logits, b.labels)
        for r, i in enumerate(rows):
            alone = collate_sft(conv, np.array([i]), pad_id=2)
            single = token_logps(model(alone.inputs).logits, alone.labels)[0]
            torch.testing.assert_close(batched[r, :single.shape[0]], single, rtol=0, atol=2e-6)
        # the model's own masked cross-entropy is the mean of the same numbers
        out = model(b.inputs, labels=b.labels)
        torch.testing.assert_close(out.lm_loss, -batched.sum() / b.n_trained, rtol=1e-6, atol=0)


def test_dpo_sigmoid_definition():
    pc, pr = torch.tensor([-10.0, -3.0]), torch.tensor([-12.0, -2.0])
    rc, rr = torch.tensor([-11.0, -3.0]), torch.tensor([-11.0, -3.0])
    losses, r_c, r_r = dpo_sigmoid(pc, pr, rc, rr, beta=0.1)
    torch.testing.assert_close(r_c, torch.tensor([0.1, 0.0]))
    torch.testing.assert_close(r_r, torch.tensor([-0.1, 0.1]))
    torch.testing.assert_close(losses, -torch.nn.functional.logsigmoid(r_c - r_r))
    same, _, _ = dpo_sigmoid(pc, pr, pc, pr, beta=0.01)
    torch.testing.assert_close(same, torch.full((2,), math.log(2.0)))
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, IGNORE, 4], [IGNORE, IGNORE, 0]])
    want = torch.stack([logits[0, 0].log_softmax(-1)[1] + logits[0, 2].log_softmax(-1)[4],
                        logits[1, 2].log_softmax(-1)[0]])
    torch.testing.assert_close(sequence_logps(logits, labels), want)


@pytest.mark.parametrize("total,ratio", [(38, 0.1), (7, 0.1), (100, 0.0), (5, 0.5)])
def test_schedule_is_transformers_cosine_with_warmup(total, ratio):
    from transformers import get_cosine_schedule_with_warmup

    sched = CosineSchedule(2e-5, total, ratio)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    hf = get_cosine_schedule_with_warmup(opt, num_warmup_steps=math.ceil(total * ratio), num_training_steps=total)
    for step in range(total):
        assert sched.lr(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-20), step
        opt.step()
        hf.step()
    assert sched.lr(0) == 0.0 if ratio else sched.lr(0) == 2e-5


def test_configs_are_the_papers_and_checked(tmp_path):
    sft, dpo = load_align_config("sft"), load_align_config("dpo")
    assert (sft.optim.lr, sft.train.batch, sft.train.epochs, sft.schedule.warmup_ratio) == (2e-5, 128, 3, 0.1)
    assert (sft.optim.beta1, sft.optim.beta2, sft.optim.eps, sft.optim.weight_decay) == (0.9, 0.999, 1e-8, 0.0)
    assert (dpo.optim.lr, dpo.train.batch, dpo.train.epochs, dpo.dpo.beta) == (5e-7, 128, 1, 0.01)
    for stage in ("sft", "dpo"):
        big = load_align_config(stage, f"trainer/configs/align/{stage}-jetmoe-8b.toml")
        assert (big.optim.lr, big.train.batch, big.train.epochs) == \
            ((2e-5, 128, 3) if stage == "sft" else (5e-7, 128, 1))
    bad = tmp_path / "sft.toml"
    bad.write_text("[dpo]\nbeta = 0.1\n")
    with pytest.raises(ConfigError, match=r"sft.toml: unknown key 'dpo'"):
        load_align_config("sft", bad)
    with pytest.raises(ConfigError, match=r"override --dpo.beta=0: \[dpo\] dpo.beta = 0.0 must be a finite number > 0"):
        load_align_config("dpo", None, ["--dpo.beta=0"])
    with pytest.raises(ConfigError, match=r"schedule.warmup_ratio = 1.0 must be in \[0, 1\)"):
        load_align_config("sft", None, ["--schedule.warmup_ratio=1"])
