"""Run logs: `<run>/metrics.jsonl` (one JSON object a line, `kind` = "train" | "val" | "event") and
TensorBoard events in `<run>/tb/` when tensorboard is installed.

On resume the log is cut back to the checkpoint's step (rewritten atomically), so that a run that was
killed and resumed logs each step once and reads exactly like an uninterrupted one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from jetmoe_core.io import IOFault, write_text_atomic

# Dense bf16 peaks (TFLOP/s) for MFU; sparse figures would halve the MFU's meaning (see OLMo-core PR 511).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "GH200": 989.0, "A100": 312.0, "L40S": 362.0, "B200": 2250.0}


def device_peak_tflops(name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            # A kill -9 can cut the last line mid-write; anything before it is intact.
            if i == len(lines):
                break
            raise ValueError(f"{path} line {i}: not JSON; delete that line or the run's metrics.jsonl") from None
    return out


def _clean(v):
    """JSON has no NaN/inf: write them as strings so a diverged step is still logged."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


class MetricsLog:
    """Appends one JSON line per record (flushed at once) and mirrors scalars to TensorBoard. A failed write
    (full disk, read-only folder) is an IOFault naming the log; the lines before it stay readable."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: str = "auto", resume_step: int | None = None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = None
        self.f = None
        if not enabled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.truncate(resume_step or 0)
            self.f = open(self.path, "a")
        except OSError as e:
            raise IOFault.from_os_error(e, "writing the metrics log", e.filename or self.path) from None
        if tensorboard != "false":
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step)
            except ImportError:
                if tensorboard == "true":
                    raise RuntimeError("log.tensorboard = true but tensorboard is not installed: "
                                       "pip install tensorboard, or set log.tensorboard = \"auto\"") from None
            except OSError as e:
                raise IOFault.from_os_error(e, "writing TensorBoard events", e.filename or Path(run_dir) / "tb",
                                            then="or set log.tensorboard = \"false\"") from None

    def truncate(self, step: int) -> None:
        """Keep only records of steps <= step (step 0 = a fresh run: start an empty log)."""
        if not self.path.exists():
            return
        keep = [r for r in read_jsonl(self.path) if step and r.get("step", 0) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        try:
            self.f.write(json.dumps(_clean(record)) + "\n")
            self.f.flush()
        except OSError as e:
            self._drop()
            raise IOFault.from_os_error(e, "writing the metrics log", self.path,
                                        then="then run the same command again: training resumes from the last "
                                             "checkpoint and the log is cut back to it") from None
        if self.tb is not None:
            step = record.get("step", 0)
            kind = record.get("kind")
            if kind == "train":
                for k in ("loss", "lm_loss", "load_balance", "z_loss", "lr", "grad_norm", "tokens_per_s", "mfu"):
                    v = record.get(k)
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        self.tb.add_scalar(f"train/{k}", v, step)
            elif kind == "val":
                for src, v in record.get("loss", {}).items():
                    self.tb.add_scalar(f"val/{src}", v, step)
                if "mean" in record:
                    self.tb.add_scalar("val/mean", record["mean"], step)

    def _drop(self) -> None:
        """Close the file after a failed write, dropping what its buffer still holds (the disk refused it)."""
        f, self.f = self.f, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        if not self.enabled:
            return
        if self.f is not None:
            f, self.f = self.f, None
            f.close()
        if self.tb is not None:
            self.tb.close()
