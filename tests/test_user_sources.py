"""Your own data in the corpus config, no Python: `[sources.<name>]` with a folder or a hub repo, a format and a
field (pipeline/sources/user.py). A corpus built from a folder of jsonl + parquet + chat files trains with a
mixture that names its sources; bad settings stop the build with the file, the record and the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.dag import build
from pipeline.dag.plan import BuildError, make_plan
from pipeline.dag.runner import preflight
from tests.corpus_kit.user_data import VOCAB, make_user_data, write_user_config
from tests.trainer_kit.runs import MODEL as KIT_MODEL

REPO = Path(__file__).resolve().parents[1]
# the trainer kit's tiny model on the user corpus's vocabulary
MODEL = KIT_MODEL.replace("vocab_size = 512", f"vocab_size = {VOCAB}")
assert f"vocab_size = {VOCAB}" in MODEL


@pytest.mark.slow
def test_a_corpus_from_your_own_folder_trains(tmp_path):
    """jsonl (a nested text field), parquet and a ShareGPT-style chat file → shards → a 4-step run whose
    mixture names the three sources; each bad record is rejected with its reason and counted."""
    root = make_user_data(tmp_path / "mine")
    cfg = write_user_config(tmp_path, root)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "pipeline", "build", str(cfg), "--no-progress"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    manifest = json.loads((tmp_path / "shards/manifest.json").read_text())
    assert sorted(manifest["sources"]) == ["chats", "notes", "pages"]
    fmt = {s: manifest["sources"][s]["accounting"][0] for s in manifest["sources"]}
    assert fmt["notes"]["rejected"] == {"missing_field": 1} and fmt["notes"]["docs_in"] == 41
    assert fmt["pages"]["rejected"] == {"missing_field": 1}       # the null text of the parquet file
    assert fmt["chats"]["rejected"] == {"wrong_type": 1}
    rejects = (tmp_path / "work/notes/format/_rejects").glob("*.jsonl.gz")
    import gzip
    (reject,) = [json.loads(line) for p in rejects for line in gzip.open(p, "rt")]
    assert reject["detail"] == "part-0.jsonl:41: field 'meta.body' missing"
    doc = json.loads(gzip.open(tmp_path / "work/chats/format/00000.jsonl.gz", "rt").readline())
    assert doc["text"].startswith("User: ") and "\n\nAssistant: " in doc["text"]   # the [chat_template]
    note = json.loads(gzip.open(tmp_path / "work/notes/format/00000.jsonl.gz", "rt").readline())
    assert note["id"] == "note-0" and note["metadata"]["meta.lang"] == "en"

    (tmp_path / "model.toml").write_text(MODEL)
    (tmp_path / "mix.toml").write_text('name = "mine"\n[sources]\nnotes = 2\npages = 1\nchats = 1\n')
    from trainer.train import main
    run = tmp_path / "run"
    args = [str(REPO / "trainer/configs/tiny.toml"), "--phase", "1", "--run-dir", str(run),
            f"--model.config={tmp_path / 'model.toml'}", f"--data.corpus={tmp_path / 'shards'}",
            f"--data.phase1_mixture={tmp_path / 'mix.toml'}", f"--data.phase2_mixture={tmp_path / 'mix.toml'}",
            "--data.seq_len=32", "--data.micro_batch=4", "--train.batch_tokens=128", "--train.phase1_tokens=512",
            "--train.phase2_tokens=256", "--schedule.warmup_tokens=128", "--log.progress=false",
            "--log.val_every_steps=100", "--log.tensorboard=false", "--train.threads=1"]
    assert main(args) == 0
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    drawn = {s for r in recs if r["kind"] == "train" for s in r["source_tokens"]}
    assert drawn == {"notes", "pages", "chats"}
    assert {s for r in recs if r["kind"] == "val" for s in r["loss"]} == {"notes", "pages", "chats"}


@pytest.fixture()
def user_config(tmp_path):
    root = make_user_data(tmp_path / "mine", n=3)
    return tmp_path, root, write_user_config(tmp_path, root)


@pytest.mark.parametrize("override,needle", [
    ("--sources.notes.format=jsnl", "sources.notes.format = 'jsnl'; choose one of 'parquet', 'jsonl', 'jsonl.zst', "
                                    "'json.gz', 'json'; did you mean 'jsonl'?"),
    ("--sources.notes.repo_id=me/notes", "give path (a local folder) or repo_id (a hub dataset), one of the two"),
    ("--sources.notes.chat_field=talk", "give text_field (the field holding the text) or chat_field"),
    ("--sources.pages.revision=abc", "revision and stream are for a hub repo_id"),
    ('--corpus.sources=["notes", "pagez"]', "unknown source 'pagez'; did you mean 'pages'?; known sources: "),
    ("--sources.refinedweb.path=data", "[sources.refinedweb] names a recipe source"),
    ("--sources.mine.tasks=2", "unknown source 'mine'"),
])
def test_bad_settings_are_config_errors(user_config, override, needle):
    _, _, cfg = user_config
    with pytest.raises(ConfigError) as e:
        load_config(cfg, overrides=[override])
    assert needle in str(e.value), str(e.value)
    if "unknown source" in needle:
        assert "for data of your own, declare it: [sources.<name>] with path" in str(e.value)


@pytest.mark.parametrize("override,needles", [
    ("--sources.notes.path={root}/nope", ["[sources.notes] path = ", "no such folder", "/nope"]),
    ("--sources.notes.text_field=meta.txt", [
        "[sources.notes] text_field = 'meta.txt': field 'meta.txt' is absent ('meta' has fields: body, lang) in the "
        "first record of {root}/notes/part-0.jsonl:1"]),
    ("--sources.pages.text_field=body", [
        "field 'body' is absent (the record has fields: text, url) in the first record of "
        "{root}/pages/2024/shard-0.parquet#row 0"]),
    ("--sources.notes.allow_patterns=[\"*.csv\"]", ["no file under", "matches allow_patterns ['*.csv']",
                                                     "files there: part-0.jsonl"]),
    ("--sources.chats.id_field=uid", ["id_field = 'uid': field 'uid' is absent (the record has fields: "
                                      "conversation)"]),
])
def test_what_the_data_lacks_stops_the_build_before_it_starts(user_config, override, needles):
    d, root, cfg = user_config
    plan = make_plan(load_config(cfg, overrides=[override.format(root=root)]))
    with pytest.raises(BuildError) as e:
        preflight(plan)
    for needle in needles:
        assert needle.format(root=root) in str(e.value), str(e.value)
    assert not (d / "work").exists()


def test_the_command_line_says_it_in_one_line(user_config):
    d, root, cfg = user_config
    r = subprocess.run([sys.executable, "-m", "pipeline", "build", str(cfg), "--sources.notes.text_field=body"],
                       cwd=d, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error: [sources.notes] text_field = 'body'"), r.stderr
    assert "Traceback" not in r.stderr


def test_a_hub_repo_of_your_own(fake_hub, tmp_path):
    """repo_id + revision + allow_patterns: downloaded like a recipe source; a field missing from a file's first
    record fails that file's format task with the file, the line and the fields it has."""
    server, _ = fake_hub
    make_user_data(server.root / "me/data", n=3)
    sources = f"""
[sources.notes]
repo_id = "me/data"
revision = "main"
allow_patterns = ["notes/*.jsonl"]
format = "jsonl"
text_field = "meta.body"

[download]
endpoint = "{server.url}"
retries = 1
backoff_s = 0.01
"""
    cfg = write_user_config(tmp_path, tmp_path, sources=sources, selected='["notes"]',
                            stages='["download", "format"]')
    out = {o.unit: o for o in build(cfg, progress=False)}
    assert {o.state for o in out.values()} == {"done"}, out
    listing = json.loads((tmp_path / "work/notes/download/files.json").read_text())
    assert listing["mode"] == "hub" and [f["relpath"] for f in listing["files"]] == ["notes/part-0.jsonl"]
    done = json.loads((tmp_path / "work/notes/format/_DONE.json").read_text())
    assert done["accounts"]["notes"]["docs_out"] == 3

    bad = {o.unit: o for o in build(load_config(cfg, overrides=["--sources.notes.text_field=body"]),
                                    progress=False)}
    (fail,) = bad["format/notes"].failures
    assert "text_field = 'body': field 'body' is absent (the record has fields: id, meta) in the first record of " \
           "me/data/notes/part-0.jsonl:1" in fail["error"], fail


