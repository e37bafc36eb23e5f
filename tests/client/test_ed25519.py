"""The client's pure-Python Ed25519 verification: RFC 8032's test vectors, and the same verdict as the
`cryptography` package (OpenSSL) on many keys and messages, genuine and altered."""

from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from unlearning_client.ed25519 import L, P, verify

# RFC 8032 section 7.1, TEST 1 to 3: public key, message, signature
RFC_8032_VECTORS = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
        "d25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
        "387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659"
        "4a7c15e9716ed28dc027beceea1ec40a",
    ),
]


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _openssl_accepts(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _flip(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


@pytest.mark.parametrize(("public", "message", "signature"), RFC_8032_VECTORS, ids=["test1", "test2", "test3"])
def test_the_rfc_8032_vectors_verify(public: str, message: str, signature: str) -> None:
    assert verify(bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature))


def test_the_rfc_8032_vector_fails_with_another_message() -> None:
    public, _, signature = RFC_8032_VECTORS[1]
    assert not verify(bytes.fromhex(public), b"\x73", bytes.fromhex(signature))


def test_genuine_signatures_verify_as_openssl_verifies_them() -> None:
    rng = random.Random(25519)
    for _ in range(60):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        message = rng.randbytes(rng.choice([0, 1, 31, 64, 1000]))
        signature = key.sign(message)
        assert _openssl_accepts(_raw(key), message, signature)
        assert verify(_raw(key), message, signature)


def test_a_flipped_bit_in_the_message_the_signature_or_the_key_fails_here_and_in_openssl() -> None:
    rng = random.Random(8032)
    for _ in range(60):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        message = rng.randbytes(rng.randint(1, 200))
        signature = key.sign(message)
        for public, signed, sig in (
            (_raw(key), _flip(message, rng), signature),
            (_raw(key), message, _flip(signature, rng)),
            (_flip(_raw(key), rng), message, signature),
        ):
            assert not _openssl_accepts(public, signed, sig)
            assert not verify(public, signed, sig)


def test_another_keys_signature_fails() -> None:
    signer, other = (Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in (1, 2))
    assert not verify(_raw(other), b"summary", signer.sign(b"summary"))


def test_a_signature_whose_s_is_not_reduced_mod_l_is_refused_as_openssl_refuses_it() -> None:
    # S + L is the same scalar: accepting it would make signatures malleable (RFC 8032 section 5.1.7 step 1)
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signature = key.sign(b"message")
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + L).to_bytes(32, "little")
    assert not _openssl_accepts(_raw(key), b"message", malleated)
    assert not verify(_raw(key), b"message", malleated)


def test_a_public_key_that_encodes_no_point_is_refused() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signature = key.sign(b"message")
    not_reduced = (P + 1).to_bytes(32, "little")  # y >= p is no field element (RFC 8032 section 5.1.3)
    assert not verify(not_reduced, b"message", signature)


@pytest.mark.parametrize(("public_len", "signature_len"), [(31, 64), (32, 63), (33, 64), (32, 65)])
def test_keys_and_signatures_of_the_wrong_length_are_refused(public_len: int, signature_len: int) -> None:
    assert not verify(bytes(public_len), b"", bytes(signature_len))
