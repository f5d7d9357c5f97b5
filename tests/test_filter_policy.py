"""The per-source filter and dedup policy: each source gets its rule family and its dedup level from the
config, the Pile's subsets theirs, every shipped choice carries its reason, and wrong names are errors."""
import gzip
import json
import re
import tomllib
from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor

from pipeline.accounting import from_datatrove_stats
from pipeline.config import ConfigError, load_config
from pipeline.dag import make_plan, unit_fingerprint
from pipeline.sources import sources_of_kind
from pipeline.stages.base import StageContext
from pipeline.stages.dedup import DedupOptions, DedupStage
from pipeline.stages.filter import (FilterOptions, FilterStage, ProseSanityFilter, docs_reader, docs_writer,
                                    family_filters, source_filters)

REPO = Path(__file__).resolve().parents[1]
#: the shipped pretraining configs (the alignment configs, chat*.toml, hold chat sets only: one family)
CONFIGS = [REPO / "pipeline/configs/sample.toml", REPO / "pipeline/configs/jetmoe.toml"]
PRETRAIN = sources_of_kind("pretrain")
PROSE = ("The history of the river valley is long and varied. Farmers have worked the land there for centuries, "
         "and the towns that grew along the banks traded grain, wool and timber with the coast. In the last "
         "century the railway changed the pattern of that trade, and many of the old mills were closed or turned "
         "into homes. Today the valley is known for its walking paths, its quiet villages and the festivals that "
         "are held in the summer. Visitors often stay for a week to see the sights. The local museum has a "
         "collection of tools that were used by the first settlers of the area.")


def verdict(steps, text, **meta):
    doc = Document(text=text, id="d", metadata=meta)
    for step in steps:
        res = step.filter(doc)
        keep, reason = res if isinstance(res, tuple) else (res, None)
        if not keep:
            return reason
    return "kept"


