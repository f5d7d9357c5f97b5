"""Plans on paper: the wall time, GPU-hours and cost of a phase, and the memory of an FSDP2 run.

Cost: GPU-seconds = tokens × FLOPs/token ÷ (peak × MFU). FLOPs/token is 6 × active parameters by
default, the convention under which the paper's ~14% MFU is quoted (30,000 H100-hours for 1.25T tokens);
`cost.flops_basis = "model"` uses the model's own count including attention instead, with which the
same hardware and time read as a higher MFU. The MFU is the config's assumption until a run has
measured its own on GPUs.

Memory (per GPU, FSDP2 fully sharded over N ranks, AdamW in fp32 with bf16 autocast): parameters,
gradients and the two Adam moments are fp32 and sharded (16 B/param ÷ N); the largest block is gathered
whole (bf16 copy + the next one prefetched); activations are counted per token from the shapes of a
JetMoE block (below), fully or with per-block activation checkpointing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from trainer.config import CostSection, RunConfig

GIB = 1024 ** 3


@dataclass
class PhasePlan:
    phase: int
    tokens: int
    steps: int
    flops_per_token: float
    flops: float
    gpus: int
    gpu: str
    mfu: float
    mfu_source: str
    tokens_per_s_per_gpu: float
    wall_hours: float
    gpu_hours: float
    usd: float
    usd_per_gpu_hour: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def model_flops_per_token(model_cfg, seq_len: int, basis: str) -> float:
    """FLOPs for forward + backward of one token (see the module docstring for the two bases)."""
    from trainer.model import count_params, flops_per_token

    if basis == "6n":
        _, active = count_params(model_cfg)
        return 6.0 * active
    if basis == "model":
        return float(flops_per_token(model_cfg, seq_len))
    raise ValueError(f"cost.flops_basis = {basis!r}: choose '6n' or 'model'")


def plan_phase(phase: int, tokens: int, steps: int, flops_per_token: float, cost: CostSection,
               gpus: int | None = None, measured_mfu: float | None = None) -> PhasePlan:
    gpus = gpus or cost.gpus
    mfu = measured_mfu if measured_mfu else cost.mfu
    per_gpu_flops = cost.peak_tflops * 1e12 * mfu
    flops = tokens * flops_per_token
    gpu_seconds = flops / per_gpu_flops
    gpu_hours = gpu_seconds / 3600.0
    return PhasePlan(phase=phase, tokens=tokens, steps=steps, flops_per_token=flops_per_token, flops=flops,
                     gpus=gpus, gpu=cost.gpu, mfu=mfu, mfu_source="measured" if measured_mfu else "assumed",
                     tokens_per_s_per_gpu=per_gpu_flops / flops_per_token, wall_hours=gpu_hours / gpus,
                     gpu_hours=gpu_hours, usd=gpu_hours * cost.usd_per_gpu_hour,
                     usd_per_gpu_hour=cost.usd_per_gpu_hour)


def plan_run(cfg: RunConfig, model_cfg, measured_mfu: float | None = None, gpus: int | None = None) -> list[PhasePlan]:
    from trainer.optim import phase_steps

    fpt = model_flops_per_token(model_cfg, cfg.data.seq_len, cfg.cost.flops_basis)
    steps = phase_steps(cfg)
    return [plan_phase(p, steps[p] * cfg.train.batch_tokens, steps[p], fpt, cfg.cost, gpus, measured_mfu)
            for p in (1, 2)]


def _si(x: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _hours(h: float) -> str:
    if h >= 48:
        return f"{h / 24:.1f} d"
    if h >= 1:
        return f"{h:.1f} h"
    if h * 60 >= 1:
        return f"{h * 60:.1f} min"
    return f"{h * 3600:.2g} s"


def format_plan(plans: list[PhasePlan], current: int | None = None) -> str:
    head = f"{'phase':<7}{'tokens':>9}{'steps':>9}{'FLOP/tok':>10}{'GPUs':>6}{'MFU':>17}{'tok/s/GPU':>11}" \
           f"{'wall':>10}{'GPU-h':>10}{'cost $':>11}"
    lines = [head, "-" * len(head)]
    for p in plans + ([_total(plans)] if len(plans) > 1 else []):
        mark = "*" if current == p.phase else " "
        name = "total" if p.phase == 0 else f"{p.phase}{mark}"
        lines.append(f"{name:<7}{_si(p.tokens):>9}{p.steps:>9}{_si(p.flops_per_token):>10}{p.gpus:>6}"
                     f"{f'{p.mfu:.1%} {p.mfu_source}':>17}{_si(p.tokens_per_s_per_gpu):>11}"
                     f"{_hours(p.wall_hours):>10}{_num(p.gpu_hours):>10}{_num(p.usd):>11}")
    if plans:
        lines.append(f"({plans[0].gpu} at ${plans[0].usd_per_gpu_hour:.2f}/GPU-hour; GPU-h = FLOP/tok × tokens ÷ "
                     f"(peak × MFU); * = this phase)")
    return "\n".join(lines)


def _total(plans: list[PhasePlan]) -> PhasePlan:
    p0 = plans[0]
    return PhasePlan(phase=0, tokens=sum(p.tokens for p in plans), steps=sum(p.steps for p in plans),
                     flops_per_token=p0.flops_per_token, flops=sum(p.flops for p in plans), gpus=p0.gpus,
                     gpu=p0.gpu, mfu=p0.mfu, mfu_source=p0.mfu_source, tokens_per_s_per_gpu=p0.tokens_per_s_per_gpu,
                     wall_hours=sum(p.wall_hours for p in plans), gpu_hours=sum(p.gpu_hours for p in plans),
                     usd=sum(p.usd for p in plans), usd_per_gpu_hour=p0.usd_per_gpu_hour)


# ---------------------------------------------------------------------------------------------- memory
def activation_elems_per_token(m) -> dict[str, float]:
    """Elements kept for backward per token per block, by where they come from. A bf16 autocast run
    keeps these in 2 bytes; fp32 in 4. Attention is assumed to be a fused SDPA kernel (it keeps the
    output and a log-sum-exp per head, not the seq × seq scores)."""
    d, aw, f = m.d_model, m.attn_width, m.ffn_hidden
    (ea, k), (em, km) = m.experts("attn"), m.experts("mlp")
    attn = (d            # RMSNorm input (residual)
            + d          # normed x (input of kv_proj and the experts' W_q)
            + 2 * aw     # K and V (shared by the attention experts)
            + k * aw     # queries of the top-k attention experts (post-RoPE)
            + k * aw     # attention outputs (inputs of each expert's W_o)
            + ea)        # router logits
    mlp = (d             # RMSNorm input
           + d           # normed x
           + km * d      # routed copies of the token for its top-k experts
           + km * 2 * f  # gate and up projections
           + km * f      # SiLU(gate) · up (input of the down projection)
           + km * d      # expert outputs before the gate-weighted sum
           + em)
    return {"attention": float(attn), "mlp": float(mlp)}


def memory_plan(m, gpus: int, micro_batch: int, seq_len: int, act_checkpoint: bool,
                act_bytes: int = 2, gpu_gib: float = 80.0) -> dict:
    """Per-GPU memory in GiB for one configuration (model config `m`, FSDP2 over `gpus` ranks)."""
    from trainer.model import count_params

    total, active = count_params(m)
    per_block = (total - m.vocab_size * m.d_model) / m.n_layers  # embedding is tied: counted once
    state = 16.0 * total / gpus                      # fp32 params + grads + Adam m, v
    gathered = 2 * 2.0 * per_block                   # bf16 unsharded block + the prefetched next one
    tokens = micro_batch * seq_len
    per_tok = activation_elems_per_token(m)
    block_act = (per_tok["attention"] + per_tok["mlp"]) * act_bytes
    if act_checkpoint:  # keep each block's input; recompute one block's internals at a time in backward
        acts = tokens * (m.n_layers * m.d_model * act_bytes + block_act)
    else:
        acts = tokens * m.n_layers * block_act
    logits = tokens * m.vocab_size * (act_bytes + 4 + 4)  # bf16 logits, fp32 log-softmax and its grad
    sum_bytes = state + gathered + acts + logits
    return {"gpus": gpus, "micro_batch": micro_batch, "seq_len": seq_len, "act_checkpoint": act_checkpoint,
            "params_total": total, "params_active": active,
            "state_gib": state / GIB, "gathered_gib": gathered / GIB, "activations_gib": acts / GIB,
            "logits_gib": logits / GIB, "total_gib": sum_bytes / GIB,
            "fits": sum_bytes / GIB <= 0.9 * gpu_gib}  # 10% for the allocator, NCCL buffers and workspace


def format_memory_plan(rows: list[dict], gpu_gib: float = 80.0) -> str:
    head = f"{'GPUs':>5}{'micro':>7}{'seq':>6}{'ckpt':>6}{'state':>8}{'gather':>8}{'acts':>8}{'logits':>8}" \
           f"{'total':>8}  fits {gpu_gib:.0f} GiB (90%)"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['gpus']:>5}{r['micro_batch']:>7}{r['seq_len']:>6}{'yes' if r['act_checkpoint'] else 'no':>6}"
                     f"{r['state_gib']:>8.1f}{r['gathered_gib']:>8.1f}{r['activations_gib']:>8.1f}"
                     f"{r['logits_gib']:>8.1f}{r['total_gib']:>8.1f}  {'yes' if r['fits'] else 'NO'}")
    lines.append("(GiB per GPU; state = fp32 params + grads + AdamW moments, sharded by FSDP2)")
    return "\n".join(lines)
