"""Instruction, chat and SFT sets, each rendered to text by the one :class:`ChatTemplate`.

How each set's fields become turns is in every spec's ``rendering`` (docs/sources.md prints
them). All are family ``chat`` except CommitPackFT (family ``code``: its turns are mostly source code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from datatrove.data import Document

from pipeline.sources.base import BadRecord, Rejected, Row, SourceSpec
from pipeline.sources.records import raw_excerpt
from pipeline.sources.chat import ChatTemplate, ChatTemplateError


def _render(row: Row, template: ChatTemplate, turns: list[tuple[str, str]]) -> str:
    try:
        return template.render(turns)
    except ChatTemplateError as e:
        raise BadRecord("unknown_role", f"{row.where}: {e}") from e


def _turn_list(row: Row, field: str, role_key: str, text_key: str) -> list[tuple[str, str]]:
    items = row.get(field, list, nonempty=True)
    turns = []
    for i, item in enumerate(items):
        path = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise BadRecord("wrong_type", f"{row.where}: field '{path}' is {type(item).__name__}, expected object")
        role = row.get(role_key, str, obj=item, path=f"{path}.{role_key}")
        text = row.get(text_key, str, obj=item, path=f"{path}.{text_key}")
        turns.append((role, text))
    if not any(t.strip() for _, t in turns):
        raise BadRecord("empty_text", f"{row.where}: every turn of '{field}' is empty")
    return turns


def _fence(code: str, lang: str | None) -> str:
    return f"```{(lang or '').lower()}\n{code.rstrip()}\n```"


# -- sharegpt-style: conversations [{from, value}] ----------------------------------------------------
def _sharegpt(row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
    turns = _turn_list(row, "conversations", "from", "value")
    doc_id = row.get("id", (str, int), required=False)
    return row.doc(spec.name, _render(row, t, turns), doc_id, subset=row.get("source", str, required=False),
                   category=row.get("category", str, required=False))


OPENHERMES = SourceSpec(
    name="openhermes", family="chat", repo_id="teknium/OpenHermes-2.5",
    revision="b82037821055c377bed0d495e72e46de3bc72e84",
    allow_patterns=("openhermes2_5.json",), file_format="json", adapter=_sharegpt,
    fields="conversations[{from, value, weight}], source, category, id (often null)",
    rendering="conversations: from system → system turn, human → user, gpt → assistant; value is the text",
    description="OpenHermes 2.5: ~1M synthetic instruction/chat samples (GPT-4 generated), ShareGPT layout.",
    notes="one JSON array (1.94 GB), streamed element by element; file name and revision verified, "
          "fields from the card.")

CODE290K = SourceSpec(
    name="code290k_sharegpt", family="chat", repo_id="ajibawa-2023/Code-290k-ShareGPT", revision="main",
    allow_patterns=("Code-290k-ShareGPT.json",), file_format="json", adapter=_sharegpt,
    fields="id, conversations[{from, value}]",
    rendering="conversations: human → user, gpt → assistant",
    description="Code-290k-ShareGPT: 290k code conversations (Python, Java, JavaScript, Go, C++, Rust...).",
    notes="one JSON array, streamed element by element; file name unverified.")


# -- ultrachat_200k: messages [{role, content}] -------------------------------------------------------
def _ultrachat(row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
    turns = _turn_list(row, "messages", "role", "content")
    return row.doc(spec.name, _render(row, t, turns), row.get("prompt_id", str, required=False))


ULTRACHAT = SourceSpec(
    name="ultrachat", family="chat", repo_id="HuggingFaceH4/ultrachat_200k",
    revision="6a1489c88ba570d49cf8a98a02999de5b2356cac",
    config="train_sft", allow_patterns=("data/train_sft-*.parquet",), file_format="parquet", adapter=_ultrachat,
    required_columns=("messages",), optional_columns=("prompt_id",),
    fields="prompt, prompt_id, messages[{role, content}]",
    rendering="messages: role user → user, assistant → assistant (the prompt is messages[0])",
    description="UltraChat 200k (train_sft split): filtered multi-turn UltraChat dialogues.",
    notes="shards data/train_sft-NNNNN-of-00003-<hash>.parquet and revision verified; columns from the card.")


# -- OpenAssistant oasst1: flat message rows → one conversation per tree ---------------------------------
def _oasst_file(records: Iterator[Row | Rejected], spec: SourceSpec, t: ChatTemplate,
                relpath: str) -> Iterator[Document | Rejected]:
    # A tree's messages are rows scattered through the file, so the file's messages are held in memory
    # (the whole of oasst1 is 85k messages, ~100 MB); documents are then emitted in first-seen tree order.
    trees: dict[str, list[dict]] = {}
    for rec in records:
        if isinstance(rec, Rejected):
            yield rec
            continue
        try:
            msg = {
                "id": rec.get("message_id", str), "parent": rec.get("parent_id", str, required=False),
                "tree": rec.get("message_tree_id", str), "role": rec.get("role", str), "text": rec.get("text", str),
                "rank": rec.get("rank", (int, float), required=False), "lang": rec.get("lang", str, required=False),
                "deleted": rec.get("deleted", bool, required=False),
                "review_result": rec.get("review_result", bool, required=False),
                "created": str(rec.data.get("created_date") or ""), "where": rec.where,
            }
        except BadRecord as bad:
            yield Rejected(spec.name, bad.reason, bad.detail, raw_excerpt(rec.data))
            continue
        trees.setdefault(msg["tree"], []).append(msg)
    for tree_id, msgs in trees.items():
        roots = [m for m in msgs if m["parent"] is None]
        if len(roots) != 1:
            yield Rejected(spec.name, "broken_tree",
                           f"{relpath}: message tree {tree_id} has {len(roots)} root messages, expected 1",
                           raw_excerpt({"message_tree_id": tree_id, "messages": len(msgs)}))
            continue
        children: dict[str, list[dict]] = {}
        for m in msgs:
            if m["parent"] is not None and not m["deleted"] and m["review_result"] is not False:
                children.setdefault(m["parent"], []).append(m)
        path = [roots[0]]
        while children.get(path[-1]["id"]):
            # the best-ranked reply (rank 0 = preferred by reviewers); unranked replies after ranked ones,
            # ties broken by creation time then id so the choice never depends on row order
            path.append(min(children[path[-1]["id"]],
                            key=lambda m: (m["rank"] if m["rank"] is not None else float("inf"),
                                           m["created"], m["id"])))
        if path[-1]["role"] != "assistant":
            path.pop()  # a conversation ends on an answer
        if len(path) < 2:
            yield Rejected(spec.name, "empty_conversation",
                           f"{roots[0]['where']}: message tree {tree_id} has no usable assistant reply",
                           raw_excerpt(roots[0]["text"]))
            continue
        text = t.render([(m["role"], m["text"]) for m in path])
        if not text.strip():
            yield Rejected(spec.name, "empty_text", f"{roots[0]['where']}: tree {tree_id} renders empty")
            continue
        meta = {"source": spec.name, "lang": roots[0]["lang"], "turns": len(path)}
        yield Document(text=text, id=tree_id, metadata={k: v for k, v in meta.items() if v is not None})


OASST = SourceSpec(
    name="oasst", family="chat", repo_id="OpenAssistant/oasst1", revision="main",
    allow_patterns=("data/train-*.parquet",), file_format="parquet", file_adapter=_oasst_file,
    required_columns=("message_id", "parent_id", "message_tree_id", "role", "text"),
    optional_columns=("rank", "lang", "deleted", "review_result", "created_date"),
    fields="message_id, parent_id, message_tree_id, role (prompter/assistant), text, rank, lang, deleted, "
           "review_result, created_date",
    rendering="one conversation per message tree: from the root prompt, repeatedly follow the best-ranked "
              "reply (rank 0 first; unranked last; ties by created_date, message_id), skipping deleted or "
              "review-failed messages, until a leaf; a trailing prompter message is dropped. prompter → "
              "user, assistant → assistant. Other branches are not used (they would repeat the prompt).",
    description="OpenAssistant Conversations (oasst1): crowd-sourced message trees in 35 languages.",
    notes="the flat message parquet, data/{train,validation}-00000-of-00001-<hash>.parquet (the validation "
          "file name is verified; the train file's hash in the sample is made up); validation is left out.")


# -- oasst-octopack: conversations [{role, text}] ------------------------------------------------------
def _octopack(row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
    turns = _turn_list(row, "conversations", "role", "text")
    return row.doc(spec.name, _render(row, t, turns))


OASST_OCTOPACK = SourceSpec(
    name="oasst_octopack", family="chat", repo_id="bigcode/oasst-octopack",
    revision="1f5db3451c66a64e37158fcdf8c1951db8e90b33",
    allow_patterns=("oasst_octopack.jsonl",), file_format="jsonl", adapter=_octopack,
    fields="conversations[{role, text}] (unverified)",
    rendering="conversations: role user/prompter → user, assistant → assistant",
    description="oasst-octopack: the high-quality oasst conversation threads used by OctoPack.",
    notes="file name and revision verified; the record layout (conversations[{role, text}]) is not.")


# -- single-turn instruction sets ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pair:
    """One field → user turn, one → assistant turn. A class, not a closure, so a spec pickles (datatrove
    ships the reader to worker processes)."""

    user_key: str
    assistant_key: str
    meta_keys: tuple[str, ...] = ()

    def __call__(self, row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
        turns = [("user", row.text(self.user_key)), ("assistant", row.text(self.assistant_key))]
        meta = {k: row.get(k, (str, int, float), required=False) for k in self.meta_keys}
        return row.doc(spec.name, _render(row, t, turns), None, **meta)


_pair = _Pair


MAGICODER_OSS = SourceSpec(
    name="magicoder_oss", family="chat", repo_id="ise-uiuc/Magicoder-OSS-Instruct-75K",
    revision="5f839b1f368a76b161028bb9edff055db34022b2",
    allow_patterns=("data-oss_instruct-decontaminated.jsonl",), file_format="jsonl",
    adapter=_pair("problem", "solution", meta_keys=("lang",)),
    fields="problem, solution, lang, seed, index, raw_index, openai_fingerprint",
    rendering="problem → user, solution → assistant",
    description="Magicoder OSS-Instruct 75K: coding problems and solutions generated from open-source seeds.",
    notes="file name and revision verified (the file is JSON Lines, not one JSON array).")

MAGICODER_EVOL = SourceSpec(
    name="magicoder_evol", family="chat", repo_id="ise-uiuc/Magicoder-Evol-Instruct-110K",
    revision="b0079beaa0361d82412520b873715bee59cc7dd4",
    allow_patterns=("data-evol_instruct-decontaminated.jsonl",), file_format="jsonl",
    adapter=_pair("instruction", "response"),
    fields="instruction, response",
    rendering="instruction → user, response → assistant",
    description="Magicoder Evol-Instruct 110K: decontaminated Evol-Instruct code data.",
    notes="file name and revision verified (JSON Lines); fields from the card.")

EVOL_CODEALPACA = SourceSpec(
    name="evol_codealpaca", family="chat", repo_id="theblackcat102/evol-codealpaca-v1",
    revision="c75242318519b5470635e84064baed7c78594020",
    allow_patterns=("train.jsonl",), file_format="jsonl", adapter=_pair("instruction", "output"),
    fields="instruction, output",
    rendering="instruction → user, output → assistant",
    description="Evol-CodeAlpaca v1: ~110k evolved code instructions with GPT-4 answers.",
    notes="file name train.jsonl and revision verified; fields (instruction, output) from the card.")


def _stackmathqa(row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
    turns = [("user", row.text("Q")), ("assistant", row.text("A"))]
    meta = row.get("meta", dict, required=False) or {}
    keep = {("site" if k == "source" else k): meta.get(k) for k in ("url", "language", "source", "timestamp")
            if isinstance(meta.get(k), (str, int, float))}
    return row.doc(spec.name, _render(row, t, turns), **keep)


STACKMATHQA = SourceSpec(
    name="stackmathqa", family="chat", repo_id="math-ai/StackMathQA",
    revision="e23fb6dd0abed7cd4c8e3a1f1f19af1104754064", config="stackmathqa1600k",
    allow_patterns=("data/stackmathqa1600k/all.jsonl",), file_format="jsonl", adapter=_stackmathqa,
    fields="Q, A, meta{url, timestamp, source, ...}",
    rendering="Q → user, A → assistant",
    description="StackMathQA (stackmathqa1600k): 1.6M math questions and accepted answers from Stack Exchange.",
    notes="layout data/<config>/all.jsonl verified at the pinned commit; the keys inside meta are not.")


def _templategsm(row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
    answer = row.text("solution_wocode")
    code = row.get("solution_code", str, required=False)
    if code and code.strip():
        answer = f"{answer.rstrip()}\n\n{_fence(code, 'python')}"
    turns = [("user", row.text("problem")), ("assistant", answer)]
    return row.doc(spec.name, _render(row, t, turns),
                   template_id=row.get("template_id", (str, int), required=False),
                   result=_scalar(row.data.get("result")))


def _scalar(v):
    return v if isinstance(v, (str, int, float)) and not isinstance(v, bool) else None


TEMPLATEGSM = SourceSpec(
    name="templategsm", family="chat", repo_id="math-ai/TemplateGSM", revision="main",
    config="templategsm-7473-1k",
    allow_patterns=("data/1k/*/*.jsonl",), file_format="jsonl", adapter=_templategsm,
    fields="problem, solution_code, solution_wocode, result, template_id, problem_id",
    rendering="problem → user; assistant = solution_wocode, then solution_code in a ```python block",
    description="TemplateGSM: 7.47M grade-school math problems from 7473 GSM8K-derived templates, with "
                "natural-language and code solutions.",
    notes="layout data/1k/<from>-<to>/templategsm-train-problems-NNNN.jsonl seen in the repo history; "
          "field names are from the card and unverified here.")


def _xp3x(row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
    turns = [("user", row.text("inputs")), ("assistant", row.text("targets"))]
    return row.doc(spec.name, _render(row, t, turns), language=row.get("language", str, required=False),
                   task=row.get("dataset", str, required=False), template=row.get("template", str, required=False))


XP3X = SourceSpec(
    name="xp3x", family="chat", repo_id="CohereForAI/xP3x",
    revision="9e3f0d1b4028d128f95de73d179720fd4b9d9921", config="eng_Latn",
    # English only by default (JetMoE is an English model); add data/<lang>/*.jsonl patterns for more
    allow_patterns=("data/eng_Latn/*.jsonl",), file_format="jsonl", adapter=_xp3x,
    fields="inputs, targets, language, split, template, dataset, config",
    rendering="inputs → user, targets → assistant (the prompt template is already applied in inputs)",
    description="xP3x: prompts and answers for 277 languages over 16 task types (crosslingual P3).",
    notes="per-language folders data/<lang>/xp3_<dataset>_<config>_<split>_<template>.jsonl verified; "
          "revision verified; fields from the card.")


def _commitpackft(row: Row, spec: SourceSpec, t: ChatTemplate) -> Document:
    lang = row.get("lang", str, required=False)
    message = row.text("message")
    old = row.get("old_contents", str)
    new = row.text("new_contents")
    path = row.get("new_file", str, required=False) or row.get("old_file", str, required=False)
    header = f"{message.strip()}\n\n" + (f"File: {path}\n" if path else "")
    user = header + _fence(old, lang) if old.strip() else header + "(new file)"
    turns = [("user", user), ("assistant", _fence(new, lang))]
    commit = row.get("commit", str, required=False)
    doc_id = f"{commit}:{path}" if commit else None
    return row.doc(spec.name, _render(row, t, turns), doc_id, lang=lang,
                   repo=row.get("repos", str, required=False), license=row.get("license", str, required=False))


COMMITPACKFT = SourceSpec(
    name="commitpackft", family="code", repo_id="bigcode/commitpackft", revision="main",
    allow_patterns=("data/*/data.jsonl",), file_format="jsonl", adapter=_commitpackft,
    fields="commit, old_file, new_file, old_contents, new_contents, subject, message, lang, license, repos",
    rendering="user = commit message, 'File: <new_file>', old_contents in a ```<lang> block (or '(new file)'); "
              "assistant = new_contents in a ```<lang> block",
    description="CommitPackFT: 2 GB of code commits whose messages read as instructions, 277 languages.",
    notes="per-language files data/<lang>/data.jsonl as the repo's loading script downloads them "
          "(_URL.format(lang=...)); fields verified against the card's example record.")

SPECS = (OPENHERMES, ULTRACHAT, OASST, OASST_OCTOPACK, XP3X, MAGICODER_OSS, MAGICODER_EVOL,
         EVOL_CODEALPACA, CODE290K, COMMITPACKFT, STACKMATHQA, TEMPLATEGSM)
