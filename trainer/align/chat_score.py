"""Conversations to score with `python -m trainer score MODEL chats.jsonl --chat`: the assistant turns only.

    docs = read_chat_docs(Path("chats.jsonl"), Path("exports/tiny-chat/tokenizer.json"), eos_id=2)
    docs[0].ids, docs[0].mask        # the conversation's ids as SFT trains on them, 1 on each assistant token

One JSON object a line, `{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}]}` (a
bare list of messages is taken too), roles system / user / assistant. Each is rendered and tokenized by
`jetmoe_core.chat.encode` (one tokenization, the mask from its offsets: the ids the SFT rows hold and
transformers' `apply_chat_template` gives) and ends at its last EOS, as an SFT row does. A conversation's NLL
is the mean over its assistant tokens (each turn's content and the EOS closing it) of −log p given everything
before; role tags, system and user turns are context only. Errors name the file, the line and the fix.
"""
from __future__ import annotations

import json
from pathlib import Path

from jetmoe_core import chat
from trainer.model.score import Document

__all__ = ["read_chat_docs"]


def read_chat_docs(path: Path, tokenizer_json: Path, eos_id: int | None) -> list[Document]:
    from tokenizers import Tokenizer

    if not tokenizer_json.is_file():
        raise FileNotFoundError(f"{tokenizer_json} not found: scoring conversations needs the model's tokenizer "
                                "(a checkpoint or export folder holds it)")
    if eos_id is None:
        raise ValueError("the model config has no eos_id, but the chat template closes every turn with EOS")
    tok = Tokenizer.from_file(str(tokenizer_json))
    docs = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not JSON ({e.msg}); --chat reads one JSON object a line, "
                                 '{"messages": [{"role": ..., "content": ...}, ...]}') from None
            messages = obj.get("messages") if isinstance(obj, dict) else obj
            try:
                ids, mask = chat.encode(tok, messages)
                ids, mask = chat.end_at_last_eos(ids, mask, eos_id)
            except chat.ChatFormatError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            if not mask.any():
                raise ValueError(f"{path}:{lineno}: the conversation has no assistant turn to score")
            docs.append(Document(len(docs), lineno, list(ids), mask=mask.tolist()))
    if not docs:
        raise ValueError(f"{path}: no conversations (empty file)")
    return docs
