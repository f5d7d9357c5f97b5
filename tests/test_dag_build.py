"""The corpus DAG runner on tiny fake sources (``tests.corpus_kit.fake_sources``): accounting, rejects, groups,
reruns, failures, config errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.dag import build, make_plan
from tests.corpus_kit.fake_sources import REGISTRY, docs_of, make_mirror, read_outputs, write_config


def test_build_accounts_every_record(fake_build):
    root, cfg, outcomes = fake_build
    assert {o.state for o in outcomes} == {"done"}, outcomes
    work = root / "work"
    done = json.loads((work / "alpha/format/_DONE.json").read_text())
    acc = done["accounts"]["alpha"]
    # 3 files x 5 records + 1 invalid JSON line; in = out + dropped + rejected
    assert acc == {"stage": "format", "docs_in": 16, "docs_out": 12, "dropped": {},
                   "rejected": {"empty_text": 3, "invalid_json": 1}}
    assert len(docs_of(work, "alpha")) == 12
    assert {d["metadata"]["source"] for d in docs_of(work, "alpha")} == {"alpha"}
    rejects = [json.loads(line) for p in sorted((work / "alpha/format/_rejects").glob("*.jsonl.gz"))
               for line in gzip.open(p, "rt")]
    assert sorted(r["reason"] for r in rejects) == ["empty_text"] * 3 + ["invalid_json"]
    bad = next(r for r in rejects if r["reason"] == "invalid_json")
    assert bad["raw"].strip() == "{not json" and bad["source"] == "alpha" and "part-0.jsonl:6" in bad["detail"]
    # the download stage lists only files matching allow_patterns, and counts no documents
    listing = json.loads((work / "alpha/download/files.json").read_text())
    assert [f["relpath"] for f in listing["files"]] == [f"data/part-{i}.jsonl" for i in range(3)]
    assert json.loads((work / "alpha/download/_DONE.json").read_text())["accounts"] == {}


def test_group_reads_shared_files_once_and_routes(fake_build):
    root, _, _ = fake_build
    work = root / "work"
    a = json.loads((work / "grp_a/format/_DONE.json").read_text())
    b = json.loads((work / "grp_b/format/_DONE.json").read_text())
    group = json.loads((work / "grp/format/_DONE.json").read_text())
    assert a["accounts"] == {"grp_a": {"stage": "format", "docs_in": 6, "docs_out": 6, "dropped": {},
                                       "rejected": {}}}
    # the unroutable record counts against grp_b (the group's rejects_to), as pile_rest does for the Pile
    assert b["accounts"]["grp_b"] == {"stage": "format", "docs_in": 5, "docs_out": 4, "dropped": {},
                                      "rejected": {"missing_field": 1}}
    assert group["group"]["account"]["docs_in"] == 11
    assert [d["metadata"]["source"] for d in docs_of(work, "grp_a")] == ["grp_a"] * 6
    assert len(json.loads((work / "grp/download/files.json").read_text())["files"]) == 1


def test_group_member_not_selected_is_dropped_with_reason(tmp_path):
    mirror = make_mirror(tmp_path)
    cfg = write_config(tmp_path, mirror, sources='["grp_a"]')
    outcomes = build(cfg, registry=REGISTRY, progress=False)
    assert {o.state for o in outcomes} == {"done"}
    group = json.loads((tmp_path / "work/grp/format/_DONE.json").read_text())
    assert group["accounts"]["grp_a"]["docs_out"] == 6
    assert group["group"]["account"]["dropped"] == {"source_not_selected": 4}
    assert not (tmp_path / "work/grp_b").exists()


def test_rerun_is_cached_and_same_bytes_as_fresh_build(fake_build, tmp_path_factory):
    root, cfg, _ = fake_build
    before = read_outputs(root / "work")
    again = build(cfg, registry=REGISTRY, progress=False)
    assert {o.state for o in again} == {"cached"}
    assert read_outputs(root / "work") == before
    # an independent build of the same inputs gives the same bytes (gzip without timestamps)
    other = tmp_path_factory.mktemp("other")
    mirror = make_mirror(other)
    cfg2 = write_config(other, mirror)
    build(cfg2, registry=REGISTRY, progress=False)
    a, b = read_outputs(root / "work"), read_outputs(other / "work")
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k] != b[k] and not k.endswith(("files.json", "_DONE.json"))]
    assert differing == []  # listings name their absolute mirror folder; _DONE.json their byte counts


def test_config_change_reruns_the_stage(fake_build):
    root, cfg, _ = fake_build
    text = cfg.read_text().replace("tasks = 2", "tasks = 3")
    cfg.write_text(text)
    outcomes = {o.unit: o.state for o in build(cfg, registry=REGISTRY, progress=False)}
    assert outcomes["download/alpha"] == "cached" and outcomes["format/alpha"] == "done"
    assert sorted(p.name for p in (root / "work/alpha/format").glob("*.jsonl.gz")) == [
        "00000.jsonl.gz", "00001.jsonl.gz", "00002.jsonl.gz"]


def test_download_settings_that_do_not_change_files_keep_the_download(fake_build):
    root, cfg, _ = fake_build
    cfg.write_text(cfg.read_text().replace("[download]\n", "[download]\nretries = 9\nmax_workers = 2\n"))
    states = {o.unit: o.state for o in build(cfg, registry=REGISTRY, progress=False)}
    assert set(states.values()) == {"cached"}
    cfg.write_text(cfg.read_text() + '\n[chat_template]\nuser_prefix = "Q: "\n')
    states = {o.unit: o.state for o in build(cfg, registry=REGISTRY, progress=False)}
    assert states["download/alpha"] == "cached" and states["format/alpha"] == "done"


def test_corrupt_file_fails_its_task_others_complete(tmp_path):
    mirror = make_mirror(tmp_path)
    (mirror / "fake/alpha/data/part-1.jsonl").write_bytes(b"")  # empty: a CorruptFileError
    cfg = write_config(tmp_path, mirror)
    load_config(cfg, registry=REGISTRY)
    outcomes = {o.unit: o for o in build(cfg, registry=REGISTRY, progress=False)}
    assert outcomes["format/alpha"].state == "failed"
    (fail,) = outcomes["format/alpha"].failures
    assert fail["rank"] == 1 and "part-1.jsonl" in fail["error"] and "empty" in fail["error"]
    assert Path(fail["log"]).name == "task_00001.log"
    work = tmp_path / "work"
    # the other rank of the same job and every other source finished
    assert (work / "alpha/format/_logs/format/completions/00000").exists()
    assert not (work / "alpha/format/_DONE.json").exists()
    for src in ("beta", "grp_a", "grp_b"):
        assert (work / src / "format/_DONE.json").exists(), src

    # repairing the file and rerunning finishes only what is missing
    (mirror / "fake/alpha/data/part-1.jsonl").write_text(json.dumps({"text": "repaired"}) + "\n")
    again = {o.unit: o.state for o in build(cfg, registry=REGISTRY, progress=False)}
    assert again["format/alpha"] == "done" and again["format/beta"] == "cached"
    acc = json.loads((work / "alpha/format/_DONE.json").read_text())["accounts"]["alpha"]
    # rank 0 (files 0 and 2) was not run again; its stats still count: every record is accounted for
    assert acc["docs_in"] == 6 + 5 + 1 and acc["docs_out"] == 4 + 4 + 1
    assert not list((work / "alpha/format/_logs/format/failures").glob("*.json"))


def test_unknown_source_lists_known_ones(tmp_path):
    cfg = write_config(tmp_path, tmp_path, sources='["alpha", "gamma"]')
    with pytest.raises(ConfigError, match=r"unknown source 'gamma'.*alpha, beta, grp_a, grp_b"):
        load_config(cfg, registry=REGISTRY)


def test_unknown_source_real_registry_lists_known_ones(tmp_path):
    cfg = write_config(tmp_path, tmp_path, sources='["refinedweb", "refinedwebb"]')
    with pytest.raises(ConfigError, match=r"refinedwebb.*refinedweb.*starcoder"):
        load_config(cfg)


@pytest.mark.parametrize("table, key", [("executor", "wrkers = 2"), ("download", "mirror = 'x'"),
                                         ("format", "task = 2")])
def test_unknown_key_is_named(tmp_path, table, key):
    cfg = write_config(tmp_path, tmp_path, extra=f"\n[{table}.x]\n" if False else "")
    text = cfg.read_text().replace(f"[{table}]\n", f"[{table}]\n{key}\n")
    cfg.write_text(text)
    bad = key.split(" ")[0]
    with pytest.raises(ConfigError, match=rf"\[{table}\] unknown key '{bad}'.*did you mean"):
        load_config(cfg, registry=REGISTRY)


def test_unknown_table_and_source_override(tmp_path):
    cfg = write_config(tmp_path, tmp_path, extra="\n[formatt]\ntasks = 1\n")
    with pytest.raises(ConfigError, match=r"unknown table 'formatt'; did you mean 'format'"):
        load_config(cfg, registry=REGISTRY)
    cfg = write_config(tmp_path, tmp_path, extra="\n[sources.alpha]\nstreem = true\n")
    with pytest.raises(ConfigError, match=r"\[sources.alpha\] unknown key 'streem'"):
        load_config(cfg, registry=REGISTRY)
    cfg = write_config(tmp_path, tmp_path, extra="\n[sources.alpha]\ntasks = 'two'\n")
    with pytest.raises(ConfigError, match=r"sources.alpha.tasks = 'two' has the wrong type"):
        load_config(cfg, registry=REGISTRY)


def test_unregistered_stage_lists_registered(tmp_path):
    cfg = write_config(tmp_path, tmp_path)
    cfg.write_text(cfg.read_text().replace('stages = ["download", "format"]', 'stages = ["download", "fromat"]'))
    with pytest.raises(ConfigError, match=r"'fromat', which is not a registered stage; registered: .*download.*format"):
        load_config(cfg, registry=REGISTRY)
    cfg.write_text(cfg.read_text().replace('stages = ["download", "fromat"]', 'stages = ["format"]'))
    with pytest.raises(ConfigError, match=r"runs after 'download'.*add 'download'"):
        load_config(cfg, registry=REGISTRY)


def test_plan_orders_units_and_dependencies(tmp_path):
    cfg = load_config(write_config(tmp_path, tmp_path), registry=REGISTRY)
    plan = make_plan(cfg, REGISTRY)
    ids = [u.id for u in plan.units]
    assert ids == ["download/alpha", "download/beta", "download/grp", "format/alpha", "format/beta", "format/grp"]
    assert plan.unit("format/grp").deps == ["download/grp"]


def test_second_build_on_same_work_dir_is_refused(tmp_path):
    import fcntl
    import os

    from pipeline.dag import BuildError

    mirror = make_mirror(tmp_path)
    cfg = write_config(tmp_path, mirror)
    (tmp_path / "work").mkdir()
    # a build in progress holds this lock
    fd = os.open(tmp_path / "work/.build.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(BuildError, match="another build is using"):
            build(cfg, registry=REGISTRY, progress=False)
    finally:
        os.close(fd)
    assert {o.state for o in build(cfg, registry=REGISTRY, progress=False)} == {"done"}
