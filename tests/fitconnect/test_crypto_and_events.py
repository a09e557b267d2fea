"""JWE and SET handling refuses what FIT-Connect does not allow, before using a key."""

from __future__ import annotations

import base64
import json

import pytest
from jwcrypto import jwe

from poststelle.adapters.fitconnect import (
    ACCEPT_REPLY,
    ACCEPT_SUBMISSION,
    AuthenticationTags,
    CryptoError,
    KeyPair,
    Problem,
    authentication_tag,
    decrypt,
    encrypt,
    generate_key,
    load_key,
    read_event,
    security_event,
)
from poststelle.adapters.fitconnect._set import (
    REJECT_SUBMISSION,
    SET_SCHEMA_REPLIES,
    read_reported_event,
)
from tests.fitconnect.conftest import DestinationKeys

SUBMISSION = "5e4a9f0e-3c1b-4c3e-9a57-2a5f8e1f0b21"
CASE = "0b8d3c4e-6f7a-4b1c-8d2e-9f0a1b2c3d4e"


def _b64(value: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_round_trip_and_a_changed_byte_is_an_encryption_issue(
    destination_keys: DestinationKeys,
) -> None:
    public = load_key(destination_keys.encryption.public, private=False, purpose="enc")
    token = encrypt(b"Fachdaten", public, content_type="application/json")
    assert decrypt(token, destination_keys.encryption.key) == b"Fachdaten"
    parts = token.split(".")
    parts[3] = ("A" if parts[3][0] != "A" else "B") + parts[3][1:]
    with pytest.raises(CryptoError, match="data: decryption failed"):
        decrypt(".".join(parts), destination_keys.encryption.key, what="data")
    assert authentication_tag(token) == parts[4]


def test_other_algorithms_and_compression_are_refused(destination_keys: DestinationKeys) -> None:
    key = destination_keys.encryption.key
    public = load_key(destination_keys.encryption.public, private=False, purpose="enc")
    for header, refusal in (
        ({"alg": "RSA-OAEP", "enc": "A256GCM"}, "alg/enc"),
        ({"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}, "alg/enc"),
        ({"alg": "RSA-OAEP-256", "enc": "A256GCM", "zip": "DEF"}, "compressed"),
    ):
        token = jwe.JWE(b"x", protected=json.dumps(header), recipient=public)
        with pytest.raises(CryptoError, match=refusal):
            decrypt(token.serialize(compact=True), key)
    with pytest.raises(CryptoError, match="compact"):
        decrypt("not-a-jwe", key)


def test_short_keys_are_refused() -> None:
    short = generate_key("short", use="enc", bits=2048)
    with pytest.raises(CryptoError, match="2048 bits"):
        load_key(short.public, private=False, purpose="encryption")


def test_accept_event_verifies_and_a_forged_one_does_not(
    destination_keys: DestinationKeys, service_key: KeyPair
) -> None:
    signature = destination_keys.signature
    tags = AuthenticationTags("m", "d", {"a1": "t1"})
    token = security_event(
        ACCEPT_SUBMISSION,
        issuer="destination-1",
        submission_id=SUBMISSION,
        case_id=CASE,
        key=signature.key,
        tags=tags,
    )
    keys = {signature.kid: load_key(signature.public, private=False, purpose="sig")}
    event = read_event(token, keys)
    assert (event.event, event.submission_id, event.case_id, event.tags()) == (
        ACCEPT_SUBMISSION,
        SUBMISSION,
        CASE,
        tags,
    )
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"submission:{SUBMISSION}" and claims["txn"] == f"case:{CASE}"
    forged = ".".join([header, _b64({**claims, "txn": "case:" + SUBMISSION}), sig])
    with pytest.raises(CryptoError, match="signature invalid"):
        read_event(forged, keys)
    # Signed by another key under the destination's kid: the signature does not hold.
    impostor = KeyPair(service_key.key)
    other = security_event(
        REJECT_SUBMISSION,
        issuer="destination-1",
        submission_id=SUBMISSION,
        case_id=CASE,
        key=impostor.key,
        problems=[Problem("encryption-issue", "t", "d", "data")],
    )
    with pytest.raises(CryptoError, match="unknown key"):
        read_event(other, keys)
    relabelled = ".".join(
        [_b64({"alg": "PS512", "typ": "secevent+jwt", "kid": signature.kid}), *other.split(".")[1:]]
    )
    with pytest.raises(CryptoError, match="signature invalid"):
        read_event(relabelled, keys)


REPLY = "3f6e2d1c-8b7a-4c5d-9e0f-1a2b3c4d5e6f"


def test_a_replys_event_names_the_reply_and_declares_a_schema_that_allows_it(
    destination_keys: DestinationKeys,
) -> None:
    signature = destination_keys.signature
    keys = {signature.kid: load_key(signature.public, private=False, purpose="sig")}
    token = security_event(
        ACCEPT_REPLY, issuer="sender-1", reply_id=REPLY, case_id=CASE, key=signature.key
    )
    event = read_event(token, keys)
    assert (event.subject, event.reply_id, event.submission_id) == ("reply", REPLY, "")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == f"reply:{REPLY}"
    assert claims["$schema"] == SET_SCHEMA_REPLIES  # 1.0.x allows submission: only
    # A submission's event about a reply, or a reply's about a submission, is refused both
    # when it is made and when it is read.
    with pytest.raises(ValueError, match="reply_id alone"):
        security_event(
            ACCEPT_REPLY, issuer="s", submission_id=SUBMISSION, case_id=CASE, key=signature.key
        )
    with pytest.raises(ValueError, match="submission_id alone"):
        security_event(
            ACCEPT_SUBMISSION, issuer="d", reply_id=REPLY, case_id=CASE, key=signature.key
        )
    header, _, _ = token.split(".")
    mixed = {**claims, "sub": f"submission:{SUBMISSION}"}
    unsigned = ".".join([header, _b64(mixed), "c2ln"])
    with pytest.raises(CryptoError, match="cannot be about a submission"):
        read_reported_event(unsigned)
    # Read as reported (the destination cannot know the sender's key): claims still checked.
    reported = read_reported_event(token)
    assert (reported.event, reported.reply_id, reported.case_id) == (ACCEPT_REPLY, REPLY, CASE)
    with pytest.raises(CryptoError, match="compact"):
        read_reported_event("one.two")
