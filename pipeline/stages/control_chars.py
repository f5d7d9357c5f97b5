"""Control characters in documents: a stated policy per source family, applied by the format stage.

    policy = ControlChars()                      # web, code and chat: "strip"
    verdict, text = apply(doc.text, "strip")     # ("clean" | "stripped" | "rejected" | "kept", text)

Control characters are the C0 controls (U+0000-U+001F) except TAB, LF and CR, DEL (U+007F) and the C1
controls (U+0080-U+009F). They carry no text: in crawled pages and converted papers they are debris of
binary formats and broken encodings (NUL above all), in chat sets leftovers of terminal output, and in
source code form feeds between sections or raw escape bytes. A tokenizer gives each its own token, and
nothing downstream removes them. Policies (``[format.control_chars]``, per family):

* ``strip`` (the default for every family): delete them and keep the document; the document is counted
  in the format stage's account under ``normalised: {control_chars: n}`` (manifest included). A document
  that was nothing but control characters and blanks is rejected as ``control_chars``;
* ``reject``: reject the document, reason ``control_chars`` (written to ``_rejects/`` with its text);
* ``keep``: leave the text as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: C0 controls but TAB, LF and CR; DEL; C1 controls
CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
REASON = "control_chars"

Policy = Literal["strip", "reject", "keep"]


@dataclass
class ControlChars:
    """The ``[format.control_chars]`` table: what to do with control characters, per source family."""
    web: Policy = "strip"
    code: Policy = "strip"
    chat: Policy = "strip"


def apply(text: str, policy: str) -> tuple[str, str]:
    """(verdict, text): "clean" (none found), "stripped", "rejected" or "kept"."""
    if not CONTROL_RE.search(text):
        return "clean", text
    if policy == "keep":
        return "kept", text
    if policy == "reject":
        return "rejected", text
    stripped = CONTROL_RE.sub("", text)
    return ("stripped", stripped) if stripped.strip() else ("rejected", text)


def describe(text: str) -> str:
    """"3 control characters, the first U+0000 at offset 12"."""
    found = CONTROL_RE.findall(text)
    first = CONTROL_RE.search(text)
    return (f"{len(found)} control character{'s' if len(found) > 1 else ''}, the first U+{ord(found[0]):04X} "
            f"at offset {first.start()}")
