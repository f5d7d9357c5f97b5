"""Where a training step's time goes: a torch.profiler trace grouped into families.

    with torch.profiler.profile(activities=[...CPU, ...CUDA]) as prof:
        train_step(...)
    groups = group_events(prof.events(), steps=1)
    print(format_groups(groups))       # family, ms per step, share; then the top ops

Families: GEMM, grouped GEMM, attention, permutation (index_select / index_add / gather / scatter / sort /
searchsorted), casts (copy_ / to), optimizer (AdamW, gradient clipping, zeroing), other.

What is counted. With CUDA activity each kernel's duration is counted once, under the innermost operator
that launched it (its `kernels`), so an op and its kernels are never both counted; without device
activity (a CPU profile) each operator's self CPU time is counted. A kernel or op is placed by, in order:
an enclosing optimizer step or attention call (their inner matmuls and copies belong to them); its own
operator name (aten::mm → GEMM, aten::_grouped_mm → grouped GEMM, ...); for kernels whose operator says
nothing (torch.compile's generated Triton kernels, library kernels launched from Python), the kernel name.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["FAMILIES", "family_of", "group_events", "format_groups", "Groups"]

FAMILIES = ("GEMM", "grouped GEMM", "attention", "permutation", "casts", "optimizer", "other")

# Enclosing ops/annotations whose whole subtree belongs to one family (substrings of lower-cased names).
_ENCLOSING = [
    ("optimizer", ("optimizer.step", "optimizer.zero_grad", "_fused_adam", "clip_grad")),
    ("attention", ("scaled_dot_product", "flash_attention", "efficient_attention", "cudnn_attention")),
    ("grouped GEMM", ("grouped_mm",)),
]
# aten operators by exact name (a prefix would put aten::topk under aten::to).
_ATEN = {
    "GEMM": ("mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "_scaled_mm", "addmv", "mv", "dot"),
    "grouped GEMM": ("_grouped_mm", "grouped_mm"),
    "permutation": ("index_select", "index_add_", "index_add", "index", "index_put_", "_index_put_impl_",
                    "gather", "scatter", "scatter_", "scatter_add", "scatter_add_", "sort", "argsort", "topk",
                    "searchsorted", "take", "embedding", "embedding_dense_backward"),
    "casts": ("copy_", "to", "_to_copy", "_copy_from", "_copy_from_and_resize"),
    "optimizer": ("_fused_adamw_", "_fused_adam_"),
}
_ATEN_FAMILY = {f"aten::{op}": fam for fam, ops in _ATEN.items() for op in ops}
_ATEN_PREFIX = [("optimizer", "aten::_foreach_"), ("attention", "aten::_scaled_dot_product"),
                ("attention", "aten::scaled_dot_product"), ("attention", "aten::_flash_attention"),
                ("attention", "aten::_efficient_attention"), ("attention", "aten::_cudnn_attention")]
_OTHER_OPS = [("grouped GEMM", ("grouped_mm", "grouped_gemm", "gmm")), ("attention", ("attention",)),
              ("permutation", ("_permuterows", "_gathertokens", "_combine"))]  # trainer.model.moe's Functions
# Kernel names, for kernels whose op says nothing (torch.compile's Triton kernels, vendor libraries).
_KERNELS = [
    ("grouped GEMM", ("grouped", "gmm", "groupproblemshape", "ptrarray")),
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("GEMM", ("gemm", "nvjet", "xmma", "cutlass", "wmma", "triton_tem_fused_mm", "triton_tem_fused_addmm")),
    ("optimizer", ("adam", "multi_tensor_apply")),
    ("permutation", ("index", "gather", "scatter", "sort", "radix", "searchsorted")),
    ("casts", ("to_copy", "convert_element_type", "copy_kernel")),
]


def _match(name: str, table) -> str | None:
    n = name.lower()
    for fam, keys in table:
        if any(k in n for k in keys):
            return fam
    return None


def _op_family(op: str) -> str | None:
    if op.startswith("aten::"):
        if op in _ATEN_FAMILY:
            return _ATEN_FAMILY[op]
        for fam, prefix in _ATEN_PREFIX:
            if op.startswith(prefix):
                return fam
        return None
    return _match(op, _OTHER_OPS)


def _triton_family(kernel: str) -> str | None:
    """torch.compile's kernels are named triton_{poi,red,per,tem}_fused_<ops>_<n> after the ops they fuse."""
    m = re.match(r"triton_(poi|red|per|tem)_fused_?(.*?)(_\d+)?$", kernel)
    if not m:
        return None
    kind, ops = m.group(1), m.group(2)
    if kind == "tem":  # a matmul template (max-autotune)
        return "GEMM"
    if any(k in ops for k in ("index", "gather", "scatter", "sort")):
        return "permutation"
    if ops and not re.sub(r"_?(to_copy|clone|copy)_?", "", ops):  # nothing but copies
        return "casts"
    return "other"


