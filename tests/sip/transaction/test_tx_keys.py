"""Transaction matching (RFC 3261 §17.1.3, §17.2.3, §9.2), including RFC 2543 peers."""

from __future__ import annotations

from txkit import reply, request

from sipdialer.sip.transaction.keys import (
    ClientKey,
    LegacyServerKey,
    ServerKey,
    client_key,
    client_key_for_response,
    invite_key_for_cancel,
    is_rfc3261_branch,
    legacy_ack_key,
    legacy_response_index,
    server_key,
    server_key_for_response,
)


def test_rfc3261_server_key_is_branch_sent_by_method() -> None:
    key = server_key(request("INVITE"))
    assert key == ServerKey("z9hG4bK776asdhds", "192.0.2.10:5060", "INVITE")


def test_ack_matches_its_invite_and_cancel_has_its_own_key() -> None:
    invite = server_key(request("INVITE"))
    assert server_key(request("ACK", to_tag="x", cseq_method="ACK")) == invite
    cancel = server_key(request("CANCEL"))
    assert cancel != invite and cancel.method == "CANCEL"
    assert invite_key_for_cancel(cancel) == invite


def test_sent_by_is_normalised_and_other_differences_matter() -> None:
    base = server_key(request("INVITE", via_host="PC33.Example.COM"))
    assert base == server_key(request("INVITE", via_host="pc33.example.com"))
    assert base != server_key(request("INVITE", via_host="pc34.example.com"))
    assert server_key(request("INVITE")) != server_key(request("INVITE", branch="z9hG4bKother"))
    assert server_key(request("OPTIONS")) != server_key(request("INVITE"))


def test_received_and_rport_do_not_change_any_key() -> None:
    plain = request("INVITE", branch=None)
    stamped = request("INVITE", branch=None, via_extra=";received=198.51.100.1;rport=1234")
    assert server_key(plain) == server_key(stamped)
    assert legacy_response_index(plain) == legacy_response_index(reply(stamped, 180))


def test_branch_without_cookie_or_bare_cookie_falls_back_to_rfc_2543() -> None:
    # RFC 4475 §3.2.1 badbranch: "z9hG4bK" alone identifies nothing.
    assert not is_rfc3261_branch("z9hG4bK")
    assert not is_rfc3261_branch("1234abcd")
    assert not is_rfc3261_branch(None)
    for branch in (None, "1234abcd", "z9hG4bK"):
        assert isinstance(server_key(request("INVITE", branch=branch)), LegacyServerKey)


def test_rfc2543_matching_rules() -> None:
    key = server_key(request("INVITE", branch=None))
    assert isinstance(key, LegacyServerKey)
    # A retransmission: same Request-URI, tags, Call-ID, CSeq, top Via.
    assert server_key(request("INVITE", branch=None)) == key
    # URI comparison rules (§19.1.4): host case is not significant.
    assert server_key(request("INVITE", branch=None, uri="sip:bob@192.0.2.20")) == key
    assert server_key(request("INVITE", branch=None, uri="sip:carol@192.0.2.20")) != key
    assert server_key(request("INVITE", branch=None, cseq=2)) != key
    assert server_key(request("INVITE", branch=None, via_extra=";ttl=1")) != key
    # The ACK carries the To tag of the response; the layer registers that alias.
    ack = server_key(request("ACK", branch=None, to_tag="a6c85cf"))
    assert isinstance(ack, LegacyServerKey)
    assert ack == legacy_ack_key(key, "a6c85cf") != key
    # A CANCEL matches as if it were the INVITE (§9.2).
    cancel = server_key(request("CANCEL", branch=None))
    assert isinstance(cancel, LegacyServerKey)
    assert invite_key_for_cancel(cancel) == key


def test_client_keys_are_branch_and_method() -> None:
    invite = request("INVITE")
    assert client_key(invite) == ClientKey("z9hG4bK776asdhds", "INVITE")
    assert client_key_for_response(reply(invite, 180)) == client_key(invite)
    cancel = request("CANCEL")
    assert client_key_for_response(reply(cancel, 200)) == ClientKey("z9hG4bK776asdhds", "CANCEL")
    assert client_key_for_response(reply(request("INVITE", branch=None), 200)) is None


def test_server_key_from_a_response() -> None:
    invite = request("INVITE")
    assert server_key_for_response(reply(invite, 486)) == server_key(invite)
    assert server_key_for_response(reply(request("INVITE", branch=None), 486)) is None
