"""``python -m pipeline inspect``: counts and token statistics that agree with the manifest, decoded
documents that match the source text, and a clear error for an unknown source."""
import json
import re

import pytest

from pipeline.inspect import main


@pytest.fixture()
def corpus(tiny_corpus):
    return tiny_corpus


def test_json_stats_agree_with_manifest(corpus, capsys):
    assert main([str(corpus), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    man = json.loads((corpus / "manifest.json").read_text())
    for name, src in man["sources"].items():
        for split, sp in src["splits"].items():
            st = stats["sources"][name][split]
            assert (st["docs"], st["tokens"]) == (sp["n_docs"], sp["n_tokens"])
            assert st["max"] >= st["p95"] >= st["median"] > 0


def test_source_view_decodes_documents(corpus, capsys):
    assert main([str(corpus), "codea", "--docs", "2", "--chars", "10000"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"codea\s+train", out) and "accounting: format" in out
    assert out.count("--- codea/") == 2
    assert "def " in out and "return total" in out and "</s>" in out  # the text, then the EOS token


def test_unknown_source_is_a_clear_error(corpus, capsys):
    assert main([str(corpus), "nosuch"]) == 2
    assert "known: codea" in capsys.readouterr().err


def test_missing_manifest(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "make corpus" in capsys.readouterr().err
