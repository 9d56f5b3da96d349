"""Signatures as the Standard Webhooks libraries make them, and the retry schedule's bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from pixdrop.webhooks.sender import MAX_DELAY, retry_delay
from pixdrop.webhooks.signing import check_secret, headers, new_secret, sign


def test_signatures_are_the_reference_librarys() -> None:
    secret = new_secret()
    body = b'{"type":"image.created","data":{"id":"x"}}'
    stamp = 1_700_000_000
    expected = Webhook(secret).sign("msg_1", datetime.fromtimestamp(stamp, UTC), body)
    assert sign(secret, "msg_1", stamp, body) == expected


def test_a_fresh_delivery_verifies_and_a_changed_body_does_not() -> None:
    secret = new_secret()
    body = b'{"a":1}'
    sent = headers(secret, "msg_2", int(datetime.now(UTC).timestamp()), body)
    assert Webhook(secret).verify(body, sent) == {"a": 1}
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(b'{"a":2}', sent)
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, sent)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_c2hvcnQ=", "abc", "whsec_!!!!"])
def test_bad_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        check_secret(secret)


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap() -> None:
    rand = random.Random(7)
    for attempts in range(1, 30):
        nominal = min(2.0 * 2 ** (attempts - 1), MAX_DELAY)
        delay = retry_delay(2.0, attempts, rand)
        assert nominal * 0.5 <= delay <= nominal * 1.5
    assert len({round(retry_delay(2.0, 3, rand), 6) for _ in range(20)}) > 1  # jittered
