"""Small pieces of the RFC 3261 §25.1 grammar shared by the header and URI parsers.

Everything here works on ``str`` that came from ``bytes.decode("utf-8",
"surrogateescape")``, so any octet can appear; the helpers never raise anything but
``ParseError``. Whitespace means SP and HTAB only (the grammar's LWS): ``str.split()``
and ``str.strip()`` without arguments would also eat Unicode spaces, which are not
separators in SIP.
"""

from __future__ import annotations

from .errors import ParseError

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
"RFC 3261 §25.1 ``token``: method names, header names, parameter names."

WS = " \t"
"Linear white space inside a header value (folding is already undone)."

Params = tuple[tuple[str, str | None], ...]
"Parameters in order: names lower-cased, ``None`` for a flag such as ``lr``."

# Characters that may not appear in an unquoted parameter name or value.
_PARAM_FORBIDDEN = frozenset(' \t"<>,\r\n')


def is_token(text: str) -> bool:
    return bool(text) and TOKEN_CHARS.issuperset(text)


def is_digits(text: str) -> bool:
    """ASCII decimal digits only: ``"²".isdigit()`` is true but ``int("²")`` fails."""
    return text.isascii() and text.isdigit()


def split_ws(text: str) -> list[str]:
    """Split at runs of SP/HTAB (not at other Unicode white space)."""
    return [part for part in text.replace("\t", " ").split(" ") if part]


def split_list(value: str) -> list[str]:
    """Split at commas outside quotes and ``<...>``; empty elements are dropped.

    RFC 3261 §7.3.1: ``Via: a, b`` is the same as two Via lines.
    """
    if "," not in value:
        stripped = value.strip(WS)
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [part for part in (p.strip(WS) for p in value.split(",")) if part]
    out: list[str] = []
    start = 0
    depth = 0
    quoted = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = value[start:i].strip(WS)
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip(WS)
    if part:
        out.append(part)
    return out


def read_quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``text[i] == '"'``; return (value, next index).

    ``\\x`` (quoted-pair) stands for ``x``, any octet but CR/LF (RFC 3261 §25.1).
    """
    end = text.find('"', i + 1)
    if end < 0:
        raise ParseError(f"unterminated quoted string in {text[:60]!r}")
    if "\\" not in text[i + 1 : end]:
        return text[i + 1 : end], end + 1  # fast path: no quoted-pair
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ParseError(f"unterminated quoted string in {text[:60]!r}")


def parse_params(text: str) -> Params:
    """``;tag = x ; lr ;q="0.5"`` → names lower-cased, values unquoted; LWS allowed."""
    if '"' in text:
        return _parse_quoted_params(text)
    pieces = text.split(";")
    if pieces[0].strip(WS):
        raise ParseError(f"expected ';' in parameters {text[:60]!r}")
    params: list[tuple[str, str | None]] = []
    append = params.append
    forbidden = _PARAM_FORBIDDEN.isdisjoint
    for index in range(1, len(pieces)):
        name, eq, value = pieces[index].partition("=")
        name = name.strip(WS).lower()
        if not name or not forbidden(name):
            raise ParseError(f"bad parameter name in {text[:60]!r}")
        if eq:
            value = value.strip(WS)
            if not value or not forbidden(value):
                raise ParseError(f"bad value of parameter {name[:40]!r}")
            append((name, value))
        else:
            append((name, None))
    return tuple(params)


def _parse_quoted_params(text: str) -> Params:
    """``parse_params`` for text with quoted-strings, where ``;`` may be quoted."""
    params: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in WS:
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise ParseError(f"expected ';' in parameters {text[:60]!r}")
        i += 1
        start = i
        while i < n and text[i] not in "=;":
            i += 1
        name = text[start:i].strip(WS).lower()
        if not name or not _PARAM_FORBIDDEN.isdisjoint(name):
            raise ParseError(f"bad parameter name in {text[:60]!r}")
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in WS:
                i += 1
            if i < n and text[i] == '"':
                value, i = read_quoted(text, i)
            else:
                start = i
                while i < n and text[i] != ";":
                    i += 1
                value = text[start:i].strip(WS)
                if not value or not _PARAM_FORBIDDEN.isdisjoint(value):
                    raise ParseError(f"bad value of parameter {name[:40]!r}")
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


def param_value(params: Params, name: str) -> str | None:
    """Value of *name* ('' for a flag) or ``None`` when absent."""
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


# A parameter value is written bare when it is a token or an IPv6 reference / host.
_BARE_VALUE = TOKEN_CHARS | frozenset(":[]")


def format_params(params: Params) -> str:
    out = []
    for key, value in params:
        if value is None:
            out.append(f";{key}")
        elif value and _BARE_VALUE.issuperset(value):
            out.append(f";{key}={value}")
        else:
            out.append(f';{key}="{quote_string(value)}"')
    return "".join(out)


def quote_string(value: str) -> str:
    """The inside of a quoted-string (the caller adds the quotes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
