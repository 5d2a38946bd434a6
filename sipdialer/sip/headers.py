"""Header fields: the ordered, case-insensitive container and the typed values.

``Headers`` keeps every header line as ``(name, value)`` in order, with compact forms
expanded to their full names (RFC 3261 §7.3.3) and values stored as received (folded
lines already joined, surrounding LWS stripped). Typed views (``Via``, ``NameAddr``,
``CSeq``, ``Reason``, ``Contact``; defined in ``fields.py``, re-exported here) are
parsed on demand: most messages are routed on a handful of headers and the rest are
only copied, so parsing every value eagerly would be wasted work (DESIGN.md
performance budget).

Names. A known header is stored under its canonical spelling (``cseq`` → ``CSeq``,
``v`` → ``Via``); an unknown one as written, and it is looked up ignoring case.

Comma-separated lists (RFC 3261 §7.3.1) are split by ``Headers.get_all``; the headers
whose values contain commas of their own (auth headers, dates) are never split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, cast

from .fields import (
    BRANCH_MAGIC,
    MAX_CSEQ,
    Contact,
    CSeq,
    NameAddr,
    Reason,
    Via,
    parse_contacts,
    parse_cseq,
    parse_int_header,
    parse_media_type,
    parse_name_addr,
    parse_reason,
    parse_via,
)
from .grammar import Params, format_params, param_value, parse_params, quote_string, split_list

__all__ = [
    "BRANCH_MAGIC", "CANONICAL_NAMES", "COMPACT_FORMS", "MAX_CSEQ", "CSeq", "Contact",
    "Headers", "NameAddr", "Params", "Reason", "Via", "canonical_name", "format_params",
    "param_value", "parse_contacts", "parse_cseq", "parse_int_header", "parse_media_type",
    "parse_name_addr", "parse_params", "parse_reason", "parse_via", "quote_string",
    "split_list",
]  # fmt: skip

# RFC 3261 §7.3.3 and the IANA registry's other compact forms.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info",
    "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires",
    "From", "Identity", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE",
    "MIME-Version", "Organization", "P-Asserted-Identity", "Priority", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To",
    "Referred-By", "Reject-Contact", "Reply-To", "Request-Disposition", "Require",
    "Retry-After", "Route", "RSeq", "Server", "Session-Expires", "Subject", "Supported",
    "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)  # fmt: skip

# Any spelling → canonical name: the canonical spelling itself, its lower case, the
# compact form. Only known names are in here, so wire input cannot grow it.
CANONICAL_NAMES: dict[str, str] = {}
_CANONICAL = CANONICAL_NAMES
for _name in _KNOWN_NAMES:
    _CANONICAL[_name] = _name
    _CANONICAL[_name.lower()] = _name
_CANONICAL.update(COMPACT_FORMS)
_CANONICAL.update({short.upper(): full for short, full in COMPACT_FORMS.items()})
_KNOWN = frozenset(_KNOWN_NAMES)

T = TypeVar("T")

# Headers whose values are never split at commas: the grammar of each allows commas
# inside a single value (RFC 3261 §7.3.1 names the auth headers explicitly).
_NOT_A_LIST = frozenset(
    {
        "Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate",
        "Authentication-Info", "Date", "Call-ID", "CSeq", "From", "To", "Subject",
        "User-Agent", "Server", "Organization", "Retry-After", "Timestamp", "Content-Length",
        "Content-Type", "Max-Forwards", "Expires", "Min-Expires", "Identity",
    }
)  # fmt: skip


def canonical_name(name: str) -> str:
    """``v`` → ``Via``, ``call-id`` → ``Call-ID``; unknown names are kept as written."""
    canon = _CANONICAL.get(name)
    if canon is None:
        canon = _CANONICAL.get(name.lower(), name)
    return canon


class Headers:
    """Ordered multi-map of header fields; lookups ignore case and compact forms.

    It also remembers typed values parsed from it (``memo``) until it is modified,
    so the transaction layer, the UA and the dialog can all ask a message for its
    top Via or CSeq and only the first asker pays for parsing it.
    """

    __slots__ = ("_items", "_memo")

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = (
            [] if items is None else [(canonical_name(k), v) for k, v in items]
        )
        self._memo: dict[str, object] | None = None

    @classmethod
    def _canonical(cls, items: list[tuple[str, str]]) -> Headers:
        """Adopt *items* whose names are already canonical (the parser's fast path)."""
        headers = cls.__new__(cls)
        headers._items = items
        headers._memo = None
        return headers

    def memo(self, key: str, build: Callable[[Headers], T]) -> T:
        """``build(self)``, computed once until the next change to these headers.

        *build* must be a pure function of the header values returning an immutable
        value; an exception is not remembered (it is raised again next time).
        """
        memo = self._memo
        if memo is None:
            memo = self._memo = {}
        elif key in memo:
            return cast(T, memo[key])
        value = build(self)
        memo[key] = value
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        return Headers._canonical(list(self._items))

    def _matcher(self, name: str) -> tuple[str, bool]:
        canon = canonical_name(name)
        return (canon, True) if canon in _KNOWN else (canon.lower(), False)

    def _indexes(self, name: str) -> list[int]:
        key, known = self._matcher(name)
        if known:
            return [i for i, (k, _) in enumerate(self._items) if k == key]
        return [i for i, (k, _) in enumerate(self._items) if k.lower() == key]

    def get(self, name: str) -> str | None:
        """The first value of *name* (the whole first line, unsplit), or ``None``."""
        key = _CANONICAL.get(name)
        if key is not None and key == name:  # the usual call: a canonical literal
            for k, value in self._items:
                if k == key:
                    return value
            return None
        index = self._indexes(name)
        return self._items[index[0]][1] if index else None

    def get_lines(self, name: str) -> list[str]:
        """Every header line of *name*, unsplit."""
        key = _CANONICAL.get(name)
        if key is not None and key == name:  # the usual call, as in ``get``
            return [value for k, value in self._items if k == key]
        return [self._items[i][1] for i in self._indexes(name)]

    def get_all(self, name: str) -> list[str]:
        """Every value of *name*: repeated lines and comma-separated values, in order."""
        lines = self.get_lines(name)
        if canonical_name(name) in _NOT_A_LIST:
            return lines
        out: list[str] = []
        for line in lines:
            out.extend(split_list(line))
        return out

    def add(self, name: str, value: str) -> None:
        """Append a header line at the bottom."""
        self._memo = None
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a line above the first line of the same name (or at the top)."""
        index = self._indexes(name)
        self._memo = None
        self._items.insert(index[0] if index else 0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of *name* by one line, where the first one stood."""
        index = self._indexes(name)
        self._memo = None
        if not index:
            self._items.append((canonical_name(name), value))
            return
        drop = set(index[1:])
        self._items[index[0]] = (self._items[index[0]][0], value)  # keeps the spelling
        self._items = [it for i, it in enumerate(self._items) if i not in drop]

    def remove(self, name: str) -> None:
        """Remove every line of *name* (nothing happens when there is none)."""
        drop = set(self._indexes(name))
        self._memo = None
        self._items = [it for i, it in enumerate(self._items) if i not in drop]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of *name* (a comma list loses its head)."""
        index = self._indexes(name)
        if not index:
            return None
        self._memo = None
        key, value = self._items[index[0]]
        values = [value] if key in _NOT_A_LIST else split_list(value)
        if len(values) > 1:
            self._items[index[0]] = (key, ", ".join(values[1:]))
        else:
            del self._items[index[0]]
        return values[0] if values else ""
