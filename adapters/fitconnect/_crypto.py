"""FIT-Connect's cryptography, done by jwcrypto: JWE (RSA-OAEP-256 + A256GCM) for everything a
sender submits, JWS (PS512) for the Security Event Tokens of the event log.

FIT-Connect fixes the algorithms, so this module accepts nothing else: a token naming another
``alg``/``enc``, asking for compression (``zip``: a decompression bomb waits behind it), or
encrypted for another key id is refused before any key is used. Keys are RSA with at least
4096 bits, as the specification demands of destinations.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jwcrypto import jwe, jwk, jws
from jwcrypto.common import JWException

__all__ = [
    "ENC",
    "KEY_ALG",
    "MIN_KEY_BITS",
    "SIGNATURE_ALG",
    "CryptoError",
    "KeyPair",
    "authentication_tag",
    "decrypt",
    "encrypt",
    "generate_key",
    "load_key",
    "protected_header",
    "public_jwk",
    "sign",
    "verify",
]

KEY_ALG = "RSA-OAEP-256"
ENC = "A256GCM"
SIGNATURE_ALG = "PS512"
MIN_KEY_BITS = 4096
# A JWE compact serialisation: header.encrypted_key.iv.ciphertext.tag (base64url parts).
_JWE_PARTS = 5


class CryptoError(ValueError):
    """A token that cannot be decrypted or verified, or a key that does not fit; ``str`` says
    which and why (never anything of the plaintext)."""


def _b64_size(value: str) -> int:
    # The modulus's bit length, not its byte count: a run of zero bytes is no 4096-bit key.
    decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return int.from_bytes(decoded, "big").bit_length()


def _check_rsa(key: Any, *, private: bool, purpose: str) -> None:
    exported = json.loads(key.export(private_key=False))
    if exported.get("kty") != "RSA":
        raise CryptoError(f"{purpose} key: kty must be RSA, not {exported.get('kty')!r}")
    bits = _b64_size(str(exported.get("n", "")))
    if bits < MIN_KEY_BITS:
        raise CryptoError(f"{purpose} key: {bits} bits, FIT-Connect asks for {MIN_KEY_BITS}")
    if private and not key.has_private:
        raise CryptoError(f"{purpose} key: the private part is missing")
    if not key.get("kid"):
        raise CryptoError(f"{purpose} key: no kid")


class KeyPair:
    """One RSA key as a JWK, with its ``kid``; ``public`` is what a destination publishes."""

    def __init__(self, key: Any) -> None:
        self.key = key

    @property
    def kid(self) -> str:
        return str(self.key.get("kid"))

    @property
    def public(self) -> dict[str, Any]:
        return public_jwk(self.key)

    def private_json(self) -> str:
        return str(self.key.export_private())


def generate_key(kid: str, *, use: str, bits: int = MIN_KEY_BITS) -> KeyPair:
    """A new RSA key for ``use`` ``enc`` (wrapKey/unwrapKey) or ``sig`` (sign/verify)."""
    alg = KEY_ALG if use == "enc" else SIGNATURE_ALG
    return KeyPair(jwk.JWK.generate(kty="RSA", size=bits, kid=kid, use=use, alg=alg))


def public_jwk(key: Any) -> dict[str, Any]:
    """The public JWK with the key operations FIT-Connect lists for it."""
    exported: dict[str, Any] = json.loads(key.export_public())
    if exported.get("use") == "enc" or exported.get("alg") == KEY_ALG:
        exported["key_ops"] = ["wrapKey"]
    elif exported.get("use") == "sig" or exported.get("alg") == SIGNATURE_ALG:
        exported["key_ops"] = ["verify"]
    return exported


def load_key(source: Path | str | dict[str, Any], *, private: bool, purpose: str) -> Any:
    """A JWK from a file, a JSON text or a dict; raises ``CryptoError`` when it does not fit."""
    try:
        if isinstance(source, Path):
            text = source.read_text(encoding="utf-8")
        elif isinstance(source, dict):
            text = json.dumps(source)
        else:
            text = source
        key = jwk.JWK.from_json(text)
    except (OSError, ValueError, JWException) as exc:
        raise CryptoError(f"{purpose} key: not a JWK: {exc}") from exc
    _check_rsa(key, private=private, purpose=purpose)
    return key


def encrypt(plaintext: bytes, public_key: Any, *, content_type: str | None = None) -> str:
    """What a sender does: one JWE in compact serialisation for the destination's key."""
    _check_rsa(public_key, private=False, purpose="encryption")
    header: dict[str, str] = {"alg": KEY_ALG, "enc": ENC, "kid": str(public_key.get("kid"))}
    if content_type:
        header["cty"] = content_type
    token = jwe.JWE(plaintext=plaintext, protected=json.dumps(header), recipient=public_key)
    return str(token.serialize(compact=True))


