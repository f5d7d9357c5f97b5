"""What a build shows while it runs and what ``status`` shows after: progress inside a unit (documents, text
bytes, percentage) from the tasks' progress files, plain lines without a terminal and no library output on the
console; ``status`` rows that are the build's units, with sizes that mean something and a total line.

No test depends on timing: ``$JETMOE_PROGRESS_INTERVAL=0`` prints a line at every change, and every job's
last poll happens after it ended, so the figures checked are the final ones.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.dag import make_plan, status_rows
from pipeline.dag.display import Display
from pipeline.dag.plan import Unit
from pipeline.dag.progress import INTERVAL_ENV, interval_s, read_job
from pipeline.dag.report import fmt_bytes
from tests.corpus_kit.fake_sources import small_corpus_config

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, interval: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, INTERVAL_ENV: interval}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small real corpus (three sources, every stage, MinHash on) built through the CLI with stderr a pipe."""
    root = tmp_path_factory.mktemp("progress")
    cfg = small_corpus_config(root, minhash=True)
    r = _cli("build", str(cfg))
    assert r.returncode == 0, r.stderr
    return root, cfg, r


def _text_bytes(folder: Path) -> int:
    return sum(len(json.loads(line)["text"].encode()) for p in sorted(folder.glob("*.jsonl.gz"))
               for line in gzip.open(p, "rt"))


def test_progress_lines_without_a_terminal(built):
    root, cfg, r = built
    err = r.stderr
    # plain lines only, and nothing from the libraries: datatrove's MinHash bar, its loguru INFO lines
    assert "\r" not in err and "\x1b[" not in err
    for leak in ("Reading dup files", "it/s]", "| INFO", "| DEBUG", "| SUCCESS", "Traceback"):
        assert leak not in err, leak
    plan = make_plan(load_config(cfg))
    n = len(plan.units)
    lines = err.splitlines()
    assert all(re.match(rf"\[\s*\d+/{n}\] \S+/\S+  ", line) for line in lines), lines
    # every unit ran: one line each, in the plan's order, with its unit id
    done = [re.match(rf"\[\s*(\d+)/{n}\] (\S+)  done in ", line) for line in lines]
    assert [(int(m.group(1)), m.group(2)) for m in done if m] == [(i, u.id) for i, u in enumerate(plan.units, 1)]

    work = root / "work"
    fmt = next(line for line in lines if re.search(r"\] format/templategsm  done in", line))
    account = json.loads((work / "templategsm/format/_DONE.json").read_text())["accounts"]["templategsm"]
    text = _text_bytes(work / "templategsm/format")
    assert f"{account['docs_in']:,} docs in, {account['docs_out']:,} out; {fmt_bytes(text)} of text read" in fmt
    # inside the unit: the filter's progress counts against the format's record, and ends at every document
    filt = [line for line in lines if re.search(r"\] filter/templategsm  \d+%", line)]
    assert filt and filt[-1].split("  ")[1:4] == ["100%", f"{account['docs_out']:,} docs", fmt_bytes(text)], filt
    # MinHash dedup names its job; its bucket job (no documents) counts tasks
    assert any(re.search(r"\] dedup/templategsm  minhash_signatures 2/5  100%", line) for line in lines)
    assert any(re.search(r"\] dedup/templategsm  minhash_buckets 3/5  100%  tasks 14/14$", line) for line in lines)


def test_format_reports_input_bytes_of_the_listing(built):
    root, _, _ = built
    listing = json.loads((root / "work/templategsm/download/files.json").read_text())
    job = read_job(root / "work/templategsm/format/_logs/format", 1)
    assert job.tasks_done == 1 and job.tasks_running == 0
    assert job.input_bytes == sum(f["size"] for f in listing["files"])
    assert job.bytes == _text_bytes(root / "work/templategsm/format")