def test_a_subset_of_the_sources_is_one_override(user_config):
    """`--corpus.sources='["a", "b"]'` builds a subset: read as a list, and the [sources.<name>] tables of the
    sources left out (jetmoe.toml has several) are checked but not in the way."""
    cfg = load_config(REPO / "pipeline/configs/sample.toml", overrides=['--corpus.sources=["refinedweb", "oasst"]'])
    assert cfg.sources == ["refinedweb", "oasst"]
    cfg = load_config(REPO / "pipeline/configs/jetmoe.toml", overrides=['--corpus.sources=["starcoder"]'])
    assert cfg.sources == ["starcoder"] and cfg.override("starcoder").tasks == 256
    _, _, mine = user_config
    plan = make_plan(load_config(mine, overrides=['--corpus.sources=["notes", "chats"]']))
    assert {u.key for u in plan.units if u.stage == "format"} == {"notes", "chats"}


@pytest.mark.parametrize("fmt", ["jsonl.zst", "json.gz", "json"])
def test_every_file_format_reads_as_your_own(tmp_path, fmt):
    """The formats beside jsonl and parquet (the corpus test's): zstd and gzip JSON Lines, and a JSON array;
    documents from the configured field, the bad record rejected with its reason, the check before a build
    happy with the first record and naming the field it lacks."""
    import gzip

    import zstandard

    from pipeline.sources.user import check_first_record

    recs = [{"body": f"text number {i}", "n": i} for i in range(3)] + [{"n": 3}]
    folder = tmp_path / "data"
    folder.mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in recs).encode()
    data = {"jsonl.zst": zstandard.ZstdCompressor().compress(lines), "json.gz": gzip.compress(lines, mtime=0),
            "json": json.dumps(recs).encode()}[fmt]
    (folder / f"part.{fmt}").write_bytes(data)
    sources = f'\n[sources.mine]\npath = "{folder}"\nformat = "{fmt}"\ntext_field = "body"\n'
    cfg = load_config(write_user_config(tmp_path, tmp_path, sources=sources, selected='["mine"]'))
    spec = cfg.user_specs["mine"]
    assert check_first_record(spec) is None
    ((path, rel),) = spec.local_files(folder)
    out = list(spec.read(path, relpath=rel))
    assert [d.text for d in out[:3]] == ["text number 0", "text number 1", "text number 2"]
    assert out[3].reason == "missing_field"
    bad = load_config(write_user_config(tmp_path, tmp_path, sources=sources.replace('"body"', '"txt"'),
                                        selected='["mine"]'))
    assert "field 'txt' is absent (the record has fields: body, n)" in check_first_record(bad.user_specs["mine"])


