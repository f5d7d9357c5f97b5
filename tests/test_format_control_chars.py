"""Control characters (NUL, ESC, the other C0/C1 controls but TAB, LF, CR) never reach the documents
uncounted: the format stage strips them (counted as normalised), rejects the document or keeps it, by the
policy of the source's family in ``[format.control_chars]``."""
from __future__ import annotations

import gzip
import json

import pytest

from pipeline.accounting import StageAccount
from pipeline.dag import build
from tests.corpus_kit.fake_sources import REGISTRY, docs_of, write_config

TEXTS = ["a clean document", "a NUL\x00inside", "colour \x1b[31mred\x1b[0m and a DEL\x7f", "\x00\x01\x9f  ",
         "tabs\tand\r\nnew lines stay"]


def _build(tmp_path, policy: str | None):
    mirror = tmp_path / "mirror"
    (mirror / "fake/beta/data").mkdir(parents=True)
    (mirror / "fake/beta/data/only.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    extra = f'\n[format.control_chars]\nweb = "{policy}"\n' if policy else ""
    cfg = write_config(tmp_path, mirror, sources='["beta"]', extra=extra)
    assert {o.state for o in build(cfg, registry=REGISTRY, progress=False)} == {"done"}
    done = json.loads((tmp_path / "work/beta/format/_DONE.json").read_text())
    return docs_of(tmp_path / "work", "beta"), done["accounts"]["beta"]


def test_stripped_by_default_and_counted(tmp_path):
    docs, acc = _build(tmp_path, None)
    texts = [d["text"] for d in docs]
    assert texts == ["a clean document", "a NULinside", "colour [31mred[0m and a DEL", "tabs\tand\r\nnew lines stay"]
    assert acc["normalised"] == {"control_chars": 2}
    assert acc["rejected"] == {"control_chars": 1}  # nothing but control characters and blanks
    # the count travels with the account into the manifest's accounting chain
    assert StageAccount.from_dict(acc).to_dict() == acc


def test_reject_policy(tmp_path):
    docs, acc = _build(tmp_path, "reject")
    assert [d["text"] for d in docs] == ["a clean document", "tabs\tand\r\nnew lines stay"]
    assert acc["rejected"] == {"control_chars": 3} and "normalised" not in acc
    rejects = (tmp_path / "work/beta/format/_rejects").glob("*.jsonl.gz")
    details = [json.loads(line)["detail"] for p in rejects for line in gzip.open(p, "rt")]
    assert any("first U+0000 at offset 5" in d and 'web = "reject"' in d for d in details), details


def test_keep_policy(tmp_path):
    docs, acc = _build(tmp_path, "keep")
    assert [d["text"] for d in docs] == TEXTS
    assert acc["rejected"] == {} and "normalised" not in acc


@pytest.mark.parametrize("ch", [chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), *range(127, 160))])
def test_every_control_but_tab_lf_cr(ch):
    from pipeline.stages.control_chars import CONTROL_RE, apply

    assert CONTROL_RE.search(ch) and apply(f"x{ch}y", "strip") == ("stripped", "xy")


def test_text_without_controls_is_untouched():
    from pipeline.stages.control_chars import apply

    assert apply("tab\tlf\ncr\r é ü 中 \u2028", "strip") == ("clean", "tab\tlf\ncr\r é ü 中 \u2028")