def family_of(op: str, kernel: str | None = None, ancestors: tuple[str, ...] = ()) -> str:
    """The family of an op (and of a kernel it launched), given the names of its enclosing ops (outermost
    first)."""
    for a in (*ancestors, op):
        fam = _match(a, _ENCLOSING)
        if fam:
            return fam
    fam = _op_family(op)
    if fam is None and kernel is not None:
        fam = _triton_family(kernel) or _match(kernel, _KERNELS)
    return fam or "other"


@dataclass
class Groups:
    device: str
    """"cuda" (kernel time) or "cpu" (self CPU time of ops)."""
    steps: int
    ms: dict[str, float] = field(default_factory=dict)
    """Per family, milliseconds per step."""
    top: list[tuple[float, int, str, str]] = field(default_factory=list)
    """(ms per step, calls per step, family, name) of the largest ops/kernels."""

    @property
    def total_ms(self) -> float:
        return sum(self.ms.values())

    def shares(self) -> dict[str, float]:
        t = self.total_ms or 1.0
        return {k: v / t for k, v in self.ms.items()}


def _ancestors(evt) -> tuple[str, ...]:
    names = []
    p = getattr(evt, "cpu_parent", None)
    while p is not None:
        names.append(p.name)
        p = getattr(p, "cpu_parent", None)
    return tuple(reversed(names))  # outermost first


def group_events(events, steps: int = 1, top: int = 15) -> Groups:
    """Group `prof.events()` (FunctionEvents; see the module docstring for what is counted)."""
    events = [e for e in events if not getattr(e, "is_async", False)]
    cpu_ops = [e for e in events if str(getattr(e, "device_type", "CPU")).endswith("CPU")]
    has_kernels = any(getattr(e, "kernels", None) for e in cpu_ops)
    ms: dict[str, float] = defaultdict(float)
    rows: dict[tuple[str, str], list] = {}
    for e in cpu_ops:
        anc = _ancestors(e)
        if has_kernels:
            items = [(k.name, k.duration) for k in (e.kernels or [])]
            for kname, us in items:
                fam = family_of(e.name, kname, anc)
                ms[fam] += us / 1e3 / steps
                label = e.name if _op_family(e.name) else kname
                r = rows.setdefault((fam, label[:100]), [0.0, 0])
                r[0] += us / 1e3 / steps
                r[1] += 1
        else:
            us = e.self_cpu_time_total
            if us <= 0:
                continue
            fam = family_of(e.name, None, anc)
            ms[fam] += us / 1e3 / steps
            r = rows.setdefault((fam, e.name[:100]), [0.0, 0])
            r[0] += us / 1e3 / steps
            r[1] += 1
    ranked = sorted(((v[0], round(v[1] / steps), fam, name) for (fam, name), v in rows.items()), reverse=True)
    return Groups(device="cuda" if has_kernels else "cpu", steps=steps,
                  ms={f: ms.get(f, 0.0) for f in FAMILIES}, top=ranked[:top])


def format_groups(g: Groups) -> str:
    what = "GPU kernel time" if g.device == "cuda" else "CPU self time"
    lines = [f"{what} per step: {g.total_ms:.1f} ms (mean of {g.steps} step(s))"]
    shares = g.shares()
    for fam in sorted(FAMILIES, key=lambda f: -g.ms[f]):
        lines.append(f"  {fam:<14} {g.ms[fam]:9.2f} ms  {shares[fam]:6.1%}")
    lines.append("top ops/kernels:")
    for ms_, calls, fam, name in g.top:
        lines.append(f"  {ms_:9.2f} ms  x{calls:<5} {fam:<13} {name}")
    return "\n".join(lines)

