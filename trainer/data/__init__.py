"""Data side of the trainer: corpus reader, mixtures, the blended streaming loader and the plan command.

    from trainer.data import (Corpus, Mixture, load_mixture, MixtureError, BlendedLoader, ValLoader,
                              LoaderStateError, check_tokenizer, plan_mixture)

Reads only what the corpus builder wrote (manifest.json, tokenizer.json, Arrow parts); never imports `pipeline`.
"""
from .corpus import Corpus, CorpusError, PackedStream, check_tokenizer
from .mixture import Group, Mixture, MixtureError, load_mixture, parse_mixture
from .plan import PlanRow, plan_mixture
from .schedule import BlendSchedule

__all__ = ["Corpus", "CorpusError", "PackedStream", "check_tokenizer", "Group", "Mixture", "MixtureError",
           "load_mixture", "parse_mixture", "Batch", "BlendedLoader", "LoaderStateError", "SourceSequences",
           "ValBatch", "ValLoader", "BlendSchedule", "PlanRow", "plan_mixture"]

_LAZY = {"Batch": "loader", "BlendedLoader": "loader", "LoaderStateError": "loader", "SourceSequences": "loader",
         "ValBatch": "val", "ValLoader": "val"}


def __getattr__(name: str):
    # The loaders need torch; importing them lazily keeps `python -m trainer plan` quick to start.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
