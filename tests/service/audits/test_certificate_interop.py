"""Certificates verify outside Python: openssl and a Node script (verify_certificate.mjs, Node's own crypto and
its own RFC 8785 code) check a certificate the service signs for a real audit report of a tiny model, and
refuse it after a one-byte change.

The certificate is written as the API serves it (Python writes 100.0 where JavaScript writes 100), so these
tests fail if the signed bytes are not the RFC 8785 form every language can rebuild.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rfc8785

from service.audits import certificate
from service.audits.service import certificate_of, signing_key_info
from service.settings import Settings
from tests.service.tiny import ARCH, tiny_data, trained_state
from unlearning.audit.report import build_report
from unlearning.models import build_model

NODE_VERIFIER = Path(__file__).with_name("verify_certificate.mjs")
SEED_B64 = base64.b64encode(bytes(range(32))).decode()
# RFC 8410: the DER prefix of every Ed25519 SubjectPublicKeyInfo, followed by the 32 raw key bytes
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
TOOL_TIMEOUT_S = 60

# RFC 8785's own examples (sections 3.2.2 and 3.2.3): input and the canonical form the RFC prints
RFC8785_EXAMPLES = [
    (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    ),
    (
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
        ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
        ' "\\u00f6": "Latin Small Letter O With Diaeresis"}',
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",'
        '"\u20ac":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    ),
]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript verifier cannot run")
    return node


def _openssl() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    version = subprocess.run([openssl, "version"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"OpenSSL (\d+)\.", version)
    if match is None or int(match.group(1)) < 3:
        pytest.skip(f"openssl pkeyutl -rawin (Ed25519 over a file) needs OpenSSL 3, this is {version.strip()}")
    return openssl


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)


def _change_one_hex_digit(raw: bytes, digest: str) -> bytes:
    """`raw` with one byte changed: the first hex digit of `digest`, which occurs in it once."""
    assert raw.count(digest.encode()) == 1
    at = raw.index(digest.encode())
    changed = raw[:at] + (b"1" if raw[at : at + 1] == b"0" else b"0") + raw[at + 1 :]
    assert sum(a != b for a, b in zip(raw, changed, strict=True)) == 1
    return changed


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """A real audit report of the tiny CNN that memorised its digits, with the context the worker gives and
    non-ASCII labels; its floats include 100.0 (the memorised samples) and 1e-07 (a learning rate)."""
    data = tiny_data()
    model = build_model(ARCH)
    model.load_state_dict(trained_state())
    model.eval()
    train = data.train
    return build_report(
        model=model,
        parent=model,
        original=model,
        current=train.subset(np.arange(0, 20)),
        # labels whose order differs between UTF-16 code units (RFC 8785) and code points (Python's sort)
        earlier=[("\U0001f600-Anfrage", train.subset(np.arange(20, 30))), ("\uff61", train.subset(np.arange(30, 40)))],
        retain_sample=train.subset(np.arange(40, len(train))),
        test=data.test,
        rmia=None,
        context={
            "model_id": str(uuid.UUID(int=0x6F1C0B4E)),
            "version": 2,
            "parent_version": 1,
            "request_ids": ["Löschantrag-Ω-7"],
            "method": "amun",
            "hyper_parameters": {"lr": 1e-7, "epochs": 2},
            "seeds": {"unlearn": 0},
            "input_sha256": "0" * 64,
            "output_sha256": "9f" * 32,
        },
    )


@pytest.fixture(scope="module")
def served(report: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The certificate, the signing-key body and the report as files, each as the API serves it."""
    folder = tmp_path_factory.mktemp("served")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'ledger.db'}", signing_key=SEED_B64, signing_key_file=folder / "key"
    )

    def as_served(body: Any) -> bytes:
        # Starlette's JSONResponse.render, which writes 100.0 for a float 100
        return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()

    files = {name: folder / f"{name}.json" for name in ("certificate", "key", "report")}
    files["certificate"].write_bytes(as_served(certificate_of(report, settings).model_dump(mode="json")))
    files["key"].write_bytes(as_served(signing_key_info(settings).model_dump(mode="json")))
    files["report"].write_bytes(as_served(report))
    return files


def test_the_served_files_hold_numbers_python_and_rfc8785_write_differently(served: dict[str, Path]) -> None:
    # without these the other tests here could pass with Python's own json.dumps bytes
    text = served["certificate"].read_text(encoding="utf-8")
    assert ":100.0" in text and "Löschantrag-Ω-7" in text
    assert "1e-07" in served["report"].read_text(encoding="utf-8")
    summary = json.loads(text)["summary"]
    canonical = rfc8785.dumps(summary).decode("utf-8")
    assert ":100," in canonical
    # U+1F600 sorts before U+FF61 by UTF-16 code units (RFC 8785), after it by code points (Python's sort); the
    # labels key the earlier sets' AUCs (check names elsewhere in the summary quote them too)
    labels = summary["metrics"]["earlier_loss_auc"]
    canonical_labels = rfc8785.dumps(labels).decode("utf-8")
    assert canonical_labels.index("\U0001f600-Anfrage") < canonical_labels.index("\uff61")
    python_sorted = json.dumps(labels, sort_keys=True, ensure_ascii=False)
    assert python_sorted.index("\U0001f600-Anfrage") > python_sorted.index("\uff61")


