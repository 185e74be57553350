"""Request signatures: our X-Signature scheme and Standard Webhooks (reference/security.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from equity_assets.security.signing import (
    SecretError,
    SignatureError,
    SignatureVerifier,
    StandardWebhookVerifier,
    check_timestamp_window,
    decode_standard_webhook_secret,
    sign_request,
    sign_standard_webhook,
    upload_secrets,
    verifier_for,
    verify_request,
    verify_standard_webhook,
)

SECRET = "s3cret-current"
OLD = "s3cret-previous"
NOW = 1_700_000_000
BODY = b"Address,City\r\n1 Main St,Austin\r\n"

# Public vector from the Standard Webhooks reference Python test suite.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def sw_headers(signature: str = SW_SIGNATURE) -> dict[str, str]:
    return {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TS), "webhook-signature": signature}


def reason_of(call) -> str:
    with pytest.raises(SignatureError) as caught:
        call()
    return caught.value.reason


# --------------------------------------------------------------------------- our scheme


def test_signature_is_hmac_of_timestamp_dot_raw_body_and_hash_is_sha256():
    headers = sign_request(BODY, SECRET, NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {"X-Timestamp": str(NOW), "X-Signature": expected,
                       "X-Content-SHA256": hashlib.sha256(BODY).hexdigest()}
    assert verify_request(BODY, headers, [SECRET], NOW) == 0


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_timestamps_within_300_s_inclusive_are_accepted(offset):
    headers = sign_request(BODY, SECRET, NOW + offset)
    assert verify_request(BODY, headers, [SECRET], NOW) == 0


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.999])
def test_the_300_s_bound_is_inclusive_in_whole_seconds_whatever_the_sub_second(fraction):
    now = NOW + fraction
    for offset, outcome in ((-300, None), (300, None), (-301, "timestamp_too_old"), (301, "timestamp_in_future")):
        try:
            check_timestamp_window(NOW + offset, now, 300)
            result = None
        except SignatureError as exc:
            result = exc.reason
        assert result == outcome, (offset, fraction)


@pytest.mark.parametrize(("offset", "reason"), [(-301, "timestamp_too_old"), (301, "timestamp_in_future")])
def test_timestamps_301_s_away_are_refused(offset, reason):
    headers = sign_request(BODY, SECRET, NOW + offset)
    assert reason_of(lambda: verify_request(BODY, headers, [SECRET], NOW)) == reason


def test_tampered_body_fails():
    headers = sign_request(BODY, SECRET, NOW)
    assert reason_of(lambda: verify_request(BODY.replace(b"Austin", b"Dallas"), headers, [SECRET], NOW)) \
        == "bad_signature"


def test_reserialized_json_fails():
    raw = b'{"lead":{"zip":"78701","score":1.0}}'
    headers = sign_request(raw, SECRET, NOW)
    reserialized = json.dumps(json.loads(raw)).encode()
    assert reserialized != raw
    assert reason_of(lambda: verify_request(reserialized, headers, [SECRET], NOW)) == "bad_signature"


def test_wrong_secret_fails():
    headers = sign_request(BODY, "someone-else", NOW)
    assert reason_of(lambda: verify_request(BODY, headers, [SECRET, OLD], NOW)) == "bad_signature"


def test_rotated_secret_second_of_two_is_accepted_and_reported():
    headers = sign_request(BODY, OLD, NOW)
    assert verify_request(BODY, headers, [SECRET, OLD], NOW) == 1


@pytest.mark.parametrize("dropped", ["X-Timestamp", "X-Signature", "X-Content-SHA256"])
def test_each_missing_header_is_named(dropped):
    headers = sign_request(BODY, SECRET, NOW)
    del headers[dropped]
    with pytest.raises(SignatureError) as caught:
        verify_request(BODY, headers, [SECRET], NOW)
    assert caught.value.reason == "missing_headers" and dropped.lower() in caught.value.detail


@pytest.mark.parametrize("value", ["abc", "1700000000.0", "-1700000000", "17e8", "1" * 13])
def test_malformed_timestamp_is_refused(value):
    headers = {**sign_request(BODY, SECRET, NOW), "X-Timestamp": value}
    assert reason_of(lambda: verify_request(BODY, headers, [SECRET], NOW)) == "malformed_timestamp"


def test_content_hash_mismatch_with_a_valid_signature():
    headers = {**sign_request(BODY, SECRET, NOW), "X-Content-SHA256": hashlib.sha256(b"x").hexdigest()}
    assert reason_of(lambda: verify_request(BODY, headers, [SECRET], NOW)) == "content_hash_mismatch"


def test_headers_are_case_insensitive_and_hex_case_does_not_matter():
    headers = {k.lower(): v.upper() if k != "X-Timestamp" else v for k, v in sign_request(BODY, SECRET, NOW).items()}
    assert verify_request(BODY, headers, [SECRET], NOW) == 0


def test_streaming_in_chunks_matches_one_shot():
    body = bytes(range(256)) * 1000
    headers = sign_request(body, OLD, NOW)
    verifier = SignatureVerifier(headers, [SECRET, OLD])
    for i in range(0, len(body), 7777):
        verifier.update(body[i:i + 7777])
    assert verifier.verify(NOW) == 1
    assert verifier.byte_count == len(body) and verifier.content_sha256 == hashlib.sha256(body).hexdigest()


def test_header_problems_are_known_before_the_body():
    verifier = SignatureVerifier(sign_request(BODY, SECRET, NOW - 1000), [SECRET])
    assert reason_of(lambda: verifier.check_headers(NOW)) == "timestamp_too_old"


def test_refusals_never_carry_the_secret_or_the_expected_signature():
    good = sign_request(BODY, SECRET, NOW)
    forged = {**good, "X-Signature": "0" * 64}
    with pytest.raises(SignatureError) as caught:
        verify_request(BODY, forged, [SECRET], NOW)
    text = f"{caught.value} {caught.value.detail!r}"
    assert SECRET not in text and good["X-Signature"] not in text


@pytest.mark.parametrize("secrets", [[], [""], [SECRET, ""]])
def test_missing_or_empty_secret_is_a_configuration_error(secrets):
    with pytest.raises(SecretError):
        SignatureVerifier(sign_request(BODY, SECRET, NOW), secrets)


def test_signing_with_an_empty_secret_is_refused():
    with pytest.raises(SecretError):
        sign_request(BODY, "", NOW)


def test_secrets_come_from_the_environment_at_call_time(monkeypatch):
    monkeypatch.setenv("EQUITY_UPLOAD_SECRETS", " first , ,second,")
    assert upload_secrets() == ["first", "second"]
    monkeypatch.setenv("EQUITY_UPLOAD_SECRETS", "third")
    assert upload_secrets() == ["third"]
    monkeypatch.delenv("EQUITY_UPLOAD_SECRETS")
    assert upload_secrets() == []


# --------------------------------------------------------------------------- Standard Webhooks


def test_standard_webhooks_public_vector():
    assert sign_standard_webhook(SW_BODY, SW_SECRET, SW_ID, SW_TS)["webhook-signature"] == SW_SIGNATURE
    assert verify_standard_webhook(SW_BODY, sw_headers(), [SW_SECRET], SW_TS) == 0


@pytest.mark.parametrize("last", ["F", "A", "="])
def test_standard_webhooks_changed_last_character_fails(last):
    # "E" -> "F" changes only the spare low bits of the final base64 digit: decoded bytes would
    # still match, which is why signatures are compared as text.
    changed = SW_SIGNATURE[:-2] + last + "="
    assert changed != SW_SIGNATURE
    assert reason_of(lambda: verify_standard_webhook(SW_BODY, sw_headers(changed), [SW_SECRET], SW_TS)) \
        == "bad_signature"


def test_standard_webhooks_changed_padding_character_fails():
    changed = SW_SIGNATURE[:-1] + "A"
    assert reason_of(lambda: verify_standard_webhook(SW_BODY, sw_headers(changed), [SW_SECRET], SW_TS)) \
        == "bad_signature"


def test_standard_webhooks_valid_entry_among_decoys_passes():
    value = SW_SIGNATURE.split(",", 1)[1]
    header = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,{value} {SW_SIGNATURE} v1,bm9wZQ=="
    assert verify_standard_webhook(SW_BODY, sw_headers(header), [SW_SECRET], SW_TS) == 0


def test_standard_webhooks_v2_entry_alone_is_ignored():
    value = SW_SIGNATURE.split(",", 1)[1]
    assert reason_of(lambda: verify_standard_webhook(SW_BODY, sw_headers(f"v2,{value}"), [SW_SECRET], SW_TS)) \
        == "bad_signature"


def test_standard_webhooks_empty_v1_alone_fails():
    assert reason_of(lambda: verify_standard_webhook(SW_BODY, sw_headers("v1,"), [SW_SECRET], SW_TS)) \
        == "bad_signature"


def test_standard_webhooks_secret_without_padding_is_accepted():
    key = bytes(range(31))  # base64 of 31 bytes ends in "="
    padded = "whsec_" + base64.b64encode(key).decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=")
    assert decode_standard_webhook_secret(unpadded) == key
    headers = sign_standard_webhook(BODY, padded, "msg_1", NOW)
    assert verify_standard_webhook(BODY, headers, [unpadded], NOW) == 0


def test_standard_webhooks_secret_prefix_is_optional():
    assert decode_standard_webhook_secret(SW_SECRET.removeprefix("whsec_")) == decode_standard_webhook_secret(SW_SECRET)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_standard_webhooks_empty_or_invalid_secret_is_an_error(secret):
    with pytest.raises(SecretError):
        verify_standard_webhook(SW_BODY, sw_headers(), [secret], SW_TS)


@pytest.mark.parametrize(("offset", "outcome"), [(-300, 0), (300, 0), (-301, "timestamp_too_old"),
                                                 (301, "timestamp_in_future")])
def test_standard_webhooks_window(offset, outcome):
    headers = sign_standard_webhook(BODY, SW_SECRET, "msg_w", NOW + offset)
    if outcome == 0:
        assert verify_standard_webhook(BODY, headers, [SW_SECRET], NOW) == 0
    else:
        assert reason_of(lambda: verify_standard_webhook(BODY, headers, [SW_SECRET], NOW)) == outcome


def test_standard_webhooks_rotation_and_missing_headers():
    other = "whsec_" + base64.b64encode(b"k" * 24).decode()
    headers = sign_standard_webhook(BODY, SW_SECRET, "msg_r", NOW)
    assert verify_standard_webhook(BODY, headers, [other, SW_SECRET], NOW) == 1
    del headers["webhook-id"]
    assert reason_of(lambda: verify_standard_webhook(BODY, headers, [SW_SECRET], NOW)) == "missing_headers"


def test_standard_webhooks_signs_id_and_timestamp_too():
    headers = sign_standard_webhook(BODY, SW_SECRET, "msg_a", NOW)
    moved = {**headers, "webhook-id": "msg_b"}
    assert reason_of(lambda: verify_standard_webhook(BODY, moved, [SW_SECRET], NOW)) == "bad_signature"


def test_verifier_for_picks_the_scheme_from_the_headers():
    ours = verifier_for(sign_request(BODY, SECRET, NOW), [SECRET, SW_SECRET])
    theirs = verifier_for(sw_headers(), [SECRET, SW_SECRET])
    assert isinstance(ours, SignatureVerifier) and isinstance(theirs, StandardWebhookVerifier)
    theirs.update(SW_BODY)
    assert theirs.verify(SW_TS) == 0  # plain secrets are left out of the base64 scheme
    # secrets, but none for this scheme: the client's problem (401), not the server's
    with pytest.raises(SignatureError, match="scheme_not_accepted"):
        verifier_for(sw_headers(), [SECRET])
    with pytest.raises(SecretError):  # no secret at all: the server's configuration
        verifier_for(sw_headers(), [])
