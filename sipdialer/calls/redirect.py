"""Following a 3xx redirect of a member leg, with a hop limit and loop avoidance.

Theory of operation (RFC 3261 §8.1.3.4, §16.5 for the ordering rule). A trunk (or a
number-portability server behind it) may answer an INVITE with 300/301/302 and
Contacts naming where to try instead. ``redirect_targets(response)`` gives those
targets best first: ordered by ``q`` (higher first, absent = 1.0), ties kept in the
order the response lists them; only sip:/sips: URIs (we have nothing to dial a tel:
or http: URI with); URI headers (``?Subject=...``) dropped, because a Request-URI may
not carry them. A Contact whose ``q`` is malformed is skipped, the others still count.

Not followed: 305 Use Proxy (the Contact is a proxy to route through, and RFC 3261
§21.3.6 warns against honouring it from an unauthenticated source) and 380
Alternative Service (its alternatives are described in the body, not as Contacts).

``Redirects`` is the per-call bookkeeping the calls layer keeps: every URI tried
(starting with the original Request-URI) and the hops taken. ``next_target(response)``
returns the best target not tried yet (RFC 3261 §8.1.3.4: a UAC SHOULD NOT retry a
URI it already tried, which breaks loops between two redirecting servers), or
``None`` when none is left or ``MAX_REDIRECTS`` hops were taken already: the leg then
fails with the 3xx, i.e. NORMAL_UNSPECIFIED (causes.md §1, every 3xx final). URIs are
compared with RFC 3261 §19.1.4 equivalence (``SipUri.equivalent``).

Pure: no IO, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sipdialer.sip.errors import ParseError
from sipdialer.sip.message import Response
from sipdialer.sip.uri import SipUri

__all__ = ["FOLLOWED_STATUSES", "MAX_REDIRECTS", "Redirects", "redirect_targets"]

MAX_REDIRECTS = 3
"""Redirect hops one call follows. Enough for portability (one hop) plus a forward or
two; more is a loop or abuse (FreeSWITCH's ``sip_redirect`` handling follows a handful
too)."""

FOLLOWED_STATUSES = frozenset({300, 301, 302})
"3xx whose Contacts are new targets; 305 and 380 are not followed (module docstring)."


def redirect_targets(response: Response) -> list[SipUri]:
    """The sip/sips Contacts of a 300/301/302, highest q first (stable); else ``[]``."""
    if response.status_code not in FOLLOWED_STATUSES:
        return []
    try:
        contacts = response.contacts
    except ParseError:
        return []
    ranked: list[tuple[float, SipUri]] = []
    for contact in contacts:
        address = contact.address
        if address is None or not isinstance(address.uri, SipUri):
            continue
        try:
            q = contact.q
        except ParseError:
            continue
        uri = address.uri
        if uri.headers:
            uri = replace(uri, headers=(), raw="")
        ranked.append((q, uri))
    ranked.sort(key=lambda item: -item[0])  # sort is stable: ties keep their order
    return [uri for _, uri in ranked]


@dataclass
class Redirects:
    """Redirect state of one call: what was tried and how many hops were taken."""

    tried: list[SipUri] = field(default_factory=list)
    "Every Request-URI sent so far, the original first."
    hops: int = 0
    max_hops: int = MAX_REDIRECTS

    @classmethod
    def starting_at(cls, uri: SipUri, max_hops: int = MAX_REDIRECTS) -> Redirects:
        return cls([uri], 0, max_hops)

    def was_tried(self, uri: SipUri) -> bool:
        return any(uri.equivalent(seen) for seen in self.tried)

    def next_target(
        self, response: Response, accept: Callable[[SipUri], bool] | None = None
    ) -> SipUri | None:
        """The URI to send the next INVITE to, counted as one hop; ``None`` to stop.
        ``accept`` (when given) says which targets may be followed at all (the shell
        follows only targets at the trunk's own address)."""
        if self.hops >= self.max_hops:
            return None
        for uri in redirect_targets(response):
            if accept is not None and not accept(uri):
                continue
            if not self.was_tried(uri):
                self.tried.append(uri)
                self.hops += 1
                return uri
        return None
