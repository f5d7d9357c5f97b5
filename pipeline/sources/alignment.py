"""The seven alignment sets of the paper's chat model: six SFT conversation sets and one DPO preference set.

    from pipeline.sources import get_source
    spec = get_source("sft_capybara")           # kind "sft"; get_source("dpo_ultrafeedback"): kind "dpo"
    doc = next(d for d in spec.read(path, relpath=rel) if not isinstance(d, Rejected))
    parse_sft(doc.text)                         # [{"role": "user", "content": ...}, ...]
    parse_dpo(dpo_doc.text)                     # (prompt messages, chosen text, rejected text)

A record becomes a document whose text is the conversation rendered by ``jetmoe_core.chat`` with ``</s>`` as
the EOS text (for a preference pair: the prompt and the chosen answer, then the rejected answer after a
``<|rejected|>`` tag). That text is what the corpus stages see (control characters, filters, exact dedup) and
what the shard stage parses back into messages, renders again with the tokenizer's EOS and tokenizes. So the
text is the one record of the conversation, and a content holding ``</s>`` is rejected (``eos_in_text``): the
tokenizer would read it as an EOS and end the turn there.

A record is rejected, with a counted reason, when its conversation is not one the chat model can learn from:
``missing_field`` / ``wrong_type`` (``messages`` absent, not a list, a message without a string ``role`` or
``content``), ``empty_conversation`` (no messages), ``unknown_role`` (not system / user / assistant),
``empty_turn`` (a blank content), ``eos_in_text``, ``turn_order`` (a system message after the first, a
conversation that starts with the assistant, two messages of one role in a row), ``no_assistant_turn``; for a
pair also ``completion_not_assistant`` (chosen or rejected does not end with the assistant's answer),
``prompt_mismatch`` (chosen and rejected hold different prompts, or ``prompt`` is not their first user message)
and ``identical_completions``. Contents are stripped of surrounding whitespace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from datatrove.data import Document
from jetmoe_core.chat import EOS_TOKEN, ROLES, render_text

from pipeline.sources.base import BadRecord, Row, SourceSpec
from pipeline.sources.chat import ChatTemplate

#: the tag before the rejected answer in a pair's document text (not a chat role: never rendered for the model)
REJECTED_TAG = "<|rejected|>\n"
_BLOCK = re.compile(r"<\|(system|user|assistant|rejected)\|>\n(.*?)" + re.escape(EOS_TOKEN) + r"\n", re.S)


class ChatDocumentError(ValueError):
    """A document text that is not a rendered conversation (the shard stage counts it; a bug upstream)."""


# -- the document text ----------------------------------------------------------------------------------
def sft_text(messages: list[dict]) -> str:
    return render_text(messages, eos_token=EOS_TOKEN)


def dpo_text(prompt: list[dict], chosen: str, rejected: str) -> str:
    return render_text([*prompt, {"role": "assistant", "content": chosen}], eos_token=EOS_TOKEN) + \
        f"{REJECTED_TAG}{rejected}{EOS_TOKEN}\n"


def _blocks(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _BLOCK.match(text, pos)
        if m is None:
            raise ChatDocumentError(f"not a rendered conversation at character {pos}: {text[pos:pos + 60]!r}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return out


def parse_sft(text: str) -> list[dict]:
    """The messages of an SFT document's text (the inverse of ``sft_text``)."""
    blocks = _blocks(text)
    if not blocks or any(role == "rejected" for role, _ in blocks):
        raise ChatDocumentError("an SFT document holds one conversation without a rejected answer")
    return [{"role": role, "content": content} for role, content in blocks]


def parse_dpo(text: str) -> tuple[list[dict], str, str]:
    """(prompt messages, chosen answer, rejected answer) of a DPO document's text (the inverse of ``dpo_text``)."""
    blocks = _blocks(text)
    if len(blocks) < 3 or blocks[-1][0] != "rejected" or blocks[-2][0] != "assistant" or \
            any(role == "rejected" for role, _ in blocks[:-1]):
        raise ChatDocumentError("a DPO document is a prompt, the chosen answer, then the rejected answer")
    return [{"role": r, "content": c} for r, c in blocks[:-2]], blocks[-2][1], blocks[-1][1]


