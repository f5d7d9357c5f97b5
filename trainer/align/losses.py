"""The alignment losses as functions of logits and labels, with TRL's definitions.

    lp = token_logps(logits, labels)                 # [B, T] log p(label_t | tokens ≤ t), 0 where IGNORE
    seq = lp.sum(-1)                                 # per-sequence log-probability of its labelled tokens
    losses, r_c, r_r = dpo_sigmoid(pol_c, pol_r, ref_c, ref_r, beta=0.01)

Labels are already shifted (`trainer.align.batches`: label t is the token after input t), so position t's
logits score label t; positions labelled IGNORE (-100) contribute 0.

* SFT: the step's loss is Σ −log p over its trained tokens ÷ the number of trained tokens in the whole step
  (all micro-batches and ranks), which is what TRL's SFTTrainer computes (its per-token loss summed and divided
  by `num_items_in_batch`, the trained tokens of the accumulated batch). The trainer takes that sum from the
  model's own cross-entropy (`out.lm_loss` × trained tokens); nothing here recomputes it.
* DPO (TRL's `loss_type="sigmoid"`, DPO paper eq. 7): with per-sequence sums of log-probabilities over each
  completion (EOS included, prompt excluded) of the policy π and the frozen reference, chosen reward
  r_c = β·(log π_c − log ref_c), rejected r_r = β·(log π_r − log ref_r), and loss −log σ(r_c − r_r), averaged
  over the pairs of the step. TRL logs the rewards, their margin r_c − r_r and the accuracy mean(r_c > r_r).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.align.batches import IGNORE

__all__ = ["token_logps", "sequence_logps", "dpo_sigmoid"]


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, T] fp32 log-probabilities of the labels (0 at IGNORE), from [B, T, V] logits."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
    return -nll


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] sum over each row's labelled tokens of their log-probability."""
    return token_logps(logits, labels).sum(-1)


def dpo_sigmoid(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair loss, chosen reward, rejected reward); the rewards are detached, as TRL logs them."""
    chosen_logratios = policy_chosen - ref_chosen
    rejected_logratios = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()
