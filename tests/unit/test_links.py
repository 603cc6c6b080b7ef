"""Signed action tokens: round trip, tampering, expiry, key separation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.links import LinkError, LinkSigner
from tests.unit.fakes import T0


def signer(secret: str = "s3cret-key") -> LinkSigner:
    return LinkSigner(secret, "https://ack.example.com/", ttl=timedelta(hours=72))


def test_a_token_round_trips_its_claims() -> None:
    token = signer().token(7, "acknowledge", who="channel:wecom_hq", now=T0)
    claims = signer().verify(token, now=T0 + timedelta(hours=71))
    assert (claims.incident_id, claims.action, claims.who) == (7, "acknowledge", "channel:wecom_hq")
    assert claims.expires_at == T0 + timedelta(hours=72)


def test_action_urls_cover_every_action() -> None:
    urls = signer().action_urls(7, who="王分析师", now=T0)
    assert list(urls) == ["acknowledge", "escalate", "resolve"]
    assert all(u.startswith("https://ack.example.com/action?t=") for u in urls.values())


def test_expired_tampered_and_foreign_tokens_are_refused() -> None:
    token = signer().token(7, "resolve", who="x", now=T0)
    with pytest.raises(LinkError) as info:
        signer().verify(token, now=T0 + timedelta(hours=72))
    assert info.value.reason == "expired"
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" + token, "a.b", ""):
        with pytest.raises(LinkError) as info:
            signer().verify(bad, now=T0)
        assert info.value.reason == "tampered"
    with pytest.raises(LinkError):
        signer("other-key").verify(token, now=T0)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        LinkSigner("", "https://x", ttl=timedelta(hours=1))