# -- checks ---------------------------------------------------------------------------------------------
def messages(row: Row, field: str) -> list[dict]:
    """A record's list of {role, content}, checked and stripped, or BadRecord with the reason."""
    items = row.get(field, list)
    if not items:
        raise BadRecord("empty_conversation", f"{row.where}: field '{field}' is an empty list")
    out = []
    for i, item in enumerate(items):
        path = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise BadRecord("wrong_type", f"{row.where}: field '{path}' is {type(item).__name__}, expected object")
        role = row.get("role", str, obj=item, path=f"{path}.role")
        content = row.get("content", str, obj=item, path=f"{path}.content")
        if role not in ROLES:
            raise BadRecord("unknown_role", f"{row.where}: {path}.role is {role!r}, not one of {', '.join(ROLES)}")
        content = content.strip()
        if not content:
            raise BadRecord("empty_turn", f"{row.where}: {path}.content is empty")
        if EOS_TOKEN in content:
            raise BadRecord("eos_in_text", f"{row.where}: {path}.content holds {EOS_TOKEN!r}, the text of the EOS "
                                           f"token that closes every turn: the turn would end there")
        out.append({"role": role, "content": content})
    return out


def check_order(row: Row, field: str, msgs: list[dict]) -> None:
    """[system] user assistant user assistant ...: a system message only first, then the roles alternate,
    starting with the user; at least one assistant message."""
    roles = [m["role"] for m in msgs]
    if "system" in roles[1:]:
        raise BadRecord("turn_order", f"{row.where}: {field}[{roles.index('system', 1)}] is a system message; "
                                      f"only the first message may be one")
    body = roles[1:] if roles[0] == "system" else roles
    start = len(roles) - len(body)
    if body and body[0] != "user":
        raise BadRecord("turn_order", f"{row.where}: {field}[{start}] is a {body[0]} message; the conversation "
                                      f"must start with the user")
    for i in range(1, len(body)):
        if body[i] == body[i - 1]:
            raise BadRecord("turn_order", f"{row.where}: {field}[{start + i - 1}] and [{start + i}] are both "
                                          f"{body[i]} messages; user and assistant must alternate")
    if "assistant" not in body:
        raise BadRecord("no_assistant_turn", f"{row.where}: '{field}' has no assistant message to learn from")


def _scalar(v):
    return v if isinstance(v, (str, int)) and not isinstance(v, bool) or \
        isinstance(v, float) and math.isfinite(v) else None


# -- adapters -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sft:
    """A record with a ``messages`` list → one conversation. A class, not a closure: a spec must pickle."""

    id_key: str | None = None
    #: (field, metadata key) pairs kept as metadata ("source" is taken: it names the corpus source)
    meta_keys: tuple[tuple[str, str], ...] = ()

    def __call__(self, row: Row, spec: SourceSpec, template: ChatTemplate) -> Document:
        msgs = messages(row, "messages")
        check_order(row, "messages", msgs)
        doc_id = row.get(self.id_key, (str, int), required=False) if self.id_key else None
        meta = {key: _scalar(row.data.get(field)) for field, key in self.meta_keys}
        return row.doc(spec.name, sft_text(msgs), doc_id, turns=len(msgs), **meta)


