"""The 22 dataset sources of the JetMoE recipe: where each lives on the hub and how a row becomes a document.

    from pipeline.sources import SOURCES, get_source, input_groups, SAMPLES_DIR
    spec = get_source("refinedweb")
    for path, relpath in spec.local_files(SAMPLES_DIR):          # the embedded sample (or a hub snapshot)
        for item in spec.read(path, relpath=relpath):             # Document | Rejected
            ...

Sources sharing an ``input_group`` (the four Pile sources) read the same files once; reading one of
their files yields documents for every member, each with ``metadata["source"]`` set to its member.
Print the table with ``python -m pipeline.sources``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from jetmoe_core.config import did_you_mean

from pipeline.sources import chat_sets, code, web
from pipeline.sources.base import (FAMILIES, FILE_FORMATS, BadRecord, CorruptFileError, Rejected, Row,
                                   SourceSpec, UnknownSourceError)
from pipeline.sources.chat import ChatTemplate, ChatTemplateError

#: the embedded samples: a local mirror laid out as ``<repo_id>/<path in repo>``
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

#: the project's canonical order: pretraining sets first, then math, then the SFT sets
ORDER = (
    "refinedweb", "starcoder", "dolma_pes2o", "pile_wikipedia", "pile_stackexchange", "pile_arxiv", "pile_rest",
    "algebraic_stack", "openwebmath", "stackmathqa", "templategsm", "oasst", "oasst_octopack", "xp3x",
    "commitpackft", "openhermes", "ultratextbooks", "ultrachat", "magicoder_evol", "magicoder_oss",
    "evol_codealpaca", "code290k_sharegpt",
)


def _build() -> dict[str, SourceSpec]:
    specs = {s.name: s for s in (*web.SPECS, *code.SPECS, *chat_sets.SPECS)}
    if set(specs) != set(ORDER) or len(specs) != len(web.SPECS) + len(code.SPECS) + len(chat_sets.SPECS):
        raise RuntimeError(f"source catalog out of sync: {sorted(set(specs) ^ set(ORDER))}")
    return {name: specs[name] for name in ORDER}


SOURCES: dict[str, SourceSpec] = _build()


def get_source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSourceError(f"unknown source {name!r}{did_you_mean(name, SOURCES)}; known sources: "
                                 f"{', '.join(SOURCES)}") from None


def input_groups(names: Iterable[str]) -> dict[str, list[SourceSpec]]:
    """Group key → member specs, in the order the names were given (a group first seen at its first
    member). Every name must be known."""
    groups: dict[str, list[SourceSpec]] = {}
    for name in names:
        spec = get_source(name)
        members = groups.setdefault(spec.input_group, [])
        if spec not in members:
            members.append(spec)
    return groups


__all__ = [
    "SOURCES", "ORDER", "SAMPLES_DIR", "get_source", "input_groups", "SourceSpec", "Rejected", "Row",
    "BadRecord", "CorruptFileError", "UnknownSourceError", "ChatTemplate", "ChatTemplateError", "FAMILIES",
    "FILE_FORMATS",
]