def test_status_rows_are_the_build_units(built):
    root, cfg, r = built
    plan = make_plan(load_config(cfg))
    rows = status_rows(plan)
    assert [row.unit for row in rows] == [u.id for u in plan.units] and {row.state for row in rows} == {"done"}
    by = {row.unit: row for row in rows}
    shards = root / "shards"
    shard_files = [p for p in (shards / "oasst_octopack").rglob("*") if p.is_file()]
    parts = [p for p in (root / "work/oasst_octopack/shard").rglob("*") if p.is_file() and "_parts" in p.parts]
    assert by["shard/oasst_octopack"].files == len(shard_files) + len(parts)
    assert by["shard/oasst_octopack"].bytes == sum(p.stat().st_size for p in shard_files + parts)
    assert sum(p.stat().st_size for p in shard_files) > 10_000  # the shards, not a 471-byte record
    manifest = [shards / "manifest.json", shards / "tokenizer.json"]
    assert (by["manifest/_corpus"].files, by["manifest/_corpus"].bytes) == (2, sum(p.stat().st_size for p in manifest))
    listing = json.loads((root / "work/templategsm/download/files.json").read_text())["files"]
    assert by["download/templategsm"].bytes == sum(f["size"] for f in listing)

    s = _cli("status", str(cfg))
    assert s.returncode == 0, s.stderr
    table = s.stdout.splitlines()
    ids = [line.split()[0] for line in table[2:2 + len(plan.units)]]
    assert ids == [u.id for u in plan.units]
    assert re.search(rf"total: {len(rows)} units\s+{len(rows)} done\s+(\d+)/\1\s+\d+\s+[\d.]+ KiB", s.stdout), s.stdout
    # a build with everything done prints nothing on stderr, and --no-progress nothing either way
    again = _cli("build", str(cfg), "--no-progress")
    assert again.returncode == 0 and again.stderr == "", again.stderr


# -- the display on its own: progress files written here, polled by hand ----------------------------------------
def _display(tmp_path, *, tty: bool, interval: float, docs_total: int | None = 1000, tasks: int = 2):
    logs = tmp_path / "work/src/filter/_logs/filter"
    (logs / "progress").mkdir(parents=True)
    stage = SimpleNamespace(logs_dir=lambda name: logs, ctx=None)
    job = SimpleNamespace(name="filter", tasks=tasks, pipeline=[])
    unit = Unit("filter", "src")
    out = io.StringIO()
    show = Display(SimpleNamespace(units=[unit] * 12), stream=out, tty=tty, interval=interval)
    show.unit(3, unit)
    state = show.start_job(stage, job, 0, 1)
    state.docs_total = docs_total
    return show, state, logs, out


def _task(logs: Path, rank: int, docs: int, nbytes: int, done: bool = False) -> None:
    (logs / "progress" / f"{rank:05d}.json").write_text(json.dumps({"docs": docs, "bytes": nbytes,
                                                                    "input_bytes": 0, "done": done}))
    if done:
        (logs / "completions").mkdir(exist_ok=True)
        (logs / "completions" / f"{rank:05d}").touch()


def test_lines_sum_the_tasks_and_come_every_tenth(tmp_path):
    show, state, logs, out = _display(tmp_path, tty=False, interval=1e9)  # only the 10 % rule prints
    _task(logs, 0, 50, 1 << 20)
    show.poll(state)
    assert out.getvalue() == ""  # 5 %: not yet a tenth
    _task(logs, 1, 100, 3 << 20)
    show.poll(state)
    show.poll(state)  # nothing changed: no second line
    (line,) = out.getvalue().splitlines()
    assert line.startswith("[ 3/12] filter/src  15%  tasks 0/2  150 docs  4.0 MiB"), line
    _task(logs, 0, 500, 5 << 20, done=True)
    _task(logs, 1, 500, 5 << 20, done=True)
    show.poll(state)
    assert len(out.getvalue().splitlines()) == 1  # the end is the unit's own line, not another tenth
    show.interval = 0  # a line at every change: the end too, without an ETA
    show.poll(state)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("[ 3/12] filter/src  100%  tasks 2/2  1,000 docs  10.0 MiB") and "ETA" not in last