def protected_header(token: str, what: str = "token") -> dict[str, Any]:
    """The protected header of a JWE or JWS, read without any key."""
    parts = token.split(".")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError as exc:
        raise CryptoError(f"{what}: the protected header is no base64url JSON") from exc
    if not isinstance(header, dict):
        raise CryptoError(f"{what}: the protected header is no JSON object")
    return header


def authentication_tag(token: str) -> str:
    """The JWE's authentication tag (its fifth part): what the event log's
    ``authenticationTags`` name, so sender, Zustelldienst and destination speak of one token."""
    parts = token.split(".")
    if len(parts) != _JWE_PARTS:
        raise CryptoError(f"not a compact JWE: {len(parts)} parts, expected {_JWE_PARTS}")
    return parts[4]


def decrypt(token: str, private_key: Any, *, what: str = "token") -> bytes:
    """The plaintext of a JWE for ``private_key``; ``CryptoError`` names ``what`` failed."""
    if not isinstance(token, str) or len(token.split(".")) != _JWE_PARTS:
        raise CryptoError(f"{what}: not a JWE in compact serialisation")
    header = protected_header(token, what)
    if header.get("alg") != KEY_ALG or header.get("enc") != ENC:
        raise CryptoError(
            f"{what}: alg/enc {header.get('alg')}/{header.get('enc')}, expected {KEY_ALG}/{ENC}"
        )
    if "zip" in header:
        raise CryptoError(f"{what}: compressed JWEs are refused")
    kid = str(private_key.get("kid"))
    if header.get("kid") not in (None, kid):
        raise CryptoError(f"{what}: encrypted for key {header.get('kid')!r}, not for {kid!r}")
    try:
        message = jwe.JWE()
        message.allowed_algs = [KEY_ALG, ENC]
        message.deserialize(token, key=private_key)
    except (JWException, ValueError, TypeError) as exc:
        raise CryptoError(f"{what}: decryption failed ({type(exc).__name__})") from exc
    return bytes(message.payload)


def sign(payload: dict[str, Any], private_key: Any, *, typ: str = "secevent+jwt") -> str:
    """A JWS (compact) over the JSON ``payload``, PS512 with ``private_key``."""
    _check_rsa(private_key, private=True, purpose="signing")
    token = jws.JWS(json.dumps(payload, separators=(",", ":")).encode())
    header = {"alg": SIGNATURE_ALG, "typ": typ, "kid": str(private_key.get("kid"))}
    token.add_signature(private_key, alg=SIGNATURE_ALG, protected=json.dumps(header))
    return str(token.serialize(compact=True))


def verify(
    token: str, keys: dict[str, Any], *, what: str = "SET"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a JWS signed PS512 by one of ``keys`` (by ``kid``)."""
    if not isinstance(token, str) or len(token.split(".")) != 3:
        raise CryptoError(f"{what}: not a JWS in compact serialisation")
    header = protected_header(token, what)
    if header.get("alg") != SIGNATURE_ALG:
        raise CryptoError(f"{what}: alg {header.get('alg')!r}, expected {SIGNATURE_ALG}")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise CryptoError(f"{what}: signed with unknown key {header.get('kid')!r}")
    try:
        signed = jws.JWS()
        signed.allowed_algs = [SIGNATURE_ALG]
        signed.deserialize(token)
        signed.verify(key, alg=SIGNATURE_ALG)
        payload = json.loads(signed.payload)
    except (JWException, ValueError, TypeError) as exc:
        raise CryptoError(f"{what}: signature invalid ({type(exc).__name__})") from exc
    if not isinstance(payload, dict):
        raise CryptoError(f"{what}: the payload is no JSON object")
    return header, payload
