"""The dataset sources of the JetMoE recipe: where each lives on the hub and how a row becomes a document.

The 22 pretraining datasets (kind ``pretrain``) and the 7 alignment sets of the chat model (kind ``sft``: six
conversation sets; ``dpo``: UltraFeedback's preference pairs; ``pipeline.sources.alignment``).

    from pipeline.sources import SOURCES, get_source, input_groups, sources_of_kind, SAMPLES_DIR
    sources_of_kind("pretrain")                                   # the 22, in the project's order
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

from pipeline.sources import alignment, chat_sets, code, web
from pipeline.sources.base import (FAMILIES, FILE_FORMATS, KINDS, BadRecord, CorruptFileError, Rejected, Row,
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
    # the alignment sets: SFT, then DPO
    "sft_ultrachat", "sft_airoboros", "sft_code_feedback", "sft_orca_math", "sft_systemchat", "sft_capybara",
    "dpo_ultrafeedback",
)


def _build() -> dict[str, SourceSpec]:
    all_specs = (*web.SPECS, *code.SPECS, *chat_sets.SPECS, *alignment.SPECS)
    specs = {s.name: s for s in all_specs}
    if set(specs) != set(ORDER) or len(specs) != len(all_specs):
        raise RuntimeError(f"source catalog out of sync: {sorted(set(specs) ^ set(ORDER))}")
    return {name: specs[name] for name in ORDER}


SOURCES: dict[str, SourceSpec] = _build()


def sources_of_kind(*kinds: str) -> list[str]:
    """Names of the sources of these kinds, in catalog order."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"kind {k!r} is not one of {KINDS}")
    return [n for n, s in SOURCES.items() if s.kind in kinds]


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
    "SOURCES", "ORDER", "SAMPLES_DIR", "get_source", "input_groups", "sources_of_kind", "KINDS", "SourceSpec", "Rejected", "Row",
    "BadRecord", "CorruptFileError", "UnknownSourceError", "ChatTemplate", "ChatTemplateError", "FAMILIES",
    "FILE_FORMATS",
]
