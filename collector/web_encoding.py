"""Whether a request's `Accept-Encoding` takes gzip, read as RFC 9110 (section 12.5.3) says.

Codings are case-insensitive, each may carry a weight (`;q=0` to `;q=1`, up to three
decimals) and `q=0` means "not acceptable"; `*` stands for every coding not named, and
`x-gzip` is gzip. A member that does not parse is ignored, never guessed at. With no
header at all the answer is plain: RFC 9110 would allow any coding, but a person's
`curl` without `--compressed` should get text.
"""

from __future__ import annotations

import re
from typing import Final

GZIP_NAMES: Final = frozenset({"gzip", "x-gzip"})
_MEMBER: Final = re.compile(
    r"\s*(?P<coding>[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*"
    r"(?:;\s*[qQ]\s*=\s*(?P<q>0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?))?\s*"
)


def accepts_gzip(header: str | None) -> bool:
    """True when `header` (an `Accept-Encoding` value) gives gzip a weight above zero."""
    if header is None:
        return False
    named: float | None = None
    wildcard: float | None = None
    for member in header.split(","):
        match = _MEMBER.fullmatch(member)
        if match is None:
            continue
        coding = match["coding"].lower()
        weight = 1.0 if match["q"] is None else float(match["q"])
        if coding in GZIP_NAMES:
            named = max(weight, -1.0 if named is None else named)
        elif coding == "*":
            wildcard = weight
    if named is not None:
        return named > 0
    return wildcard is not None and wildcard > 0