def test_the_policy_tables_name_your_sources(user_config):
    """[filters.policy], [filters.subsets], [dedup.policy] and [fidelity.max_removed_by_source] take a source of
    your own like a recipe source; a misspelt one is named with the closest."""
    d, root, cfg = user_config
    policy = ('\n[filters.policy]\npages = "prose"\n[filters.subsets.notes]\nfield = "meta.lang"\nrules = {de = "web"}\n'
              '[dedup.policy]\nnotes = "exact"\n[fidelity.max_removed_by_source]\nchats = 0.9\n')
    mine = d / "policy.toml"
    mine.write_text(cfg.read_text() + policy)
    c = load_config(mine, overrides=['--sources.notes.family=code'])
    filters, dedup = c.options["filters"], c.options["dedup"]
    assert filters.family("pages", c.user_specs) == "prose" and filters.family("notes", c.user_specs) == "code"
    assert filters.families_of("notes", c.user_specs) == ["code", "web"]
    assert dedup.for_source("notes").minhash is False and c.options["fidelity"].threshold("chats") == 0.9
    mine.write_text(cfg.read_text() + policy.replace("chats = 0.9", "chatz = 0.9"))
    with pytest.raises(ConfigError, match=r"\[fidelity.max_removed_by_source\] names unknown source\(s\) \['chatz'\]; "
                                          r"did you mean 'chats'\?; known: .*, notes, pages, chats; for data of your own"):
        load_config(mine)
