"""The chat template of the aligned model (Zephyr's, as the paper's chat model uses), defined once.

    from jetmoe_core.chat import CHAT_TEMPLATE, render, render_text, encode, encode_completion
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}]
    render_text(msgs)         # '<|system|>\\nBe brief.</s>\\n<|user|>\\nHi</s>\\n<|assistant|>\\nHello!</s>\\n'
    render(msgs)              # the same text as segments, each marked trained or not (see below)
    ids, mask = encode(tokenizer, msgs)                  # token ids + loss mask (1 = trained), one array each
    ids, mask = end_at_last_eos(ids, mask, eos_id)      # a training row: up to and with the last EOS
    prompt_ids, completion_ids = encode_completion(tokenizer, msgs[:2], "Hello!")     # a DPO completion
    tokenizer_config["chat_template"] = CHAT_TEMPLATE    # the export: transformers renders the same text

The layout, per message: ``<|{role}|>\\n{content}{eos}\\n`` with role ``system``, ``user`` or ``assistant``, and
the EOS token's text (``</s>``) closing every turn, as Zephyr's ``tokenizer_config.json`` does (its template
appends ``eos_token`` to each message; the newline after it comes from the template's own line breaks). The
generation prompt is ``<|assistant|>\\n``: the model's answer starts on the line after the role tag, and it ends
the answer with EOS, where generation stops. Contents are rendered as given (neither template strips them).

``render`` splits that text into :class:`Segment` s. Trained (``trained=True``) is exactly each assistant
message's content plus the EOS that closes it; everything else (role tags, user and system turns, the newline
after each EOS, the generation prompt) is context. ``CHAT_TEMPLATE`` is the same layout as a Jinja string for
transformers, with the trained part of each assistant turn in ``{% generation %}`` blocks, so
``apply_chat_template(..., return_assistant_tokens_mask=True)`` gives the same mask. It differs from Zephyr's
template only where Zephyr's is silent: an unknown role raises instead of being skipped, and the generation
prompt is also written for an empty conversation.

Token masks come from one tokenization of the whole rendered text (as transformers does), never from
tokenizing segments apart: a tokenizer that merges or prefixes across a boundary (a SentencePiece "▁", a
byte-level pre-token "\\n ") would give other ids than the served model sees. A token is trained when it lies
in a trained segment; a token that crosses the border between trained and untrained text raises
:class:`TokenBoundaryError` (the pipeline drops such a conversation with a counted reason). With contents that
neither start nor end with whitespace, byte-level BPE and SentencePiece tokenizers never cross it. Tokenizers
are duck-typed: anything with ``encode(text, add_special_tokens=False)`` returning ``.ids`` and ``.offsets``
(a ``tokenizers.Tokenizer``); this module imports neither ``tokenizers`` nor ``transformers``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

ROLES = ("system", "user", "assistant")
EOS_TOKEN = "</s>"
GENERATION_PROMPT = "<|assistant|>\n"

# One line per statement, every tag trimming its whitespace ("-"), so the text is the same whatever the
# environment's trim_blocks / lstrip_blocks settings are.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{- raise_exception('chat role must be system, user or assistant, got ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|assistant|>\\n' -}}"
    "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)
"""The Jinja chat template for ``tokenizer_config.json`` (transformers passes ``eos_token`` in)."""


class ChatFormatError(ValueError):
    """A conversation the template cannot render: not a list of {role, content}, or an unknown role."""


class TokenBoundaryError(ChatFormatError):
    """A token crosses the border between trained and untrained text, so no mask is exact."""


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text, and whether its tokens carry loss."""

    text: str
    trained: bool


