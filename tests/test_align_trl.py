"""Our SFT and DPO arithmetic equals TRL's, the library people align models with, on the same rows and weights.

Both sides get our token ids (the chat corpus's rows; TRL's own tokenization may differ) and the same weights:
ours are the checkpoints, TRL's are their `trainer export` loaded by transformers' JetMoeForCausalLM. TRL's
side is its own code: `SFTTrainer` builds the labels from `assistant_masks`, collates and computes the loss
(`compute_loss`: the summed NLL of the labelled tokens over their count); `DPOTrainer` collates the pairs
(`DataCollatorForPreference`), scores sequences (`compute_ref_log_probs`) and computes the sigmoid loss and
its logged rewards, margins and accuracy (`_compute_loss`). Ours is what the training loop runs: `sft_step`
and `dpo_step` (with lr 0, so the weights stay put) over micro-batches of the same rows. Agreement: 1e-5 in
fp32.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.align.batches import collate_dpo, collate_sft
from trainer.align.data import ChatCorpus
from trainer.align.losses import sequence_logps
from trainer.align.step import AlignSetup, dpo_step, sft_step
from trainer.dist import DistInfo
from trainer.model import load_checkpoint_weights
from trainer.model.hf import export_checkpoint, resolve_checkpoint

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def models(chat_assets, chat_runs, tmp_path_factory):
    """(our base, our SFT model, HF base, HF SFT model, HF tokenizer): the SFT run's final weights differ from
    the base's, so a policy and its reference differ."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tmp_path_factory.mktemp("trl")
    sft_ckpt = resolve_checkpoint(chat_runs[0])
    export_checkpoint(chat_assets / "base", d / "base")
    export_checkpoint(sft_ckpt, d / "sft")
    hf = [AutoModelForCausalLM.from_pretrained(d / n, dtype=torch.float32).eval() for n in ("base", "sft")]
    ours = [load_checkpoint_weights(p).eval() for p in (chat_assets / "base", sft_ckpt)]
    return (*ours, *hf, AutoTokenizer.from_pretrained(d / "sft"))


def _setup(model, ref=None, beta=0.0) -> AlignSetup:
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    return AlignSetup(model, opt, DistInfo(), grad_clip=0.0, autocast=torch.autocast("cpu", enabled=False),
                      fsdp=False, ref=ref, beta=beta)


def test_sft_loss_equals_trls(chat_assets, models, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    _, ours, _, hf, tok = models
    conv = ChatCorpus.open(chat_assets / "shards", "sft").rows("train", 128)
    rows = np.arange(6)
    examples = [{"input_ids": conv.conversation(i)[0].tolist(), "assistant_masks": conv.conversation(i)[1].tolist()}
                for i in rows]
    trainer = SFTTrainer(model=hf, processing_class=tok, train_dataset=Dataset.from_list(examples),
                         args=SFTConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, max_length=None,
                                        bf16=False))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch)
    micro = [collate_sft(conv, rows[:3], pad_id=2), collate_sft(conv, rows[3:], pad_id=2)]  # 2 micro-batches
    m = sft_step(_setup(ours), micro, n_trained=sum(b.n_trained for b in micro), lr=0.0)
    assert m.stepped and m.values["trained_tokens"] == int((batch["labels"][:, 1:] != -100).sum())
    torch.testing.assert_close(torch.tensor(m.values["lm_loss"], dtype=torch.float64), theirs.double(), **TOL)


@pytest.mark.parametrize("beta", [0.01, 0.5])
def test_dpo_loss_logps_rewards_equal_trls(chat_assets, models, tmp_path, beta):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    base, ours, hf_base, hf, tok = models
    pairs = ChatCorpus.open(chat_assets / "shards", "dpo").rows("train", 128)
    rows = np.arange(6)
    examples = [dict(zip(("prompt_ids", "chosen_ids", "rejected_ids"), (x.tolist() for x in pairs.pair(i))))
                for i in rows]
    text = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}])  # to build the trainer only
    trainer = DPOTrainer(model=hf, ref_model=hf_base, processing_class=tok, train_dataset=text,
                         args=DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False,
                                        beta=beta, loss_type=["sigmoid"], max_length=None))
    batch = trainer.data_collator(examples)
    with torch.no_grad():
        loss = trainer._compute_loss(trainer.model, batch, return_outputs=False)
        pol_c, pol_r = trainer.compute_ref_log_probs(trainer.model, batch)
        ref_c, ref_r = trainer.compute_ref_log_probs(trainer.ref_model, batch)
    logged = {k: v[-1] for k, v in trainer._metrics["eval" if not trainer.model.training else "train"].items()}

    b = collate_dpo(pairs, rows, pad_id=2)
    with torch.no_grad():
        lp = sequence_logps(ours(b.inputs).logits, b.labels)
        lp_ref = sequence_logps(base(b.inputs).logits, b.labels)
    torch.testing.assert_close(lp, torch.cat([pol_c, pol_r]), **TOL)        # per-sequence log-probabilities
    torch.testing.assert_close(lp_ref, torch.cat([ref_c, ref_r]), **TOL)
    micro = [collate_dpo(pairs, rows[:3], pad_id=2), collate_dpo(pairs, rows[3:], pad_id=2)]
    m = dpo_step(_setup(ours, base, beta), micro, n_pairs=len(rows), lr=0.0)
    assert m.stepped
    torch.testing.assert_close(torch.tensor(m.values["loss"], dtype=torch.float64), loss.double(), **TOL)
    for ours_key, trl_key in (("rewards_chosen", "rewards/chosen"), ("rewards_rejected", "rewards/rejected"),
                              ("margins", "rewards/margins"), ("accuracy", "rewards/accuracies"),
                              ("logps_chosen", "logps/chosen"), ("logps_rejected", "logps/rejected")):
        torch.testing.assert_close(torch.tensor(m.values[ours_key], dtype=torch.float64), torch.tensor(logged[trl_key], dtype=torch.float64),
                                   **TOL, msg=ours_key)
    assert abs(m.values["margins"]) > 1e-3 * beta  # the policy is not the reference: a real comparison
