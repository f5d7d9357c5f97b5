"""Cross-entropy of a linear output projection without the [tokens, vocab] logits of the whole batch.

    loss = linear_cross_entropy(hidden, weight, labels)       # hidden [N, d], weight [V, d], labels [N]
    # == F.cross_entropy(F.linear(hidden, weight).float(), labels, ignore_index=-100), mean over labels != -100

The tokens are taken in chunks of `chunk_rows`: each chunk's logits are computed (in the autocast dtype
under autocast, as F.linear would), reduced to log-sum-exp and the target logit in fp32, and, when a
gradient is needed, turned at once into that chunk's gradient rows (softmax − one-hot) / n_valid, which
go through the two gradient matmuls; then the chunk's logits are freed. So the largest loss temporary is
one chunk of logits instead of the batch's bf16 logits plus their fp32 copy, log-softmax and gradient
(≈ 10 bytes × tokens × vocab: 5 GiB for 16k tokens of a 32k vocabulary). The matmuls are the ones a
plain forward + backward does (three per chunk), nothing is recomputed, and the backward only scales
the kept gradients by the incoming scalar. Every reduction is a fixed-order sum: deterministic.

Precision: equal to the reference within fp32 rounding in fp32; in bf16 the logits and gradient rows are
rounded to bf16 where the reference rounds them (the weight gradient is summed over chunks in fp32).
liger-kernel's fused linear cross-entropy does the same in Triton; this one needs nothing but torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["linear_cross_entropy", "default_chunk_rows"]

_CHUNK_ELEMS = 1 << 26  # fp32 logits per chunk: 256 MiB


def default_chunk_rows(vocab_size: int) -> int:
    """Rows per chunk so that one chunk of fp32 logits is about 256 MiB (2048 rows for a 32k vocabulary)."""
    return max(1, _CHUNK_ELEMS // vocab_size)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, ignore_index, chunk_rows, grad_enabled):
        n = hidden.shape[0]
        valid_all = labels != ignore_index
        n_valid = valid_all.sum()
        # needs_input_grad says only which inputs require grad, also under no_grad / inference_mode (where
        # forward is not recorded): the gradient rows are made only when backward can run
        need_h = grad_enabled and ctx.needs_input_grad[0]
        need_w = grad_enabled and ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        inv_valid = 1.0 / n_valid.to(torch.float32)
        for s in range(0, n, chunk_rows):
            h = hidden[s:s + chunk_rows]
            lab = labels[s:s + chunk_rows]
            valid = valid_all[s:s + chunk_rows]
            logits = F.linear(h, weight).float()
            safe = torch.where(valid, lab, torch.zeros_like(lab)).unsqueeze(1)
            lse = torch.logsumexp(logits, dim=-1)
            target = logits.gather(1, safe).squeeze(1)
            total = total + torch.where(valid, lse - target, torch.zeros_like(lse)).sum()
            if need_h or need_w:
                # d loss / d logits = (softmax - one_hot) / n_valid on valid rows, 0 on ignored rows
                grad = logits.sub_(lse.unsqueeze(1)).exp_()
                grad.scatter_add_(1, safe, -valid.to(grad.dtype).unsqueeze(1))
                grad.mul_((valid.to(grad.dtype) * inv_valid).unsqueeze(1))
                grad = grad.to(hidden.dtype)
                if need_h:
                    grad_h[s:s + chunk_rows] = grad @ weight
                if need_w:
                    grad_w += (grad.t() @ h).float()
            del logits
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total * inv_valid

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_loss.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_loss).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         ignore_index: int = -100, chunk_rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy (fp32 scalar) of logits = hidden @ weight.T over labels != ignore_index; NaN when
    every label is ignored, as F.cross_entropy. hidden [N, d], weight [V, d], labels [N] int64."""
    if hidden.ndim != 2 or weight.ndim != 2 or labels.shape != hidden.shape[:1]:
        raise ValueError(f"linear_cross_entropy: hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)}, "
                         f"labels {tuple(labels.shape)}; expected [N, d], [V, d], [N]")
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):  # the matmul dtype F.linear would get
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    elif hidden.dtype != weight.dtype:
        raise ValueError(f"linear_cross_entropy: hidden is {hidden.dtype} but weight is {weight.dtype}")
    rows = chunk_rows or default_chunk_rows(weight.shape[0])
    with torch.autocast(device_type, enabled=False):
        return _LinearCrossEntropy.apply(hidden, weight, labels, ignore_index, rows, torch.is_grad_enabled())
