"""The fidelity guard: per source, the share each stage removed and by which reason, against a threshold
that warns or fails; on synthetic accounting chains, then inside a real (tiny) build as the fidelity stage."""
import json

import pytest

from pipeline.dag import build
from pipeline.fidelity import FidelityError, FidelityOptions, check, evaluate, over_threshold, table
from tests.test_dag_build import REGISTRY, make_mirror, write_config


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
    with pytest.raises(FidelityError, match=r"pile_arxiv: the build removed 126 of 130 documents \(97%, threshold "
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


def test_summary_text_reads_the_stage_report(tmp_path):
    from types import SimpleNamespace

    from pipeline.stages.fidelity import REPORT, summary_text

    ctx = SimpleNamespace(sources=["pile_arxiv", "oasst"], dir=lambda stage, source=None: tmp_path / stage)
    assert summary_text(ctx) == ""  # before the stage ran
    rows = evaluate({s: CHAINS[s] for s in ctx.sources})
    (tmp_path / "fidelity").mkdir()
    (tmp_path / "fidelity" / REPORT).write_text(json.dumps({"sources": {r.source: r.to_dict() for r in rows}}))
    text = summary_text(ctx)
    assert table(rows) in text and text.count("WARNING fidelity: pile_arxiv") == 1
