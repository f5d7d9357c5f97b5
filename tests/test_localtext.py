"""`python -m pipeline.localtext`: the standard library's text as two local sources of the ablation corpus, the
same bytes on every call (and no rewrite, so a build sees nothing changed), a clear error where it cannot write."""
import json
import sys

import pytest

from pipeline.localtext import LOCAL_SOURCES, main, write_local


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    assert main(["--out", str(out)]) == 0
    return out


def test_writes_both_sources_as_jsonl(local, capsys):
    for name, filename in LOCAL_SOURCES.items():
        rows = [json.loads(line) for line in (local / name / filename).read_text().splitlines()]
        assert len(rows) > 100, name
        ids = [r["id"] for r in rows]
        assert len(set(ids)) == len(ids) and all(r["text"].strip() for r in rows), name
        assert not any("/test" in i.split("#")[0] or i.startswith("test") for i in ids), name  # no test suites
    code = [json.loads(line) for line in (local / "stdlib_code/code.jsonl").read_text().splitlines()]
    assert any(r["id"] == "json/decoder.py" and "class JSONDecoder" in r["text"] for r in code)
    docs = (local / "stdlib_docs/docs.jsonl").read_text()
    assert "Deserialize" in docs  # json.loads's docstring
    assert sys.version.split()[0] in (local / "README.md").read_text()


def test_same_bytes_and_no_rewrite(local):
    files = [local / name / f for name, f in LOCAL_SOURCES.items()] + [local / "README.md"]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    info = write_local(local)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert set(info["sources"]) == set(LOCAL_SOURCES) and info["python"] == sys.version.split()[0]


def test_unwritable_folder_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(blocker) in err and err.count("\n") == 1
