"""The one template that renders every chat / instruction / SFT set as pretraining text.

The paper does not say how JetMoE rendered chat data for pretraining, so this is a choice: a plain,
tokenizer-agnostic layout with role names, one blank line between turns, and no special tokens (a
pretraining tokenizer has no chat tokens, and a literal ``</s>`` in text would be split into pieces,
not become EOS). With the defaults a two-turn conversation renders as::

    User: How do I reverse a list in Python?

    Assistant: Use slicing: `xs[::-1]` returns a reversed copy.

The corpus config's ``[chat_template]`` table overrides any field, e.g. Zephyr's layout (the one the
paper's chat model uses)::

    [chat_template]
    system_prefix = "<|system|>\\n"
    user_prefix = "<|user|>\\n"
    assistant_prefix = "<|assistant|>\\n"
    turn_suffix = "</s>"
    turn_separator = "\\n"
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable

#: role names as the hub sets spell them → the template's three roles
ROLE_ALIASES = {
    "system": "system",
    "user": "user", "human": "user", "prompter": "user", "question": "user", "instruction": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant",
    "answer": "assistant", "response": "assistant",
}


class ChatTemplateError(ValueError):
    """A bad ``[chat_template]`` table or a turn with a role the template cannot place."""


@dataclass(frozen=True)
class ChatTemplate:
    """How turns become text. Every field is a plain string or bool so it maps 1:1 onto TOML."""

    #: put before a system message (sets such as OpenHermes carry one)
    system_prefix: str = "System: "
    #: put before a user / human / prompter turn
    user_prefix: str = "User: "
    #: put before an assistant / gpt turn
    assistant_prefix: str = "Assistant: "
    #: put after every turn's text
    turn_suffix: str = ""
    #: put between turns
    turn_separator: str = "\n\n"
    #: put at the very start / end of a rendered conversation
    conversation_prefix: str = ""
    conversation_suffix: str = ""
    #: drop system messages instead of rendering them
    drop_system: bool = False
    #: strip leading/trailing whitespace of each turn's text
    strip_turns: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "ChatTemplate":
        """Build from the corpus config's ``[chat_template]`` table; unknown keys and wrong types raise
        :class:`ChatTemplateError` naming the key."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ChatTemplateError(f"[chat_template] must be a table, got {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, val in d.items():
            if key not in known:
                raise ChatTemplateError(
                    f"[chat_template]: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
            want = bool if isinstance(getattr(cls, key), bool) else str
            if not isinstance(val, want):
                raise ChatTemplateError(
                    f"[chat_template].{key} must be a {want.__name__}, got {type(val).__name__} {val!r}")
            kwargs[key] = val
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def render(self, turns: Iterable[tuple[str, str]]) -> str:
        """Render ``(role, text)`` pairs. Roles are mapped through :data:`ROLE_ALIASES`; an unknown role
        raises :class:`ChatTemplateError` (adapters turn it into a rejected record)."""
        parts = []
        for role, text in turns:
            r = ROLE_ALIASES.get(str(role).strip().lower())
            if r is None:
                raise ChatTemplateError(f"unknown role {role!r} (known: {', '.join(sorted(ROLE_ALIASES))})")
            if r == "system" and self.drop_system:
                continue
            body = text.strip() if self.strip_turns else text
            prefix = {"system": self.system_prefix, "user": self.user_prefix,
                      "assistant": self.assistant_prefix}[r]
            parts.append(f"{prefix}{body}{self.turn_suffix}")
        if not parts:
            return ""
        return f"{self.conversation_prefix}{self.turn_separator.join(parts)}{self.conversation_suffix}"
