"""The fidelity guard: per source, the share each stage removed and by which reason, against a threshold
that warns or fails; on synthetic accounting chains, then inside real builds: the fidelity stage, the table
in the build's summary (a cached rerun too) and in the manifest, and a failing guard that stops the build
before the tokenizer, the shards and the manifest."""
import json
import re

import pytest

from pipeline.config import load_config
from pipeline.dag import build
from pipeline.dag.cli import build_main
from pipeline.fidelity import FidelityError, FidelityOptions, check, evaluate, over_threshold, render, table
from tests.corpus_kit.fake_sources import (ALL_STAGES, REGISTRY, SMALL_REPOS, make_mirror, small_corpus_config,
                                          write_config)


def rec(stage, docs_in, dropped=None, rejected=None):
    dropped, rejected = dropped or {}, rejected or {}
    return {"stage": stage, "docs_in": docs_in, "docs_out": docs_in - sum(dropped.values()) - sum(rejected.values()),
            "dropped": dropped, "rejected": rejected}


CHAINS = {
    "pile_arxiv": [rec("format", 130), rec("filter", 130, {"gopher_below_alpha_threshold": 112, "gopher_short_doc": 14}),
                   rec("dedup", 4)],
    "templategsm": [rec("format", 151, rejected={"missing_field": 1}), rec("filter", 150),
                    rec("dedup", 150, {"minhash_dup": 110, "exact_dup": 12})],
    "oasst": [rec("format", 34, rejected={"empty_conversation": 1, "invalid_json": 1}), rec("filter", 32)],
    "empty": [rec("format", 0)],
}


def test_shares_per_stage_and_reason():
    rows = {r.source: r for r in evaluate(CHAINS, FidelityOptions(max_removed=0.5))}
    arxiv = rows["pile_arxiv"]
    assert (arxiv.docs_in, arxiv.docs_out, arxiv.removed) == (130, 4, 126)
    assert arxiv.stages["filter"]["reasons"] == {"gopher_below_alpha_threshold": 112, "gopher_short_doc": 14}
    assert arxiv.stages["filter"]["share"] == pytest.approx(126 / 130)
    assert arxiv.top == ("filter", "gopher_below_alpha_threshold", 112) and arxiv.status == "warn"
    tgsm = rows["templategsm"]
    assert tgsm.top_rule == "dedup/minhash_dup" and tgsm.status == "warn"
    assert tgsm.stages["format"]["reasons"] == {"rejected:missing_field": 1}
    assert rows["oasst"].status == "ok" and rows["oasst"].share == pytest.approx(2 / 34)
    assert rows["empty"].status == "ok" and rows["empty"].top is None


def test_threshold_per_source_and_fail_switch():
    opts = FidelityOptions(max_removed=0.5, max_removed_by_source={"templategsm": 0.9}, fail=True)
    rows = {r.source: r for r in evaluate(CHAINS, opts)}
    assert rows["templategsm"].status == "ok" and rows["templategsm"].threshold == 0.9
    assert rows["pile_arxiv"].status == "fail"
    with pytest.raises(FidelityError, match=r"pile_arxiv: the build removed 126 of 130 documents \(96.9%, threshold "
                                            r"50%\); most by filter/gopher_below_alpha_threshold removed 112"):
        check(list(rows.values()))
    check([rows["oasst"], rows["templategsm"]])  # nothing past its threshold: no error


def test_table_and_messages():
    rows = evaluate(CHAINS, FidelityOptions(max_removed=0.5))
    text = table(rows)
    head, _, *lines = text.splitlines()
    assert head.split() == ["source", "docs", "in", "kept", "removed", "format", "filter", "dedup", "top", "rule",
                            "status"]
    arxiv = next(line for line in lines if line.startswith("pile_arxiv"))
    assert "96.9%" in arxiv and "filter/gopher_below_alpha_threshold (86%)" in arxiv and "WARN > 50%" in arxiv
    msgs = over_threshold(rows)
    assert [m.split(":")[0] for m in msgs] == ["pile_arxiv", "templategsm"]
    assert "[filters.policy]" in msgs[0] and "[fidelity.max_removed_by_source] pile_arxiv" in msgs[0]


def test_manifest_entry_is_json():
    row = evaluate({"pile_arxiv": CHAINS["pile_arxiv"]})[0]
    entry = json.loads(json.dumps(row.to_dict()))
    assert entry["top_rule"] == "filter/gopher_below_alpha_threshold" and entry["top_rule_removed"] == 112
    assert entry["stages"]["filter"]["removed"] == 126 and entry["status"] == "warn"


def test_no_records_is_an_error():
    with pytest.raises(ValueError, match="no accounting records"):
        evaluate({"x": []})


STAGES = 'stages = ["download", "format", "filter", "dedup", "dedup_cross", "fidelity"]'


@pytest.mark.parametrize("fail", [False, True])
def test_fidelity_stage_in_a_build(tmp_path, fail):
    """The fake sources' documents are a few words long: the web rules drop every one of them."""
    mirror = make_mirror(tmp_path)
    cfg = write_config(tmp_path, mirror, extra=f"\n[fidelity]\nmax_removed = 0.5\nfail = {str(fail).lower()}\n")
    cfg.write_text(cfg.read_text().replace('stages = ["download", "format"]', STAGES))
    outcomes = {o.unit: o for o in build(cfg, registry=REGISTRY, progress=False)}
    unit = outcomes["fidelity/_corpus"]
    report = tmp_path / "work/_corpus/fidelity/fidelity.json"
    assert report.is_file()
    sources = json.loads(report.read_text())["sources"]
    assert sources["alpha"]["top_rule"] == "filter/gopher_short_doc" and sources["alpha"]["removed_share"] == 1.0
    if fail:
        assert unit.state == "failed"
        assert "alpha: the build removed" in unit.failures[0]["error"]
        assert sources["alpha"]["status"] == "fail"
    else:
        assert unit.state == "done" and sources["alpha"]["status"] == "warn"


