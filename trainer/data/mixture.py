"""Mixtures: `mixtures/*.toml` parsed into a typed, validated `Mixture`.

    from trainer.data import Corpus, load_mixture
    mix = load_mixture("mixtures/phase1.toml", Corpus.open("shards/sample"))
    mix.shares   # {"refinedweb": 0.64, ...}: share of the phase's TOKENS per source

What a weight means (docs/mixtures.md, "What a weight means"): a weight is a share of the tokens the phase draws,
a sampling probability by token, not a multiplier of passes. Weights are normalised to sum 1; zero (or
leaving a source out) removes it, and a source the corpus lacks may be listed at weight 0 (so may the
members of a group of weight 0). With `renormalise` (the file's key, or `load_mixture(...,
renormalise=True)` from `trainer plan --renormalise` / `trainer train --data.renormalise=true`) a source with
a positive weight that the corpus lacks, or that has no train tokens, is dropped instead, listed in
`Mixture.dropped`, and the rest is renormalised. A group's weight is split among its members by their train token counts
(`split = "tokens"`, default) or equally (`split = "equal"`).

File format:

    name = "phase1"            # optional, default: the file's stem
    description = "..."        # optional
    max_epochs = 4             # optional: `plan` warns when a source would be repeated more often
    renormalise = false        # optional: true drops the sources the corpus lacks (or that have no train
                               # tokens) and renormalises the rest, instead of stopping with an error
    [sources]                  # source = weight
    refinedweb = 64
    [groups.pile]              # a weight shared by several sources
    weight = 8
    members = ["pile_wikipedia", "pile_stackexchange", "pile_rest"]
    split = "tokens"           # or "equal"
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import Corpus

TOP_KEYS = {"name": "a name for logs", "description": "free text", "max_epochs": "repeat limit for `plan` warnings",
            "renormalise": "true: drop sources the corpus lacks and renormalise the rest",
            "sources": "table of source = weight", "groups": "tables [groups.<name>] with weight, members, split"}
GROUP_KEYS = {"weight": "the group's weight", "members": "list of source names", "split": '"tokens" or "equal"'}
SPLIT_MODES = ("tokens", "equal")
DEFAULT_MAX_EPOCHS = 4.0
#: how to turn on renormalisation, appended to every error about a source the corpus lacks
RENORMALISE_HINT = ("or train on the sources the corpus has: drop the missing ones and renormalise the rest with "
                    "`renormalise = true` in the mixture file (or `--renormalise` for `trainer plan`, "
                    "`--data.renormalise=true` for `trainer train`)")


class MixtureError(ValueError):
    """A mixture file that cannot be used; the message names the file (and line), the key and the fix."""


@dataclass(frozen=True)
class Group:
    """A weight shared by several sources."""

    name: str
    weight: float
    members: tuple[str, ...]
    split: str = "tokens"  # "tokens": by train token count; "equal": same share each


@dataclass(frozen=True)
class Mixture:
    """A validated mixture, resolved against one corpus."""

    name: str
    path: Path
    description: str
    max_epochs: float
    weights: dict[str, float]  # weights given directly under [sources]
    groups: tuple[Group, ...]
    shares: dict[str, float]  # per source after groups, normalised to 1, zero-weight sources absent
    group_of: dict[str, str] = field(default_factory=dict)  # source -> group name, for members of a group
    fingerprint: str = ""  # sha256 of the resolved shares (comments and key order do not change it)
    dropped: dict[str, str] = field(default_factory=dict)  # renormalise: source -> why it was dropped

    def given_weight(self, source: str) -> float:
        """The weight written in the file for this source (its group's weight for a group member)."""
        if source in self.group_of:
            return next(g.weight for g in self.groups if g.name == self.group_of[source])
        return self.weights.get(source, 0.0)


def _line_of(text: str, key: str, section: str | None) -> int | None:
    """Line number of `key = ...` inside [section] (top level when None), else of the section's header.
    tomllib keeps no positions, so this scans the text to point the user at the line."""
    pat = re.compile(r'^\s*["\']?' + re.escape(key) + r'["\']?\s*=')
    cur, header = None, None
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*\[([^\[\]]+)\]", line)
        if m:
            cur = re.sub(r"[\s\"']", "", m.group(1))
            if cur == section:
                header = i
            continue
        if cur == section and pat.match(line):
            return i
    return header


def _number(value, where: str, err) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise err(where, f"must be a number, got {value!r}", "write a non-negative number, e.g. 1.5")
    if not math.isfinite(value):
        raise err(where, f"must be finite, got {value!r}", "write a non-negative number")
    return float(value)


def load_mixture(path, corpus: Corpus, renormalise: bool = False) -> Mixture:
    """Parse and validate a mixture TOML against a corpus. Raises MixtureError (file, line, key, fix).
    ``renormalise`` turns renormalisation on even when the file does not (the file's key turns it on too)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MixtureError(f"{path}: cannot read the mixture file ({e.strerror}); pass an existing .toml, "
                           f"e.g. mixtures/phase1.toml") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MixtureError(f"{path}: not valid TOML: {e}; fix the syntax at that line") from e
    return parse_mixture(data, corpus, path=path, text=text, renormalise=renormalise)


def parse_mixture(data: dict, corpus: Corpus, path: Path | str = "<mixture>", text: str = "",
                  renormalise: bool = False) -> Mixture:
    path = Path(path)
    known = corpus.sources

    def err(where: str, problem: str, fix: str, section: str | None = None):
        key = where.rsplit(".", 1)[-1]
        sec = section if section is not None else (where.rsplit(".", 1)[0] if "." in where else None)
        line = _line_of(text, key, sec) if text else None
        loc = f"{path}:{line}" if line else f"{path}"
        return MixtureError(f"{loc}: key {where!r} {problem}; fix: {fix}")

    for key in data:
        if key not in TOP_KEYS:
            raise err(key, "is not a mixture key", f"use one of {', '.join(TOP_KEYS)} (did you mean "
                      f"{_closest(key, TOP_KEYS)!r}?); per-source weights go under [sources]")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise err("name", f"must be a non-empty string, got {name!r}", 'write e.g. name = "phase1"')
    description = data.get("description", "")
    if not isinstance(description, str):
        raise err("description", "must be a string", "quote the text")
    max_epochs = _number(data.get("max_epochs", DEFAULT_MAX_EPOCHS), "max_epochs", err)
    if max_epochs <= 0:
        raise err("max_epochs", f"must be > 0, got {max_epochs}", "write the number of passes over a source past "
                  "which `plan` warns, e.g. max_epochs = 4")

    renorm = data.get("renormalise", False)
    if not isinstance(renorm, bool):
        raise err("renormalise", f"must be true or false, got {renorm!r}", "write renormalise = true")
    renorm = renorm or renormalise
    dropped: dict[str, str] = {}

    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise err("sources", "must be a table of source = weight", "write [sources] then one `name = weight` a line")
    groups_raw = data.get("groups", {})
    if not isinstance(groups_raw, dict) or any(not isinstance(v, dict) for v in groups_raw.values()):
        raise err("groups", "must hold tables [groups.<name>]", "write [groups.<name>] with weight and members")

    def unknown(src: str, where: str, section: str | None, drop: str):
        return err(where, f"names source {src!r}, which corpus {corpus.name!r} ({corpus.root}) does not have",
                   f"check the spelling, or {drop}, {RENORMALISE_HINT}; the corpus's sources are: "
                   f"{', '.join(known)}", section)

    # A source the corpus lacks is accepted at weight 0 (it draws nothing), so a mixture can list every source
    # of the recipe and still run on a corpus built from some of them.
    weights: dict[str, float] = {}
    for src, w in sources.items():
        where = f"sources.{src}"
        w = _number(w, where, err)
        if w < 0:
            raise err(where, f"is negative ({w})", "weights are shares of tokens: write 0 to drop the source, "
                      "or a positive number")
        if src not in known:
            if w == 0:
                continue
            if renorm:
                dropped[src] = f"weight {w:g}, not in the corpus"
                continue
            raise unknown(src, where, "sources", "set its weight to 0 / remove it")
        weights[src] = w

    groups: list[Group] = []
    group_of: dict[str, str] = {}
    for gname, g in groups_raw.items():
        gw = f"groups.{gname}"
        for key in g:
            if key not in GROUP_KEYS:
                raise err(f"{gw}.{key}", "is not a group key",
                          f"use {', '.join(GROUP_KEYS)} (did you mean {_closest(key, GROUP_KEYS)!r}?)", gw)
        if "weight" not in g:
            raise err(f"{gw}.weight", "is missing", f"add `weight = <number>` under [{gw}]", gw)
        weight = _number(g["weight"], f"{gw}.weight", err)
        if weight < 0:
            raise err(f"{gw}.weight", f"is negative ({weight})", "write 0 to drop the group, or a positive number")
        members = g.get("members")
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise err(f"{gw}.members", f"must be a non-empty list of source names, got {members!r}",
                      'write members = ["source_a", "source_b"]', gw)
        if len(set(members)) != len(members):
            raise err(f"{gw}.members", "lists a source twice", "list each source once", gw)
        split = g.get("split", "tokens")
        if split not in SPLIT_MODES:
            raise err(f"{gw}.split", f"is {split!r}", 'write split = "tokens" (by token count) or "equal"', gw)
        present = [m for m in members if m in known]
        for m in members:
            if m not in known and weight > 0 and renorm:
                dropped[m] = f"group {gname} (weight {weight:g}), not in the corpus"
            elif m not in known and weight > 0:
                raise unknown(m, f"{gw}.members", gw,
                              f"remove it from [{gw}] members, or set the group's weight to 0")
            if m in group_of:
                raise err(f"{gw}.members", f"puts source {m!r} in a second group (it is already in "
                          f"groups.{group_of[m]})", "keep each source in one group", gw)
            if m in weights:
                raise err(f"{gw}.members", f"includes source {m!r}, which also has its own weight under [sources]",
                          f"either remove sources.{m} or take {m!r} out of the group", gw)
            group_of[m] = gname
        if renorm and weight > 0:  # members without train tokens get no share; nothing left drops the group
            empty = [m for m in present if corpus.n_tokens(m) == 0]
            dropped.update({m: f"group {gname} (weight {weight:g}), no train tokens" for m in empty})
            present = [m for m in present if m not in empty]
        groups.append(Group(gname, weight if present or not renorm else 0.0, tuple(present), split))

    raw: dict[str, float] = {s: w for s, w in weights.items() if w > 0}
    if renorm:
        for s in [s for s in raw if corpus.n_tokens(s) == 0]:
            dropped[s] = f"weight {raw.pop(s):g}, no train tokens"
    for g in groups:
        if g.weight == 0:
            continue
        if g.split == "tokens":
            counts = {m: corpus.n_tokens(m) for m in g.members}
            total = sum(counts.values())
            if total == 0:
                raise err(f"groups.{g.name}.members", "has no train tokens in the corpus",
                          f"set the group's weight to 0 or build these sources, {RENORMALISE_HINT}",
                          f"groups.{g.name}")
            parts = {m: g.weight * c / total for m, c in counts.items()}
        else:
            parts = {m: g.weight / len(g.members) for m in g.members}
        raw.update({m: v for m, v in parts.items() if v > 0})

    total = sum(raw.values())
    if total <= 0 and dropped:
        raise MixtureError(f"{path}: renormalise dropped every source with a weight ({', '.join(dropped)}): corpus "
                           f"{corpus.name!r} ({corpus.root}) has none of them; fix: build them, or give weight to "
                           f"sources it has: {', '.join(known)}")
    if total <= 0:
        raise MixtureError(f"{path}: every weight is zero (or no source is listed); fix: give at least one source "
                           f"a positive weight under [sources] or in a group")
    for src in raw:
        if corpus.n_tokens(src) == 0:
            if src in group_of:
                g = f"groups.{group_of[src]}"
                raise err(f"{g}.members", f"gives weight to {src!r}, which has no train tokens in {corpus.root}",
                          f"remove it from [{g}] members, set the group's weight to 0, or rebuild the corpus with "
                          f"that source, {RENORMALISE_HINT}", g)
            raise err(f"sources.{src}", f"gives weight to {src!r}, which has no train tokens in {corpus.root}",
                      f"set its weight to 0 or rebuild the corpus with that source, {RENORMALISE_HINT}")
    shares = {s: raw[s] / total for s in sorted(raw)}
    canon = json.dumps({s: round(v, 15) for s, v in shares.items()}, sort_keys=True)
    return Mixture(name=name, path=path, description=description, max_epochs=max_epochs, weights=weights,
                   groups=tuple(groups), shares=shares, group_of=group_of,
                   fingerprint=hashlib.sha256(canon.encode()).hexdigest(), dropped=dropped)


def describe_renormalisation(mix: Mixture) -> list[str]:
    """What renormalisation did, for the user to read before training: the dropped sources and the new
    shares (empty when nothing was dropped)."""
    if not mix.dropped:
        return []
    gone = "; ".join(f"{s} ({why})" for s, why in mix.dropped.items())
    shares = ", ".join(f"{s} {100 * v:.2f}%" for s, v in sorted(mix.shares.items(), key=lambda kv: -kv[1]))
    return [f"mixture {mix.name} ({mix.path}), renormalised: dropped {len(mix.dropped)} source(s): {gone}",
            f"mixture {mix.name}, new shares: {shares}"]


def _closest(key: str, options) -> str:
    import difflib

    m = difflib.get_close_matches(key, list(options), n=1, cutoff=0.0)
    return m[0] if m else next(iter(options))