def _dpo(row: Row, spec: SourceSpec, template: ChatTemplate) -> Document:
    prompt = row.text("prompt").strip()
    pair = {}
    for field in ("chosen", "rejected"):
        msgs = messages(row, field)
        if msgs[-1]["role"] != "assistant":
            raise BadRecord("completion_not_assistant", f"{row.where}: the last message of '{field}' is a "
                                                        f"{msgs[-1]['role']} message, not the assistant's answer")
        check_order(row, field, msgs)
        pair[field] = msgs
    chosen, rejected = pair["chosen"], pair["rejected"]
    if chosen[:-1] != rejected[:-1]:
        k = next((i for i, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1])) if a != b),
                 min(len(chosen), len(rejected)) - 1)
        raise BadRecord("prompt_mismatch", f"{row.where}: 'chosen' and 'rejected' differ before their answers "
                                           f"(first at message {k}): a pair must share its prompt")
    first_user = next(m["content"] for m in chosen if m["role"] == "user")
    if first_user != prompt:
        raise BadRecord("prompt_mismatch", f"{row.where}: field 'prompt' is not the first user message of "
                                           f"'chosen' and 'rejected'")
    if chosen[-1]["content"] == rejected[-1]["content"]:
        raise BadRecord("identical_completions", f"{row.where}: the chosen and the rejected answer are the same "
                                                 f"text: nothing to prefer")
    return row.doc(spec.name, dpo_text(chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]),
                   row.get("prompt_id", str, required=False), score_chosen=_scalar(row.data.get("score_chosen")),
                   score_rejected=_scalar(row.data.get("score_rejected")))


_MESSAGES = "messages[{content, role}]"
_H4_NOTE = ("the paper names the set, not a hub repo: this is Hugging Face H4's copy with the conversations in "
            "messages[{role, content}] and a train_sft split, the one the alignment-handbook's StarChat2 SFT "
            "recipe reads together with the other four H4 sets here. ")

SFT_ULTRACHAT = SourceSpec(
    name="sft_ultrachat", family="chat", kind="sft", repo_id="HuggingFaceH4/ultrachat_200k",
    revision="6a1489c88ba570d49cf8a98a02999de5b2356cac", config="train_sft",
    allow_patterns=("data/train_sft-*.parquet",), file_format="parquet", adapter=_Sft("prompt_id"),
    required_columns=("messages",), optional_columns=("prompt_id",),
    fields=f"prompt, prompt_id, {_MESSAGES}",
    rendering="messages as they are (user and assistant turns; the prompt is messages[0])",
    description="UltraChat 200k (train_sft): filtered multi-turn UltraChat dialogues, Zephyr's SFT set.",
    notes="the same files as the pretraining source ultrachat (shards data/train_sft-NNNNN-of-00003-<hash>.parquet "
          "and revision verified; columns from the card); the sample is that source's file.")

SFT_AIROBOROS = SourceSpec(
    name="sft_airoboros", family="chat", kind="sft", repo_id="HuggingFaceH4/airoboros-3.2",
    revision="01eb62ba154f1df75c40a630b6b03eeddf07c12a", config="default",
    allow_patterns=("data/train_sft-*.parquet",), file_format="parquet",
    adapter=_Sft("id", meta_keys=(("category", "category"),)), required_columns=("messages",), optional_columns=("id", "category"),
    fields=f"id, category, conversations[{{from, value}}], {_MESSAGES}",
    rendering="messages as they are (most open with a system message)",
    description="Airoboros 3.2: synthetic GPT-4 instructions across many categories (jondurbin/airoboros-3.2).",
    notes=_H4_NOTE + "Revision (the upload commit), file data/train_sft-00000-of-00001.parquet and columns verified "
                     "from the repo tree and card.")

SFT_CODE_FEEDBACK = SourceSpec(
    name="sft_code_feedback", family="chat", kind="sft", repo_id="HuggingFaceH4/Code-Feedback", revision="main",
    config="default", allow_patterns=("data/train_sft-*.parquet",), file_format="parquet", adapter=_Sft("id"),
    required_columns=("messages",), optional_columns=("id",),
    fields=f"id (int), {_MESSAGES}",
    rendering="messages as they are (multi-turn code generation with execution feedback)",
    description="Code-Feedback: 66k multi-turn code interactions with execution feedback (m-a-p/Code-Feedback).",
    notes=_H4_NOTE + "File data/train_sft-00000-of-00001.parquet and columns verified from the repo tree and card; "
                     "revision main: its full commit sha could not be looked up.")

