"""The report of the alignment runs: `trainer report --sft --dpo` draws the SFT loss and the DPO reward curves
from the runs' metrics.jsonl and puts them in index.html's Alignment section; a run of the wrong stage is an
error naming the file."""
from __future__ import annotations

from PIL import Image

from trainer.report import main


def test_sft_loss_and_dpo_rewards_are_drawn(chat_runs, tmp_path, capsys):
    sft, dpo = chat_runs
    out = tmp_path / "report"
    assert main(["--sft", str(sft), "--dpo", str(dpo), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sft_loss.png" in printed and "dpo_rewards.png" in printed and "margin" in printed
    for name in ("sft_loss.png", "dpo_rewards.png"):
        with Image.open(out / name) as im:
            assert im.size[0] > 500 and im.size[1] > 300
    page = (out / "index.html").read_text()
    assert '<section id="align">' in page and 'src="sft_loss.png"' in page and 'src="dpo_rewards.png"' in page
    assert '<section id="run">' not in page   # no pretraining run given


def test_wrong_stage_is_named(chat_runs, tmp_path, capsys):
    sft, dpo = chat_runs
    assert main(["--sft", str(dpo), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{dpo / 'metrics.jsonl'} holds dpo steps, not sft" in err