def _table_lines(text: str, table: str) -> list[str]:
    body = re.split(rf"(?m)^\[{re.escape(table)}\]", text, maxsplit=1)[1]
    return [line for line in body.split("\n[", 1)[0].splitlines()[1:] if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_policy_names_every_source_with_a_reason(path):
    text = path.read_text()
    raw = tomllib.loads(text)
    assert set(raw["filters"]["policy"]) == set(PRETRAIN)
    assert set(raw["dedup"]["policy"]) == set(PRETRAIN)
    for table in ("filters.policy", "dedup.policy"):
        lines = _table_lines(text, table)
        assert len(lines) == len(PRETRAIN)
        for line in lines:  # every choice has a one-line reason
            assert re.match(r'^\w+ = "\w+" +# \S.{15,}', line), f"{path.name} [{table}]: {line!r}"
    cfg = load_config(path)
    assert cfg.options["filters"].families_of("pile_rest") == ["prose", "web", "code"]
    assert cfg.options["dedup"].for_source("templategsm").minhash is False
    assert cfg.options["dedup"].for_source("refinedweb").minhash is True
    assert "fidelity" in cfg.corpus.stages


@pytest.mark.parametrize("text,reason", [
    (PROSE, "kept"),
    ("Too short to be a paper at all.", "prose_too_short"),
    ("word " * 600_000, "prose_too_long"),
    (PROSE.replace("e", "\ufffd", 3), "prose_bad_encoding"),
    (PROSE + "\x00\x01\x02", "prose_control_chars"),
    (PROSE + " Lorem ipsum dolor sit amet.", "prose_boilerplate"),
    ("\n".join([PROSE] + ["Click here to subscribe to our newsletter today."] * 40), "prose_repeated_lines"),
    # what the web rules reject and prose keeps: LaTeX, code, symbols
    ("\\begin{equation} f(x) = \\frac{a}{b} + \\int_0^1 g(t)\\,dt \\end{equation} " * 5 + PROSE, "kept"),
])
def test_prose_rules(text, reason):
    assert verdict(family_filters("prose", FilterOptions()), text) == reason


def test_prose_thresholds_from_config():
    assert ProseSanityFilter(FilterOptions(prose={"min_words": 500}).prose).filter(
        Document(text=PROSE, id="x")) == (False, "prose_too_short")


def test_subsets_route_each_document_to_its_family():
    opts = FilterOptions(policy={"pile_rest": "prose"},
                         subsets={"pile_rest": {"field": "pile_set_name", "rules": {"Pile-CC": "web", "Github": "code"}}})
    steps = source_filters("pile_rest", opts)
    short = "A page of two sentences. It is short but real."
    assert verdict(steps, short, pile_set_name="Pile-CC") == "gopher_short_doc"    # web rules
    assert verdict(steps, short, pile_set_name="FreeLaw") == "prose_too_short"     # the source's family
    minified = "var a=[" + ",".join(["1"] * 600) + "];"
    assert verdict(steps, minified, pile_set_name="Github") == "code_max_line_length"
    assert verdict(steps, minified + " " + PROSE, pile_set_name="PubMed Central") == "kept"


def test_filter_stage_counts_subset_reasons(tmp_path):
    opts = FilterOptions(subsets={"pile_rest": {"field": "pile_set_name", "rules": {"Pile-CC": "web"}}},
                         policy={"pile_rest": "prose"})
    src = tmp_path / "work/pile_rest/format"
    src.mkdir(parents=True)
    docs = [("Pile-CC", "Short web page."), ("Pile-CC", PROSE), ("FreeLaw", "Short ruling."), ("FreeLaw", PROSE)]
    with gzip.open(src / "00000.jsonl.gz", "wt") as f:
        for i, (subset, text) in enumerate(docs):
            f.write(json.dumps({"id": str(i), "text": text, "metadata": {"pile_set_name": subset}}) + "\n")
    ctx = StageContext("t", None, tmp_path / "work", tmp_path / "shards", ["pile_rest"], {"filters": opts})
    stage = FilterStage(ctx, "pile_rest")
    assert stage.version == "v3+prose_v1+web_v1"
    for job in stage.jobs():
        LocalPipelineExecutor(job.pipeline, tasks=job.tasks, workers=1, logging_dir=str(stage.logs_dir(job.name))).run()
    acc = stage.accounts()["pile_rest"].check()
    assert (acc.docs_in, acc.docs_out) == (4, 2)
    assert dict(acc.dropped) == {"gopher_short_doc": 1, "prose_too_short": 1}


def test_dedup_policy_per_source(tmp_path):
    opts = DedupOptions(policy={"templategsm": "exact", "refinedweb": "minhash"}, minhash=False)
    assert opts.for_source("templategsm").minhash is False and opts.for_source("templategsm").exact
    assert opts.for_source("refinedweb").minhash is True
    assert opts.for_source("pile_arxiv") is opts                     # unlisted: the table's defaults
    ctx = StageContext("t", None, tmp_path, tmp_path, ["templategsm"], {"dedup": opts})
    assert [j.name for j in DedupStage(ctx, "templategsm").jobs()] == ["exact_hashes", "dedup"]


def test_a_sources_dedup_level_reruns_that_source_only(tmp_path):
    def fingerprints(level):
        p = _config(tmp_path, f'[dedup.policy]\ntemplategsm = "{level}"\n').read_text()
        (tmp_path / "c.toml").write_text(p.replace('sources = ["refinedweb"]', 'sources = ["refinedweb", "templategsm"]'
                                                                            '\nstages = ["download", "format", "filter",'
                                                                            ' "dedup"]'))
        plan = make_plan(load_config(tmp_path / "c.toml"))
        return {u.id: unit_fingerprint(plan, u, {}) for u in plan.units if u.stage == "dedup"}

    exact, near = fingerprints("exact"), fingerprints("minhash")
    assert exact["dedup/refinedweb"] == near["dedup/refinedweb"]
    assert exact["dedup/templategsm"] != near["dedup/templategsm"]


def _config(tmp_path, body: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text('[corpus]\nname = "t"\nsources = ["refinedweb"]\n' + body)
    return p


@pytest.mark.parametrize("body,match", [
    ('[filters.policy]\nrefinedweb = "webb"\n', r"'webb' is not a rule family; use one of prose, chat, code, web"),
    ('[filters.policy]\nrefinedwebb = "web"\n', r"unknown source\(s\) \['refinedwebb'\]; did you mean 'refinedweb'\?; "
                                                r"known: refinedweb"),
    ('[filters.subsets.pile_rest]\nrules = {x = "web"}\n', r"field: name the metadata key"),
    ('[filters.subsets.pile_rest]\nfield = "f"\nrules = {x = "crawl"}\n', r"'crawl' is not a rule family"),
    ('[dedup.policy]\ntemplategsm = "near"\n', r"templategsm = 'near': use one of exact, minhash"),
    ('[dedup.policy]\ntemplate_gsm = "exact"\n', r"\[dedup.policy\] names unknown source\(s\) \['template_gsm'\]"),
    ('[fidelity]\nmax_removed = 50\n', r"max_removed = 50.*between 0 and 1"),
    ('[fidelity.max_removed_by_source]\nrefined = 0.9\n', r"unknown source\(s\) \['refined'\]"),
])
def test_policy_errors_name_the_key_and_the_fix(tmp_path, body, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_config(tmp_path, body))