SFT_ORCA_MATH = SourceSpec(
    name="sft_orca_math", family="chat", kind="sft", repo_id="HuggingFaceH4/orca-math-word-problems-200k",
    revision="b1bb160d3dc4a7ead3757694584821113038edf2", config="default",
    allow_patterns=("data/train_sft-*.parquet",), file_format="parquet", adapter=_Sft(),
    required_columns=("messages",),
    fields=f"question, answer (unverified), {_MESSAGES}",
    rendering="messages as they are (one word problem, one worked answer)",
    description="Orca-Math: 200k grade-school math word problems with GPT-4 Turbo answers "
                "(microsoft/orca-math-word-problems-200k).",
    notes=_H4_NOTE + "Revision (the upload commit) and file data/train_sft-00000-of-00001.parquet verified; only "
                     "messages is read (the alignment-handbook reads it); question and answer are not verified.")

SFT_SYSTEMCHAT = SourceSpec(
    name="sft_systemchat", family="chat", kind="sft", repo_id="HuggingFaceH4/SystemChat", revision="main",
    config="default", allow_patterns=("data/train_sft-*.parquet",), file_format="parquet", adapter=_Sft(),
    required_columns=("messages",),
    fields=f"conversations[{{from, value}}], {_MESSAGES}",
    rendering="messages as they are (a system message that the assistant must keep to, then the chat)",
    description="SystemChat: conversations that teach following a system message (abacusai/SystemChat).",
    notes=_H4_NOTE + "File data/train_sft-00000-of-00001.parquet and columns verified from the repo tree and card; "
                     "revision main: its full commit sha could not be looked up.")

SFT_CAPYBARA = SourceSpec(
    name="sft_capybara", family="chat", kind="sft", repo_id="HuggingFaceH4/capybara",
    revision="103a2c615ff99de0c6691fe6ce33cac7e2efe7c8", config="default",
    allow_patterns=("data/train_sft-*.parquet",), file_format="parquet",
    adapter=_Sft(meta_keys=(("source", "subset"),)), required_columns=("messages",),
    optional_columns=("source", "num_turns"),
    fields=f"source, {_MESSAGES}, num_turns",
    rendering="messages as they are (long multi-turn conversations)",
    description="Capybara: 16k multi-turn conversations made with the Amplify-Instruct method (LDJnr/Capybara).",
    notes=_H4_NOTE + "Revision (the upload commit), file data/train_sft-00000-of-00001.parquet and columns "
                     "verified from the repo tree and card.")

DPO_ULTRAFEEDBACK = SourceSpec(
    name="dpo_ultrafeedback", family="chat", kind="dpo", repo_id="HuggingFaceH4/ultrafeedback_binarized",
    revision="2a3fb934ee563e5441bf211adaf5215c3fa508dd", config="train_prefs",
    allow_patterns=("data/train_prefs-*.parquet",), file_format="parquet", adapter=_dpo,
    required_columns=("prompt", "chosen", "rejected"), optional_columns=("prompt_id", "score_chosen", "score_rejected"),
    fields="prompt, prompt_id, chosen[{content, role}], rejected[{content, role}], messages, score_chosen, "
           "score_rejected",
    rendering="prompt = chosen without its last message (which must equal rejected's); chosen and rejected = "
              "the last (assistant) message of each",
    description="UltraFeedback binarized (train_prefs): 61k prompts, the best-rated of four answers (chosen) "
                "against one of the others (rejected); Zephyr's DPO set.",
    notes="revision and columns from the card at that commit (train_prefs: 61,135 pairs); the file names are not "
          "verified: the sample is data/train_prefs-00000-of-00001.parquet, and the pattern also matches "
          "hashed shard names.")

SPECS = (SFT_ULTRACHAT, SFT_AIROBOROS, SFT_CODE_FEEDBACK, SFT_ORCA_MATH, SFT_SYSTEMCHAT, SFT_CAPYBARA,
         DPO_ULTRAFEEDBACK)
