"""The alignment sources: good and bad records of each set, every reject reason counted, the document text that
the shard stage parses back, and the samples' generator."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from datatrove.data import Document

from pipeline.sources import SAMPLES_DIR, Rejected, Row, get_source, sources_of_kind
from pipeline.sources.alignment import (ChatDocumentError, dpo_text, parse_dpo, parse_sft, sft_text)

REPO = Path(__file__).resolve().parents[1]


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def adapt(source: str, record: dict) -> Document | tuple[str, str]:
    """The spec's adapter on one record: the document, or (reason, detail) of its rejection."""
    spec = get_source(source)
    item = next(iter(_read_records(spec, [record])))
    return item if isinstance(item, Document) else (item.reason, item.detail)


def _read_records(spec, records):
    from pipeline.sources.base import BadRecord
    from pipeline.sources.records import raw_excerpt

    for i, rec in enumerate(records):
        row = Row(rec, "data/x.parquet", i, f"data/x.parquet#row {i}")
        try:
            yield spec.adapter(row, spec, None)
        except BadRecord as bad:
            yield Rejected(spec.reject_source_of(rec), bad.reason, bad.detail, raw_excerpt(rec))


GOOD = {"messages": [{"role": "system", "content": "Be brief."}, u(" Hi? "), a("Hello.\n"), u("Bye."), a("Bye!")]}
SFT_BAD = [
    ({}, "missing_field", "field 'messages' missing"),
    ({"messages": None}, "missing_field", "'messages' missing"),
    ({"messages": "user: hi"}, "wrong_type", "field 'messages' is str, expected list"),
    ({"messages": []}, "empty_conversation", "empty list"),
    ({"messages": ["hi"]}, "wrong_type", "'messages[0]' is str"),
    ({"messages": [{"role": "user"}, a("x")]}, "missing_field", "'messages[0].content' missing"),
    ({"messages": [{"role": 1, "content": "x"}, a("y")]}, "wrong_type", "'messages[0].role' is int"),
    ({"messages": [u("x"), {"role": "tool", "content": "{}"}]}, "unknown_role", "messages[1].role is 'tool'"),
    ({"messages": [u("x"), a(" \n ")]}, "empty_turn", "messages[1].content is empty"),
    ({"messages": [u("Use <s>x</s>."), a("ok")]}, "eos_in_text", "messages[0].content holds '</s>'"),
    ({"messages": [u("x"), {"role": "system", "content": "s"}, a("y")]}, "turn_order", "messages[1] is a system"),
    ({"messages": [a("x"), u("y")]}, "turn_order", "must start with the user"),
    ({"messages": [u("x"), u("y"), a("z")]}, "turn_order", "both user messages"),
    ({"messages": [{"role": "system", "content": "s"}, u("y")]}, "no_assistant_turn", "no assistant message"),
]


def test_sft_record_becomes_its_rendered_conversation():
    doc = adapt("sft_systemchat", GOOD)
    assert isinstance(doc, Document) and doc.metadata == {"source": "sft_systemchat", "turns": 5}
    assert doc.text == ("<|system|>\nBe brief.</s>\n<|user|>\nHi?</s>\n<|assistant|>\nHello.</s>\n<|user|>\nBye.</s>\n"
                        "<|assistant|>\nBye!</s>\n")  # contents stripped
    assert parse_sft(doc.text) == [{"role": "system", "content": "Be brief."}, u("Hi?"), a("Hello."), u("Bye."),
                                   a("Bye!")]
    doc = adapt("sft_airoboros", {**GOOD, "id": "abc", "category": "orca"})
    assert doc.id == "abc" and doc.metadata["category"] == "orca"
    doc = adapt("sft_capybara", {**GOOD, "source": "Dove"})
    assert doc.metadata["source"] == "sft_capybara" and doc.metadata["subset"] == "Dove"


@pytest.mark.parametrize("record,reason,detail", SFT_BAD, ids=[f"{r}-{i}" for i, (_, r, _) in enumerate(SFT_BAD)])
def test_sft_bad_records_are_rejected_with_their_reason(record, reason, detail):
    for source in sources_of_kind("sft"):
        got = adapt(source, record)
        assert got[0] == reason and detail in got[1] and "data/x.parquet#row 0" in got[1], (source, got)


PAIR = {"prompt": "What is 2+2?", "prompt_id": "p1", "chosen": [u("What is 2+2?"), a("4")],
        "rejected": [u("What is 2+2?"), a("5")], "score_chosen": 9.0, "score_rejected": 2.0}
DPO_BAD = [
    ({**PAIR, "rejected": None}, "missing_field", "'rejected' missing"),
    ({**PAIR, "prompt": "  "}, "empty_text", "'prompt' is empty"),
    ({**PAIR, "chosen": [u("What is 2+2?"), a("4"), u("ok?")]}, "completion_not_assistant", "'chosen' is a user"),
    ({**PAIR, "rejected": [u("What is 3+3?"), a("5")]}, "prompt_mismatch", "first at message 0"),
    ({**PAIR, "prompt": "What is 3+3?"}, "prompt_mismatch", "field 'prompt' is not the first user message"),
    ({**PAIR, "rejected": [u("What is 2+2?"), a(" 4 ")]}, "identical_completions", "the same text"),
    ({**PAIR, "rejected": [u("What is 2+2?"), {"role": "bot", "content": "5"}]}, "unknown_role", "'bot'"),
    ({**PAIR, "chosen": [u("What is 2+2?"), a("4</s>")]}, "eos_in_text", "chosen[1].content holds"),
    ({**PAIR, "chosen": [a("4")], "rejected": [a("5")]}, "turn_order", "must start with the user"),
]


