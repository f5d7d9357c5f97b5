"""The chat model out of the alignment runs: `trainer export` of an SFT/DPO checkpoint writes the chat template
(`jetmoe_core.chat.CHAT_TEMPLATE`, the one definition the training rows were rendered with) into
tokenizer_config.json, so transformers' `apply_chat_template` + `generate` serve the exported folder with the ids
the model was trained on; a pretraining checkpoint's export has no template unless `--chat` asks for one.
`trainer score --chat` scores the assistant tokens of conversations: its NLL is the masked mean a transformers
model of the export gives.
"""
from __future__ import annotations

import json

import pytest
import torch

from jetmoe_core import chat
from trainer.model import load_checkpoint_weights
from trainer.model.hf import export_main, resolve_checkpoint
from trainer.model.score import main as score_main

CONVERSATIONS = [
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "What is 2 + 3?"},
     {"role": "assistant", "content": "2 + 3 = 5."}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another one?"}, {"role": "assistant", "content": "Green, the colour of grass."}],
]


@pytest.fixture(scope="module")
def chat_export(chat_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("chat_export") / "tiny-chat"
    assert export_main([str(chat_runs[1]), str(out)]) == 0   # the DPO run folder: its newest checkpoint
    return out


def test_export_writes_the_chat_template(chat_export):
    tok_cfg = json.loads((chat_export / "tokenizer_config.json").read_text())
    assert tok_cfg["chat_template"] == chat.CHAT_TEMPLATE
    assert tok_cfg["eos_token"] == tok_cfg["pad_token"] == chat.EOS_TOKEN
    gen = json.loads((chat_export / "generation_config.json").read_text())
    assert gen["pad_token_id"] == gen["eos_token_id"]


def test_apply_chat_template_and_generate_serve_the_export(chat_export, chat_runs):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_export)
    model = AutoModelForCausalLM.from_pretrained(chat_export, dtype=torch.float32).eval()
    prompt = CONVERSATIONS[1][:3]
    ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    # the ids SFT trained on: jetmoe_core.chat's rendering with the corpus tokenizer
    ours = Tokenizer.from_file(str(chat_export / "tokenizer.json")).encode(
        chat.render_text(prompt, add_generation_prompt=True), add_special_tokens=False).ids
    assert ids["input_ids"][0].tolist() == ours
    assert ours[-len(tok(chat.GENERATION_PROMPT, add_special_tokens=False)["input_ids"]):] == \
        tok(chat.GENERATION_PROMPT, add_special_tokens=False)["input_ids"]
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    new = out[0, len(ours):].tolist()
    assert 1 <= len(new) <= 6 and out[0, :len(ours)].tolist() == ours
    # greedy decoding of the export is our checkpoint's argmax, token by token
    mine = load_checkpoint_weights(resolve_checkpoint(chat_runs[1])).eval()
    seq = list(ours)
    with torch.no_grad():
        for t in new:
            assert int(mine(torch.tensor([seq])).logits[0, -1].argmax()) == t
            seq.append(t)
    assert isinstance(tok.decode(new, skip_special_tokens=True), str)


def test_pretraining_export_has_no_template_unless_asked(chat_assets, tmp_path):
    assert export_main([str(chat_assets / "base"), str(tmp_path / "plain")]) == 0
    assert "chat_template" not in json.loads((tmp_path / "plain/tokenizer_config.json").read_text())
    assert export_main([str(chat_assets / "base"), str(tmp_path / "forced"), "--chat"]) == 0
    cfg = json.loads((tmp_path / "forced/tokenizer_config.json").read_text())
    assert cfg["chat_template"] == chat.CHAT_TEMPLATE


def test_score_chat_is_the_masked_nll_of_the_assistant_tokens(chat_export, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in CONVERSATIONS))
    assert score_main([str(chat_export), str(path), "--chat", "--json", "--device", "cpu"]) == 0
    got = json.loads(capsys.readouterr().out)
    tok = AutoTokenizer.from_pretrained(chat_export)
    model = AutoModelForCausalLM.from_pretrained(chat_export, dtype=torch.float32).eval()
    for row, messages in zip(got["documents"], CONVERSATIONS):
        enc = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True,
                                      return_tensors="pt")
        ids, mask = enc["input_ids"], enc["assistant_masks"].bool()
        labels = torch.where(mask, ids, torch.full_like(ids, -100))
        with torch.no_grad():
            want = model(input_ids=ids, labels=labels).loss.item()   # transformers' shifted, masked mean
        assert row["n_predicted"] == int(mask[0, 1:].sum())
        assert row["nll"] == pytest.approx(want, rel=1e-5)


def test_score_chat_names_the_bad_line(chat_export, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATIONS[0]}) + "\n" +
                    json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n")
    assert score_main([str(chat_export), str(path), "--chat", "--json", "--device", "cpu"]) == 1
    assert f"{path}:2: the conversation has no assistant turn" in capsys.readouterr().err
