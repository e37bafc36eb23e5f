// Verify an unlearning-service certificate with nothing but Node's standard library: the proof that
// certificates need no Python to check. Used by tests/service/audits/test_certificate_interop.py.
//
//   node verify_certificate.mjs CERTIFICATE.json KEY.json [REPORT.json]
//     KEY.json: the body of GET /v1/signing-key, or its `jwk` alone (`python -m service public-key --jwk`);
//     REPORT.json (GET .../audit): also check that the certificate's report_sha256 is this report's.
//     Prints "valid: ..." and exits 0, or "invalid: <reason>" and exits 1.
//   node verify_certificate.mjs --canonicalize FILE.json
//     Writes the RFC 8785 form of the JSON in FILE to stdout.
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";

// RFC 8785 (JCS), written from the RFC rather than shared with the service's Python.
function canonicalize(value) {
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`${value} has no JSON form`);
    return JSON.stringify(value); // ECMAScript Number-to-String, which RFC 8785 section 3.2.2.3 adopts
  }
  if (typeof value === "string") {
    // JSON.stringify would escape a lone surrogate; RFC 8785 section 3.2.2.2 refuses it instead
    if (/\p{Cs}/u.test(value)) throw new Error("a string holds a lone surrogate");
    return JSON.stringify(value); // escapes exactly ", \ and U+0000..U+001F, as section 3.2.2.2 asks
  }
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`;
  // sort() without a comparator orders by UTF-16 code units, the order section 3.2.3 prescribes
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${canonicalize(key)}:${canonicalize(value[key])}`).join(",")}}`;
}

function check(certificate, published, report) {
  if (certificate.algorithm !== "Ed25519") throw new Error(`algorithm ${certificate.algorithm} is not Ed25519`);
  if (certificate.canonicalization !== "RFC8785") {
    throw new Error(`canonicalization ${certificate.canonicalization} is not RFC8785`);
  }
  const jwk = published.jwk ?? published;
  if (jwk.kid !== undefined && jwk.kid !== certificate.key_id) {
    throw new Error(`signed by key ${certificate.key_id}, not by the given key ${jwk.kid}`);
  }
  const key = createPublicKey({ key: jwk, format: "jwk" }); // RFC 8037: kty OKP, crv Ed25519, x
  const signed = Buffer.from(canonicalize(certificate.summary), "utf8");
  // Ed25519 hashes internally: no digest is named
  if (!verify(null, signed, key, Buffer.from(certificate.signature, "base64"))) {
    throw new Error("the signature does not match the summary");
  }
  if (report !== undefined) {
    const digest = createHash("sha256").update(canonicalize(report), "utf8").digest("hex");
    if (digest !== certificate.summary.report_sha256) throw new Error("report_sha256 is not this report's");
  }
}

const args = process.argv.slice(2);
const readJson = (path) => JSON.parse(readFileSync(path, "utf8"));
if (args[0] === "--canonicalize" && args.length === 2) {
  process.stdout.write(canonicalize(readJson(args[1])));
} else if (args.length === 2 || args.length === 3) {
  try {
    const certificate = readJson(args[0]);
    check(certificate, readJson(args[1]), args[2] === undefined ? undefined : readJson(args[2]));
    const { model_id: model, version, verdict } = certificate.summary;
    console.log(`valid: model ${model} version ${version}, verdict ${verdict}, key ${certificate.key_id}`);
  } catch (error) {
    console.log(`invalid: ${error.message}`);
    process.exit(1);
  }
} else {
  console.error("usage: node verify_certificate.mjs CERTIFICATE.json KEY.json [REPORT.json]");
  console.error("       node verify_certificate.mjs --canonicalize FILE.json");
  process.exit(2);
}