def test_openssl_verifies_the_certificate_over_rfc8785_bytes_and_refuses_one_changed_byte(
    served: dict[str, Path], tmp_path: Path
) -> None:
    openssl = _openssl()
    document = json.loads(served["certificate"].read_text(encoding="utf-8"))
    published = json.loads(served["key"].read_text(encoding="utf-8"))
    # the key as PEM from the published raw bytes, and the signed bytes by the rfc8785 package from the served
    # text: neither goes through service.audits.certificate
    der = ED25519_SPKI_PREFIX + base64.b64decode(published["public_key"])
    pem = tmp_path / "pub.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n" + "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
                   + "\n-----END PUBLIC KEY-----\n")  # fmt: skip
    signature = tmp_path / "sig.bin"
    signature.write_bytes(base64.b64decode(document["signature"]))
    canonical = rfc8785.dumps(document["summary"])
    data = tmp_path / "canonical.bin"

    def openssl_verify(signed: bytes) -> subprocess.CompletedProcess[str]:
        data.write_bytes(signed)
        return _run(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pem, "-rawin", "-in", data,
                    "-sigfile", signature)  # fmt: skip

    genuine = openssl_verify(canonical)
    assert genuine.returncode == 0, genuine.stdout + genuine.stderr
    assert "Signature Verified Successfully" in genuine.stdout
    altered = openssl_verify(_change_one_hex_digit(canonical, document["summary"]["sha256"]))
    assert altered.returncode == 1, altered.stdout + altered.stderr
    assert "Signature Verification Failure" in altered.stdout


def test_node_verifier_accepts_the_certificate_with_its_report_and_refuses_one_changed_byte(
    served: dict[str, Path], tmp_path: Path
) -> None:
    node = _node()
    genuine = _run(node, NODE_VERIFIER, served["certificate"], served["key"], served["report"])
    assert genuine.returncode == 0, genuine.stdout + genuine.stderr
    assert genuine.stdout.startswith("valid: model 00000000-0000-0000-0000-00006f1c0b4e version 2, verdict ")

    raw = served["certificate"].read_bytes()
    altered = tmp_path / "certificate.json"
    altered.write_bytes(_change_one_hex_digit(raw, json.loads(raw)["summary"]["sha256"]))
    refused = _run(node, NODE_VERIFIER, altered, served["key"])
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout == "invalid: the signature does not match the summary\n"


def test_node_verifier_refuses_a_report_changed_by_one_byte(served: dict[str, Path], tmp_path: Path) -> None:
    node = _node()
    raw = served["report"].read_bytes()
    altered = tmp_path / "report.json"
    altered.write_bytes(_change_one_hex_digit(raw, json.loads(raw)["context"]["input_sha256"]))
    refused = _run(node, NODE_VERIFIER, served["certificate"], served["key"], altered)
    assert refused.returncode == 1 and refused.stdout == "invalid: report_sha256 is not this report's\n", refused.stdout


def test_node_verifier_imports_the_jwk_alone_and_refuses_another_key(served: dict[str, Path], tmp_path: Path) -> None:
    node = _node()
    jwk = json.loads(served["key"].read_text(encoding="utf-8"))["jwk"]
    alone = tmp_path / "jwk.json"
    alone.write_text(json.dumps(jwk))
    assert _run(node, NODE_VERIFIER, served["certificate"], alone).returncode == 0
    # another key under the same kid: only the signature can tell
    other = certificate.public_jwk(certificate.private_key_from_b64(base64.b64encode(b"\x01" * 32).decode()))
    alone.write_text(json.dumps({**other, "kid": jwk["kid"]}))
    refused = _run(node, NODE_VERIFIER, served["certificate"], alone)
    assert refused.returncode == 1 and refused.stdout == "invalid: the signature does not match the summary\n"


@pytest.mark.parametrize(("given", "expected"), RFC8785_EXAMPLES, ids=["numbers-and-strings", "key-order"])
def test_the_services_canonical_form_is_the_one_rfc8785_prints(given: str, expected: str) -> None:
    assert certificate.canonical_bytes(json.loads(given)) == expected.encode("utf-8")


@pytest.mark.parametrize(("given", "expected"), RFC8785_EXAMPLES, ids=["numbers-and-strings", "key-order"])
def test_the_node_canonical_form_is_the_one_rfc8785_prints(given: str, expected: str, tmp_path: Path) -> None:
    node = _node()
    source = tmp_path / "given.json"
    source.write_text(given, encoding="utf-8")
    printed = subprocess.run([node, NODE_VERIFIER, "--canonicalize", source], capture_output=True,
                             timeout=TOOL_TIMEOUT_S, check=True).stdout  # fmt: skip
    assert printed == expected.encode("utf-8")


def test_node_and_the_service_canonicalise_the_served_summary_and_report_to_the_same_bytes(
    served: dict[str, Path], tmp_path: Path
) -> None:
    node = _node()
    document = json.loads(served["certificate"].read_text(encoding="utf-8"))
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(document["summary"]), encoding="utf-8")
    report = json.loads(served["report"].read_text(encoding="utf-8"))
    for source, value in ((summary, document["summary"]), (served["report"], report)):
        printed = subprocess.run([node, NODE_VERIFIER, "--canonicalize", source], capture_output=True,
                                 timeout=TOOL_TIMEOUT_S, check=True).stdout  # fmt: skip
        assert printed == certificate.canonical_bytes(value), source.name