def _role_content(message: Any, i: int) -> tuple[str, str]:
    if not isinstance(message, dict):
        raise ChatFormatError(f"message {i} is {type(message).__name__}, expected a dict with role and content")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ChatFormatError(f"message {i}: role {role!r} is not one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise ChatFormatError(f"message {i}: content is {type(content).__name__}, expected a string")
    return role, content


def render(messages: Sequence[dict], *, eos_token: str = EOS_TOKEN,
           add_generation_prompt: bool = False) -> list[Segment]:
    """The rendered conversation as segments (their texts joined = ``render_text``)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ChatFormatError(f"messages must be a list of dicts, got {type(messages).__name__}")
    out: list[Segment] = []
    for i, message in enumerate(messages):
        role, content = _role_content(message, i)
        if role == "assistant":
            out += [Segment(GENERATION_PROMPT, False), Segment(content + eos_token, True), Segment("\n", False)]
        else:
            out.append(Segment(f"<|{role}|>\n{content}{eos_token}\n", False))
    if add_generation_prompt:
        out.append(Segment(GENERATION_PROMPT, False))
    return out


def render_text(messages: Sequence[dict], *, eos_token: str = EOS_TOKEN, add_generation_prompt: bool = False) -> str:
    """The rendered conversation, as transformers' ``apply_chat_template(..., tokenize=False)`` gives it."""
    return "".join(s.text for s in render(messages, eos_token=eos_token, add_generation_prompt=add_generation_prompt))


def _merged(segments: Iterable[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """(end offset, trained) of the runs of segments with the same flag: only a change of flag is a border."""
    ends: list[int] = []
    flags: list[bool] = []
    pos = 0
    for seg in segments:
        pos += len(seg.text)
        if flags and flags[-1] == seg.trained:
            ends[-1] = pos
        else:
            ends.append(pos)
            flags.append(seg.trained)
    return np.asarray(ends, dtype=np.int64), np.asarray(flags, dtype=bool)


def mask_from_offsets(offsets: Sequence[tuple[int, int]], segments: Sequence[Segment]) -> np.ndarray:
    """The loss mask (uint8, 1 = trained) of tokens with these character ``offsets`` into the rendered text.

    Raises :class:`TokenBoundaryError` when a token starts in one run of segments and ends in a run with the
    other flag. A token of zero width (some tokenizers' prefix marks) belongs to the run it sits in."""
    ends, flags = _merged(segments)
    if not len(offsets):
        return np.zeros(0, dtype=np.uint8)
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    run = np.searchsorted(ends, off[:, 0], side="right")  # the run each token starts in
    run = np.minimum(run, len(ends) - 1)
    crosses = off[:, 1] > ends[run]
    if crosses.any():
        k = int(np.flatnonzero(crosses)[0])
        raise TokenBoundaryError(f"token {k} (characters {int(off[k, 0])}:{int(off[k, 1])}) crosses the border of "
                                 f"trained text at character {int(ends[run[k]])}")
    return flags[run].astype(np.uint8)


def encode(tokenizer: Any, messages: Sequence[dict], *, eos_token: str = EOS_TOKEN,
           add_generation_prompt: bool = False) -> tuple[list[int], np.ndarray]:
    """Token ids of the rendered conversation (no BOS: the template writes none, and transformers tokenizes a
    chat with ``add_special_tokens=False``) and their loss mask."""
    segments = render(messages, eos_token=eos_token, add_generation_prompt=add_generation_prompt)
    enc = tokenizer.encode("".join(s.text for s in segments), add_special_tokens=False)
    return list(enc.ids), mask_from_offsets(enc.offsets, segments)


def end_at_last_eos(ids: Sequence[int], mask: np.ndarray, eos_id: int) -> tuple[list[int], np.ndarray]:
    """A conversation's ids and mask up to and with its last EOS: the template's final newline dropped, so a
    training row ends with EOS like a pretraining document (that newline is never trained, and generation
    stops at the EOS before it)."""
    where = np.flatnonzero(np.asarray(ids) == eos_id)
    if not len(where):
        raise ChatFormatError(f"no EOS (id {eos_id}) in the conversation's tokens")
    return list(ids[: where[-1] + 1]), mask[: where[-1] + 1]


def split_completion(ids: Sequence[int], mask: np.ndarray) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) of a conversation whose only trained run is its last assistant turn: the
    prompt is every token before it (the generation prompt included), the completion the run itself (its EOS
    included; the newline after it is dropped)."""
    trained = np.flatnonzero(mask)
    if not len(trained) or trained[-1] - trained[0] + 1 != len(trained):
        raise ChatFormatError("expected exactly one run of trained tokens (one assistant completion)")
    return list(ids[: trained[0]]), list(ids[trained[0]: trained[-1] + 1])


def completion_segments(prompt: Sequence[dict], completion: str, *, eos_token: str = EOS_TOKEN) -> list[Segment]:
    """``prompt`` then one assistant ``completion``, with only the completion (and its EOS) trained: every
    earlier assistant turn is context here."""
    segments = [Segment(s.text, False) for s in render(prompt, eos_token=eos_token)]
    return segments + render([{"role": "assistant", "content": completion}], eos_token=eos_token)


def encode_completion(tokenizer: Any, prompt: Sequence[dict], completion: str, *,
                      eos_token: str = EOS_TOKEN) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) of one assistant completion after ``prompt`` (the DPO layout): the prompt
    ids are those of ``render(prompt, add_generation_prompt=True)``, the completion ids the answer and its EOS,
    cut from one tokenization of the whole conversation."""
    segments = completion_segments(prompt, completion, eos_token=eos_token)
    enc = tokenizer.encode("".join(s.text for s in segments), add_special_tokens=False)
    return split_completion(list(enc.ids), mask_from_offsets(enc.offsets, segments))