def test_report_round_trip_and_manifest_entry_in_the_report_page(tmp_path):
    from trainer.report.data import corpus_table
    from trainer.report.html import write_html

    from pipeline.fidelity import SourceFidelity, manifest_fidelity

    rows = evaluate(CHAINS, FidelityOptions(max_removed=0.5))
    again = [SourceFidelity.from_dict(r.source, json.loads(json.dumps(r.to_dict()))) for r in rows]
    assert table(again) == table(rows)
    entry = manifest_fidelity(rows)
    assert entry["pile_arxiv"] == {"docs_in": 130, "kept": 4, "removed_share": 0.9692, "format_share": 0.0,
                                   "filter_share": 0.9692, "dedup_share": 0.0,
                                   "top_rule": "filter/gopher_below_alpha_threshold", "top_rule_share": 0.8615,
                                   "threshold": 0.5, "status": "warn"}
    manifest = {"corpus": "t", "fidelity": entry,
                "sources": {s: {"accounting": c, "splits": {"train": {"n_docs": c[-1]["docs_out"], "n_tokens": 10}}}
                            for s, c in CHAINS.items() if s != "empty"}}
    page = write_html(tmp_path / "index.html", manifest=manifest, rows=corpus_table(manifest),
                      corpus_dir="shards/t").read_text()
    fid = page.split('<table id="fidelity">', 1)[1].split("</table>", 1)[0]
    assert "filter/gopher_below_alpha_threshold" in fid and fid.count("<tr>") == 1 + len(CHAINS)
    assert "warn" in fid and "threshold" in fid


#: every stage, the guard after the dedup stages
GUARDED = ALL_STAGES[:5] + ["fidelity"] + ALL_STAGES[5:]


def test_summary_prints_the_table_on_a_cached_rerun_as_the_manifest_has_it(tmp_path, capsys):
    cfg = small_corpus_config(tmp_path, stages=GUARDED, extra="\n[fidelity]\nmax_removed = 0.04\n")
    assert build_main([str(cfg), "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert build_main([str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"corpus fake: (\d+) units \(\1 cached\)", out)  # nothing ran
    man = json.loads((tmp_path / "shards/manifest.json").read_text())
    expected = render(evaluate({s: man["sources"][s]["accounting"] for s in SMALL_REPOS},  # config order
                               FidelityOptions(max_removed=0.04)))
    # after the per-source summary, the same rows the manifest carries, on both builds
    assert out.index("TOTAL") < out.index(expected) and expected in first
    assert "WARNING fidelity: oasst_octopack: the build removed 2 of 37 documents (5.4%, threshold 4%)" in out
    assert {s: r["status"] for s, r in man["fidelity"].items()} == {
        "templategsm": "ok", "oasst_octopack": "warn", "magicoder_oss": "ok"}


def test_failing_guard_stops_the_build_before_tokenizer_shards_and_manifest(tmp_path, capsys):
    cfg = small_corpus_config(tmp_path, stages=GUARDED, extra="\n[fidelity]\nmax_removed = 0.04\nfail = true\n")
    assert build_main([str(cfg), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "fidelity/_corpus [fidelity task 0]: sources lost more than [fidelity] allows" in err
    assert "oasst_octopack: the build removed" in err
    assert "skipped because an earlier unit failed: tokenizer/_corpus, shard/" in err and "manifest/_corpus" in err
    assert "FAILED fidelity: oasst_octopack" in out
    assert not (tmp_path / "shards/manifest.json").exists() and not list(tmp_path.glob("shards/**/*.arrow"))
    assert not (tmp_path / "work/_corpus/tokenizer/_DONE.json").exists()

    # a warning instead: the stages after the guard run, the ones before it stay cached
    states = {o.unit: o.state for o in build(load_config(cfg, overrides=["--fidelity.fail=false"]), progress=False)}
    assert states["filter/templategsm"] == "cached" and states["fidelity/_corpus"] == "done"
    assert states["tokenizer/_corpus"] == "done" and states["manifest/_corpus"] == "done"
    # the guard is a gate, not an input: a new threshold reruns it (and the manifest, which shows it), not the
    # tokenizer or the shards
    states = {o.unit: o.state for o in build(load_config(cfg, overrides=["--fidelity.fail=false",
                                                                         "--fidelity.max_removed=0.9"]),
                                             progress=False)}
    assert states["fidelity/_corpus"] == "done" and states["manifest/_corpus"] == "done"
    assert states["tokenizer/_corpus"] == "cached" and states["shard/templategsm"] == "cached"
    man = json.loads((tmp_path / "shards/manifest.json").read_text())
    assert man["fidelity"]["oasst_octopack"] == {**man["fidelity"]["oasst_octopack"], "status": "ok", "threshold": 0.9}

    # the failing guard again, now after a complete build: the manifest of the other settings goes, so no
    # manifest stands for a corpus this config did not pass (the shard parts stay for the next build)
    assert build_main([str(cfg), "--no-progress"]) == 1
    capsys.readouterr()
    assert not (tmp_path / "shards/manifest.json").exists() and list(tmp_path.glob("shards/**/*.arrow"))
