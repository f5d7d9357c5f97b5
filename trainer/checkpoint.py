"""Checkpoints: `<run>/checkpoints/step-XXXXXXXX/`, complete or absent, verified before use.

A checkpoint folder holds
  model.safetensors + model_config.json   the full (unsharded) model, readable by `trainer export`
  optimizer.pt                            AdamW state keyed by parameter name (full, unsharded), tensors and
                                          plain values only, so it loads with torch.load(weights_only=True)
  rng.pt                                  every rank's torch / CUDA / numpy / Python RNG states, as tensors
  train_state.json                        step, phase, tokens, loader state, run config, phase_end flag
  tokenizer.json                          the corpus tokenizer the model was trained with
  SHA256SUMS                              `sha256sum -c`-compatible digests of all the above, written last
It is written into `checkpoints/.tmp-step-XXXXXXXX/` and renamed into place (a directory rename is atomic on
POSIX), so a crash leaves either the old set or the new one; a failed write (full disk, read-only folder)
removes the temp folder and raises `jetmoe_core.io.IOFault` (exit 2 with the path, the errno's meaning and
the fix) on every rank. On load the newest folder is verified against
its SHA256SUMS; a corrupt or incomplete one is skipped with a warning naming it, and the previous one used.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)

from jetmoe_core.io import IOFault, sha256_file
from trainer import hooks
from trainer.dist import DistInfo, all_gather_object, broadcast_object
from trainer.writers import install_folder, save_safetensors, save_torch

STEP_RE = re.compile(r"^step-(\d{8})$")
SUMS = "SHA256SUMS"
REQUIRED = ("model.safetensors", "model_config.json", "optimizer.pt", "rng.pt", "train_state.json")


class CheckpointError(RuntimeError):
    """No usable checkpoint where one is needed; the message names the folder and the fix."""


@dataclass
class Found:
    path: Path
    step: int
    state: dict  # train_state.json


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STEP_RE.match(p.name))]
    return sorted(out)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def verify(path: Path) -> str | None:
    """None when every file matches SHA256SUMS, else the reason it does not."""
    sums = path / SUMS
    if not sums.is_file():
        return f"{SUMS} missing (the write did not finish)"
    listed = {}
    for i, line in enumerate(sums.read_text().splitlines(), 1):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            return f"{SUMS} line {i} malformed: {line!r}"
        listed[parts[1].lstrip("*")] = parts[0]
    missing = [f for f in REQUIRED if f not in listed]
    if missing:
        return f"{SUMS} does not list {missing}"
    for name, digest in listed.items():
        f = path / name
        if not f.is_file():
            return f"{name} missing"
        if sha256_file(f) != digest:
            return f"{name} does not match its sha256 in {SUMS} (corrupt or modified)"
    return None


def find_latest(run_dir: Path, warn=warnings.warn) -> Found | None:
    """The newest checkpoint that verifies; each newer one that does not is reported through `warn`."""
    skipped = []
    for step, path in reversed(list_checkpoints(run_dir)):
        reason = verify(path)
        if reason is None:
            state = json.loads((path / "train_state.json").read_text())
            for bad, why in skipped:
                warn(f"checkpoint {bad} is unusable ({why}); resuming from the previous one, {path}")
            return Found(path=path, step=step, state=state)
        skipped.append((path, reason))
    for bad, why in skipped:
        warn(f"checkpoint {bad} is unusable ({why}) and no older valid checkpoint exists")
    return None


# ------------------------------------------------------------------------------------------------ RNG
def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This rank's RNG states as tensors only (weights_only-loadable)."""
    py = random.getstate()  # (version, tuple of 625 ints, gauss_next)
    np_state = np.random.get_state()  # ('MT19937', uint32[624], pos, has_gauss, cached_gaussian)
    out = {
        "torch_cpu": torch.get_rng_state(),
        "python_version": torch.tensor(py[0]),
        "python_state": torch.tensor(py[1], dtype=torch.int64),
        "python_gauss": torch.tensor([float("nan") if py[2] is None else py[2]], dtype=torch.float64),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": torch.tensor([np_state[2], np_state[3]]),
        "numpy_gauss": torch.tensor([np_state[4]], dtype=torch.float64),
    }
    if device.type == "cuda":
        out["torch_cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(s: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(s["torch_cpu"])
    g = float(s["python_gauss"][0])
    random.setstate((int(s["python_version"]), tuple(int(x) for x in s["python_state"].tolist()),
                     None if g != g else g))
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), int(s["numpy_pos"][0]),
                         int(s["numpy_pos"][1]), float(s["numpy_gauss"][0])))
    if device.type == "cuda" and "torch_cuda" in s:
        torch.cuda.set_rng_state(s["torch_cuda"], device)


