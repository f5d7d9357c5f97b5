"""`python -m trainer plan`: rows, JSON, the over-max_epochs warning, the plot, bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer_kit.corpus import make_corpus
from trainer.data import Corpus, load_mixture, plan_mixture
from trainer.data.plan import main, parse_tokens

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan")
    root = make_corpus(d / "c", {"web": 4000, "code": 1000, "math_a": 300, "math_b": 100}, vocab=200, mean_doc=20)
    mix = d / "mix.toml"
    mix.write_text('name = "t"\nmax_epochs = 2\n[sources]\nweb = 70\ncode = 20\n'
                   '[groups.math]\nweight = 10\nmembers = ["math_a", "math_b"]\n')
    return root, mix


def test_plan_rows(setup):
    root, path = setup
    corpus = Corpus.open(root)
    rows = {r.source: r for r in plan_mixture(load_mixture(path, corpus), corpus, tokens=10_000)}
    assert rows["web"].share == pytest.approx(0.7) and rows["web"].tokens_drawn == 7000
    assert rows["web"].tokens_available == 4000 and rows["web"].epochs == pytest.approx(1.75)
    assert not rows["web"].over_limit
    assert rows["math_a"].share == pytest.approx(0.075) and rows["math_a"].group == "math"
    assert rows["math_a"].weight == 10 and rows["math_b"].tokens_drawn == 250
    assert rows["math_b"].epochs == pytest.approx(2.5) and rows["math_b"].over_limit
    assert rows["code"].epochs == pytest.approx(2.0) and not rows["code"].over_limit  # the limit itself is fine
    from trainer.data.plan import format_plan

    table = format_plan(list(rows.values()))  # rows only, as the trainer prints it before a phase
    assert table.splitlines()[0].split() == ["source", "group", "weight", "share", "tokens", "drawn", "available",
                                             "epochs"]
    assert "2.500 !" in table


def test_plan_cli_table_and_warning(setup, capsys):
    root, path = setup
    assert main([str(path), "--corpus", str(root), "--tokens", "10K"]) == 0
    out, err = capsys.readouterr()
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:] if ln and not ln.startswith("-")}
    assert lines["web"] == ["web", "-", "70", "70.00%", "7.00K", "4.00K", "1.750"]
    assert lines["math_b"][-2:] == ["2.500", "!"]
    assert lines["total"][1:4] == ["100", "100.00%", "10.00K"]
    assert "math_b would be repeated 2.50 times, over max_epochs = 2" in err and "web" not in err


def test_plan_cli_json_and_plot(setup, capsys, tmp_path):
    root, path = setup
    png = tmp_path / "mix.png"
    assert main([str(path), "--corpus", str(root), "--tokens", "1e4", "--json", "--plot", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"] == 10_000 and data["max_epochs"] == 2
    assert {r["source"]: r["tokens_drawn"] for r in data["rows"]} == {"web": 7000, "code": 2000, "math_a": 750,
                                                                     "math_b": 250}
    assert [w.split()[0] for w in data["warnings"]] == ["math_a", "math_b"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_bad_input(setup, capsys, tmp_path):
    root, path = setup
    assert main([str(path), "--corpus", str(tmp_path / "none"), "--tokens", "5"]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert main([str(path), "--corpus", str(root), "--tokens", "lots"]) == 2
    assert "--tokens 'lots'" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[sources]\nwbe = 1\n")
    assert main([str(bad), "--corpus", str(root), "--tokens", "5"]) == 2
    assert "bad.toml:2" in capsys.readouterr().err


def test_parse_tokens():
    assert parse_tokens("250B") == 250 * 10**9 and parse_tokens("1T") == 10**12
    assert parse_tokens("1e6") == 10**6 and parse_tokens("1.5k") == 1500 and parse_tokens("42") == 42


def test_plan_runs_as_module(setup):
    root, path = setup
    r = subprocess.run([sys.executable, "-m", "trainer", "plan", str(path), "--corpus", str(root), "--tokens", "100"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "mixture t" in r.stdout
