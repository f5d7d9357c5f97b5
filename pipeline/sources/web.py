"""Natural-language pretraining sets: RefinedWeb, Dolma peS2o, the Pile (4 sources), OpenWebMath,
UltraTextbooks. Family ``web``: the corpus filters apply their natural-language rules to them."""

from __future__ import annotations

from datatrove.data import Document

from pipeline.sources.base import Row, SourceSpec


def _str_or_none(v) -> str | None:
    return None if v is None else str(v)


# -- RefinedWeb ---------------------------------------------------------------------------------------
def _refinedweb(row: Row, spec: SourceSpec, _t) -> Document:
    # rows have no id column; url is not unique (the web repeats itself), so relpath#row is the id
    return row.doc(spec.name, row.text("content"), url=row.get("url", str, required=False),
                   dump=row.get("dump", str, required=False), segment=row.get("segment", str, required=False),
                   timestamp=_str_or_none(row.data.get("timestamp")))


REFINEDWEB = SourceSpec(
    name="refinedweb", family="web", repo_id="tiiuae/falcon-refinedweb",
    # the final commit of the upload (5534 shards) could not be looked up offline: pin it on first
    # download (huggingface_hub reports the resolved sha) and write it here
    revision="main",
    allow_patterns=("data/train-*.parquet",), file_format="parquet", adapter=_refinedweb,
    required_columns=("content",), optional_columns=("url", "timestamp", "dump", "segment"),
    fields="content, url, timestamp, dump, segment (+ image_urls, unused)",
    description="Falcon RefinedWeb: 600B tokens of filtered, deduplicated CommonCrawl (English).",
    notes="file names data/train-NNNNN-of-05534-<hash>.parquet verified on the hub; revision is the branch.")


# -- Dolma peS2o --------------------------------------------------------------------------------------
def _pes2o(row: Row, spec: SourceSpec, _t) -> Document:
    doc_id = row.get("id", (str, int))
    return row.doc(spec.name, row.text("text"), doc_id, added=row.get("added", str, required=False),
                   created=row.get("created", str, required=False),
                   subset=row.get("source", str, required=False), version=row.get("version", str, required=False))


DOLMA_PES2O = SourceSpec(
    name="dolma_pes2o", family="web", repo_id="allenai/peS2o", revision="main",
    # allenai/dolma's main branch holds only URL lists (the files live on olmo-data.org; the data/peS2o
    # files of its mid-2023 commits were removed); the same peS2o documents are shipped on the hub as
    # allenai/peS2o, v2 being the version Dolma v1.6 includes
    allow_patterns=("data/v2/train-*.json.gz",), file_format="json.gz", config="v2", adapter=_pes2o,
    fields="id, text, added, created, source (s2orc / s2ag), version",
    description="peS2o v2 (the Dolma peS2o subset): ~40M open-access academic papers from S2ORC.",
    notes="layout data/v2/train-NNNNN-of-00020.json.gz (gzipped JSON Lines) and fields from the repo's "
          "loading script; revision is the branch.")


# -- The Pile (one input, four sources) -----------------------------------------------------------------
#: meta.pile_set_name → source; every other subset goes to pile_rest
PILE_ROUTES = {"Wikipedia (en)": "pile_wikipedia", "StackExchange": "pile_stackexchange", "ArXiv": "pile_arxiv"}
PILE_REST = "pile_rest"
#: subsets of the original Pile that the mirror removed (copyright)
PILE_ABSENT = ("Books3", "BookCorpus2", "OpenSubtitles", "YoutubeSubtitles", "OpenWebText2")


def _pile(row: Row, spec: SourceSpec, _t) -> Document:
    meta = row.get("meta", dict)
    name = row.get("pile_set_name", str, obj=meta, path="meta.pile_set_name")
    return row.doc(PILE_ROUTES.get(name, PILE_REST), row.text("text"), pile_set_name=name)


def _pile_reject_route(record: dict) -> str | None:
    """A bad record that still names its subset counts against that subset's source."""
    meta = record.get("meta")
    name = meta.get("pile_set_name") if isinstance(meta, dict) else None
    return PILE_ROUTES.get(name, PILE_REST) if isinstance(name, str) else None


def _pile_spec(name: str, what: str) -> SourceSpec:
    return SourceSpec(
        name=name, family="web", repo_id="monology/pile-uncopyrighted",
        revision="3be90335b66f24456a5d6659d9c8d208c0357119",
        allow_patterns=("train/*.jsonl.zst",), file_format="jsonl.zst", adapter=_pile,
        input_group="pile", rejects_to=PILE_REST, reject_router=_pile_reject_route,
        fields="text, meta.pile_set_name",
        description=f"The Pile ({what}), from the pile-uncopyrighted mirror, routed by meta.pile_set_name.",
        notes="EleutherAI/pile is gone from the hub; this mirror lacks " + ", ".join(PILE_ABSENT) + ".")


PILE_WIKIPEDIA = _pile_spec("pile_wikipedia", "Wikipedia (en)")
PILE_STACKEXCHANGE = _pile_spec("pile_stackexchange", "StackExchange")
PILE_ARXIV = _pile_spec("pile_arxiv", "ArXiv")
PILE_REST_SPEC = _pile_spec("pile_rest", "every other subset")


# -- OpenWebMath --------------------------------------------------------------------------------------
def _openwebmath(row: Row, spec: SourceSpec, _t) -> Document:
    return row.doc(spec.name, row.text("text"), url=row.get("url", str, required=False),
                   date=_str_or_none(row.data.get("date")))


OPENWEBMATH = SourceSpec(
    name="openwebmath", family="web", repo_id="open-web-math/open-web-math", revision="main",
    allow_patterns=("data/train-*.parquet",), file_format="parquet", adapter=_openwebmath,
    required_columns=("text",), optional_columns=("url", "date"),
    fields="url, text, date, metadata (JSON string, unused)",
    description="OpenWebMath: 14.7B tokens of mathematical web pages with LaTeX kept.",
    notes="file names data/train-NNNNN-of-00114-<hash>.parquet verified; revision is the branch.")


# -- UltraTextbooks -----------------------------------------------------------------------------------
def _ultratextbooks(row: Row, spec: SourceSpec, _t) -> Document:
    return row.doc(spec.name, row.text("text"), subset=row.get("source", str, required=False))


ULTRATEXTBOOKS = SourceSpec(
    name="ultratextbooks", family="web", repo_id="Locutusque/UltraTextbooks",
    revision="18438403da80a76c55d8426935689a498b2a1454",
    allow_patterns=("data/train-*.parquet",), file_format="parquet", adapter=_ultratextbooks,
    required_columns=("text",), optional_columns=("source",),
    fields="text (+ source where present)",
    description="UltraTextbooks: synthetic and curated textbook-style text (math, code, science).",
    notes="23 shards data/train-NNNNN-of-00023-<hash>.parquet at the pinned commit (verified); the "
          "'source' column is only documented for UltraTextbooks-2.0, so it is optional here.")

SPECS = (REFINEDWEB, DOLMA_PES2O, PILE_WIKIPEDIA, PILE_STACKEXCHANGE, PILE_ARXIV, PILE_REST_SPEC,
         OPENWEBMATH, ULTRATEXTBOOKS)

__all__ = ["SPECS", "PILE_ROUTES", "PILE_REST", "PILE_ABSENT"]