def test_dpo_pair_becomes_prompt_chosen_rejected():
    doc = adapt("dpo_ultrafeedback", PAIR)
    assert doc.id == "p1" and doc.metadata["score_chosen"] == 9.0
    assert parse_dpo(doc.text) == ([u("What is 2+2?")], "4", "5")
    assert doc.text == "<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n4</s>\n<|rejected|>\n5</s>\n"
    multi = {**PAIR, "chosen": [u("What is 2+2?"), a("4"), u("Sure?"), a("Yes, 4.")],
             "rejected": [u("What is 2+2?"), a("4"), u("Sure?"), a("No, 5.")]}
    assert parse_dpo(adapt("dpo_ultrafeedback", multi).text) == ([u("What is 2+2?"), a("4"), u("Sure?")],
                                                                  "Yes, 4.", "No, 5.")


@pytest.mark.parametrize("record,reason,detail", DPO_BAD, ids=[f"{r}-{i}" for i, (_, r, _) in enumerate(DPO_BAD)])
def test_dpo_bad_pairs_are_rejected_with_their_reason(record, reason, detail):
    got = adapt("dpo_ultrafeedback", record)
    assert got[0] == reason and detail in got[1], got


def test_document_text_round_trip_and_errors():
    msgs = [{"role": "system", "content": "S"}, u("multi\nline <|user|> text"), a("ok")]
    assert parse_sft(sft_text(msgs)) == msgs
    assert parse_dpo(dpo_text(msgs[:2], "yes", "no")) == (msgs[:2], "yes", "no")
    with pytest.raises(ChatDocumentError, match="not a rendered conversation"):
        parse_sft("User: hi\n\nAssistant: hello")
    with pytest.raises(ChatDocumentError, match="rejected"):
        parse_sft(dpo_text(msgs[:2], "yes", "no"))
    with pytest.raises(ChatDocumentError, match="a prompt, the chosen answer"):
        parse_dpo(sft_text(msgs))


# -- the samples -------------------------------------------------------------------------------------------
SAMPLE_REJECTS = {
    "sft_ultrachat": {},
    "sft_airoboros": {"missing_field": 1, "unknown_role": 1, "empty_turn": 1, "turn_order": 1, "eos_in_text": 1},
    "sft_code_feedback": {"empty_conversation": 1, "turn_order": 2, "missing_field": 1},
    "sft_orca_math": {"no_assistant_turn": 1, "empty_turn": 1},
    "sft_systemchat": {"unknown_role": 1, "turn_order": 1},
    "sft_capybara": {"no_assistant_turn": 1},
    "dpo_ultrafeedback": {"prompt_mismatch": 2, "completion_not_assistant": 1, "identical_completions": 1,
                          "missing_field": 1, "eos_in_text": 1},
}


@pytest.mark.parametrize("name", list(SAMPLE_REJECTS))
def test_each_alignment_sample_reads_with_counted_rejects(name):
    spec = get_source(name)
    docs, rejects = [], Counter()
    for path, rel in spec.local_files(SAMPLES_DIR):
        assert rel.startswith("data/train_sft-" if spec.kind == "sft" else "data/train_prefs-")
        for item in spec.read(path, relpath=rel):
            if isinstance(item, Rejected):
                rejects[item.reason] += 1
                assert item.source == name and "#row " in item.detail
            else:
                docs.append(item)
    assert dict(rejects) == SAMPLE_REJECTS[name]
    assert len(docs) >= 25
    parse = parse_sft if spec.kind == "sft" else parse_dpo
    for d in docs:
        parse(d.text)  # every document is a conversation the shard stage can read back
    assert len({d.id for d in docs}) == len(docs)


def test_alignment_samples_regenerate_byte_identical(tmp_path):
    makers = ["sft_airoboros", "sft_code_feedback", "sft_orca_math", "sft_systemchat", "sft_capybara",
              "dpo_ultrafeedback"]
    r = subprocess.run([sys.executable, "-m", "tools.make_samples", "--out", str(tmp_path), "--check", "--only",
                        *makers], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr
    assert len([p for p in tmp_path.rglob("*.parquet")]) == len(makers)


def test_sources_cli_reads_the_alignment_samples():
    """docs/sources.md: python -m pipeline.sources sft_capybara dpo_ultrafeedback."""
    r = subprocess.run([sys.executable, "-m", "pipeline.sources", "sft_capybara", "dpo_ultrafeedback"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith(("sft_", "dpo_"))}
    assert lines["sft_capybara"].split()[1:3] == ["1", "36"] and "no_assistant_turn 1" in lines["sft_capybara"]
    assert "prompt_mismatch 2" in lines["dpo_ultrafeedback"]