def test_terminal_line_is_redrawn_in_place(tmp_path):
    show, state, logs, out = _display(tmp_path, tty=True, interval=30)
    _task(logs, 0, 250, 1 << 20)
    show.poll(state)
    frame = out.getvalue().rsplit("\r", 1)[-1]
    assert frame.startswith("[ 3/12] filter/src   25%|") and "250 docs  1.0 MiB" in frame and frame.endswith("\x1b[K")
    show.message("a line that stays")  # cleared, written, redrawn
    assert out.getvalue().endswith(frame)


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert interval_s() == 2.5
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(ConfigError, match="JETMOE_PROGRESS_INTERVAL = 'soon'.*a number >= 0"):
        interval_s()


def test_documented_rerun_prints_only_the_units_that_ran(built):
    """docs/corpus.md: `make corpus 2> build.log` after deleting one source's filter and dedup folders."""
    import shutil

    root, cfg, _ = built
    for stage in ("filter", "dedup"):
        shutil.rmtree(root / "work/templategsm" / stage)
    r = _cli("build", str(cfg), interval="30")
    assert r.returncode == 0, r.stderr
    done = re.findall(r"^\[\s*\d+/18\] (\S+)  done in .*$", r.stderr, re.M)
    assert done == ["filter/templategsm", "dedup/templategsm"], r.stderr
    assert "18 units (16 cached, 2 done)" in r.stdout


CHILD = """
import sys
from pipeline.dag import build
from tests.corpus_kit.fake_sources import GATED
build(sys.argv[1], registry=GATED, progress=False)
"""


def test_status_shows_a_running_unit_from_its_tasks_progress(tmp_path):
    """A build held inside a task (another terminal, or Slurm): ``status`` shows the unit running with the
    documents its tasks have read so far, from their progress files."""
    import signal
    import time

    from tests.corpus_kit.fake_sources import GATED, make_mirror, write_config

    mirror = make_mirror(tmp_path)
    part = mirror / "fake/alpha/data/part-1.jsonl"  # rank 1 of alpha's format: two documents, then the gate
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:2]) + json.dumps({"text": "GATE record"}) + "\n" + "".join(lines[2:]))
    cfg = write_config(tmp_path, mirror, tasks=2, executor='kind = "local"\nworkers = 2')
    gate = tmp_path / "gate"
    gate.touch()
    env = {**os.environ, "DAG_TEST_GATE": str(gate), "PYTHONPATH": str(REPO), INTERVAL_ENV: "0"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(cfg)], cwd=REPO, env=env)
    try:
        rank0 = tmp_path / "work/alpha/format/_logs/format/completions/00000"
        deadline = time.monotonic() + 120  # a hang guard only: the test never passes or fails on timing
        while not (Path(f"{gate}.reached").exists() and rank0.exists()):
            assert proc.poll() is None and time.monotonic() < deadline, "the build never reached the gate"
            time.sleep(0.05)
        rows = {r.unit: r for r in status_rows(make_plan(load_config(cfg, registry=GATED), GATED))}
        # rank 0 read part-0 and part-2 (4 documents each), rank 1 two documents of part-1 before the gate
        alpha = rows["format/alpha"]
        assert (alpha.state, alpha.tasks_done, alpha.tasks_total, alpha.docs) == ("running/partial", 1, 2, "~10")
        assert rows["download/alpha"].state == "done" and rows["format/beta"].state == "pending"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_hub_download_shows_bytes_of_the_hubs_total(tmp_path):
    """A download announces the hub's total (``input_total``) and the bytes on disk: the line shows both, a
    percentage and a rate, not a document count it does not have."""
    show, state, logs, out = _display(tmp_path, tty=False, interval=0, docs_total=None, tasks=1)
    (logs / "progress" / "00000.json").write_text(json.dumps({"docs": 0, "bytes": 0, "input_bytes": 3 << 20,
                                                              "input_total": 12 << 20, "done": False}))
    show.poll(state)
    line = out.getvalue().splitlines()[-1]
    assert re.match(r"\[ 3/12\] filter/src  25%  3\.0 MiB of 12\.0 MiB  [\d.]+ \S+/s", line), line
    assert "docs" not in line