# ----------------------------------------------------------------------------------------------- save
def save(run_dir: Path, step: int, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         model_config: dict, train_state: dict, tokenizer_path: Path | None, keep_last: int,
         info: DistInfo) -> Path | None:
    """Collective: every rank calls it (FSDP2 gathers the full model and optimizer state to rank 0,
    which writes). Returns the folder on rank 0, None elsewhere."""
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(model, options=opts)
    optim_sd = get_optimizer_state_dict(model, optimizer, options=opts)
    rngs = all_gather_object(rng_state(info.device), info)
    final = step_dir(run_dir, step)
    failure = None
    if info.is_main:
        tmp = final.with_name(f".tmp-{final.name}")
        try:
            _write_folder(tmp, step, model_sd, optim_sd, rngs, model_config, train_state, tokenizer_path)
            install_folder(tmp, final)
            prune(run_dir, keep_last)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            failure = IOFault.from_os_error(
                e, "writing", e.filename or tmp,
                then=f"checkpoint {final.name} was not saved and nothing half-written is left; run the same "
                     f"command again to resume from the last complete checkpoint")
    # Every rank learns whether rank 0's write worked, so none waits on a rank that stopped.
    failure = broadcast_object(failure, info)
    if failure is not None:
        raise failure
    return final if info.is_main else None


def _write_folder(tmp: Path, step: int, model_sd: dict, optim_sd: dict, rngs: list, model_config: dict,
                  train_state: dict, tokenizer_path: Path | None) -> None:
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    # One metadata key only: safetensors writes its metadata map in hash order, so two keys would make
    # the same weights produce different bytes from run to run.
    save_safetensors({k: v.contiguous() for k, v in model_sd.items()}, tmp / "model.safetensors", {"format": "pt"})
    hooks.HOOKS.in_checkpoint(step, "model.safetensors")
    (tmp / "model_config.json").write_text(json.dumps(model_config, indent=2, sort_keys=True) + "\n")
    save_torch(optim_sd, tmp / "optimizer.pt")
    hooks.HOOKS.in_checkpoint(step, "optimizer.pt")
    save_torch({f"rank{r}": s for r, s in enumerate(rngs)}, tmp / "rng.pt")
    (tmp / "train_state.json").write_text(json.dumps(train_state, indent=1, sort_keys=True) + "\n")
    if tokenizer_path is not None:
        shutil.copyfile(tokenizer_path, tmp / "tokenizer.json")
    names = sorted(p.name for p in tmp.iterdir() if p.is_file())
    for n in names:
        _fsync_file(tmp / n)
    (tmp / SUMS).write_text("".join(f"{sha256_file(tmp / n)}  {n}\n" for n in names))
    _fsync_file(tmp / SUMS)


def prune(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints; a phase's final checkpoint is kept too, since
    phase 2 starts from phase 1's."""
    ckpts = list_checkpoints(run_dir)
    removed = []
    for step, path in ckpts[:-keep_last] if keep_last > 0 else ckpts:
        try:
            phase_end = json.loads((path / "train_state.json").read_text()).get("phase_end", False)
        except (OSError, json.JSONDecodeError):
            phase_end = False
        if not phase_end:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def clean_stale(run_dir: Path) -> None:
    """Remove half-written folders left by a crash during a save."""
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-step-", ".old-step-")):
                shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- load
def load_into(found: Found, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
              info: DistInfo, restore_rng: bool = True) -> None:
    """Collective: load a verified checkpoint into an (optionally FSDP2-sharded) model and optimizer.
    Rank 0 reads the files and the state is broadcast, so every rank gets identical values."""
    path = found.path
    if info.distributed:
        opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        model_sd = load_file(str(path / "model.safetensors")) if info.is_main else {}
        set_model_state_dict(model, model_sd, options=opts)
        if optimizer is not None:
            optim_sd = torch.load(path / "optimizer.pt", weights_only=True) if info.is_main else {}
            set_optimizer_state_dict(model, optimizer, optim_state_dict=optim_sd, options=opts)
    else:
        model_sd = load_file(str(path / "model.safetensors"))
        missing, unexpected = model.load_state_dict(model_sd, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path}/model.safetensors does not fit the model: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}; was it written for another model config?")
        if optimizer is not None:
            optim_sd = torch.load(path / "optimizer.pt", weights_only=True)
            set_optimizer_state_dict(model, optimizer, optim_state_dict=optim_sd,
                                     options=StateDictOptions(full_state_dict=True))
    if optimizer is not None:
        # The state-dict round trip hands tuples back as lists (AdamW's betas): make them what the optimizer
        # built, so a resumed run saves the same optimizer.pt bytes as one that never stopped.
        for group in optimizer.param_groups:
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
    if restore_rng:
        rngs = torch.load(path / "rng.pt", weights_only=True)
        key = f"rank{info.rank}"
        if key in rngs:
            set_rng_state(rngs[key], info.device)
        elif info.is_main:
            warnings.warn(f"{path}/rng.pt has no state for {key} (saved with {len(rngs)} ranks); "
                          "RNG streams restart from the seed on the new ranks")


def decide_latest(run_dir: Path, info: DistInfo, warn=warnings.warn) -> Found | None:
    """Rank 0 verifies and picks; every rank gets the same answer."""
    found = find_latest(run_dir, warn=warn) if info.is_main else None
    return broadcast_object(found, info)
