"""A labelled corpus for the output detectors: secrets in the shapes and evasions the adversarial
probe used (F1, F2 of `reviews/2026-11-30-adversarial-probe.md`, its 38 payloads reconstructed
from the report) and more, and non-secrets that look close to one.

Each `Case` is a worker result (`output`, `error`), the detectors that should find it (empty for
a non-secret) and its `needles`: substrings of the payload that must not be visible to the
submitter or in a reviewer's preview. Every value is fake: the keys are random bytes behind a
real key's prefix, the card and account numbers are the issuers' published test numbers.
"""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass
from typing import Any

__all__ = ["CASES", "NON_SECRETS", "PROBE", "SECRETS", "Case"]


@dataclass(frozen=True)
class Case:
    name: str
    detectors: frozenset[str]  # the detectors that should find it; empty for a non-secret
    output: Any
    error: str | None = None
    needles: tuple[str, ...] = ()
    probe: bool = False  # one of the probe's 38 payloads


_rng = random.Random(14)
_B64 = string.ascii_letters + string.digits + "+/"


def _b64(prefix_hex: str, n: int) -> str:
    raw = bytes.fromhex(prefix_hex) + bytes(_rng.getrandbits(8) for _ in range(n))
    return base64.b64encode(raw).decode()


def _lines(body: str, width: int = 64) -> list[str]:
    return [body[i : i + width] for i in range(0, len(body), width)]


AKIA = "AKIAQ7XK2M4N6P8R0T2V"
AWS_SECRET = "nFIGLj5M7YYpHCOTHUtuJvbipRdkJAWZ4moUxm+y"
AWS_SECRET_2 = "I5B+KGnplJJpdu0ol29vX6N+631mG8YE5+is+I4c"
AWS_SECRET_3 = "Z2cSV8HTMyf8GmXmeyNdaKTGoeszaDGHxFAQLVeu"
RSA_BODY = _b64("308204a40201000282010100", 1180)  # PKCS#1 RSA, 2048-bit
RSA_LINES = _lines(RSA_BODY)
RSA_PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(RSA_LINES) + "\n-----END RSA PRIVATE KEY-----"
EC_BODY = _b64("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420", 100)
OSSH_BODY = base64.b64encode(
    b"openssh-key-v1\0\0\0\0\x04none" + bytes(_rng.getrandbits(8) for _ in range(300))
).decode()
GHP = "ghp_TesfGMKnXQVHE88Z848ATZDvxy3KETVqyrxl"
XOXB = "xoxb-2048975310-7741852963-Qz8Wv3Rt6Yp1Lk4Jh7Gf"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2"
    "MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
CARD = "4111111111111111"
EMAIL = "jane.doe@example.com"


def _fw(text: str) -> str:
    """Full-width forms of ASCII letters and digits (NFKC folds them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


# The probe's 38 payloads: 14 it saw caught with every detector on (5 under the seed policy),
# and the 24 that leaked (the 5 structural bypasses of F1, the 2 preview leaks of F2, the misses
# it lists, and 8 encoding, split, zero-width and full-width variants).
_PROBE_NAMES = frozenset(
    {
        "aws-key-plain", "private-key-pem", "email-plain", "card-spaced", "card-amex-dashed",
        "ssn-dashed", "aws-secret-assigned", "github-token", "slack-token", "jwt",
        "api-key-assignment", "bearer-token", "phone", "iban",
        "error-aws-key", "object-key-aws-key", "card-as-json-integer", "ssn-as-json-integer",
        "object-key-email", "pem-split-across-list", "pem-header-one-long-line-no-end",
        "password-in-prose", "pw-colon-in-prose", "pw-object-key", "db-pass-object-key",
        "bare-aws-secret", "aws-secret-near-key-id", "pem-body-without-header", "card-dotted",
        "card-mixed-separators", "aws-key-base64", "pem-base64", "aws-key-split-across-list",
        "card-split-across-list", "aws-key-zero-width", "email-zero-width", "aws-key-full-width",
        "card-full-width",
    }
)  # fmt: skip


def _s(name: str, detectors: str, output: Any, *needles: str, error: str | None = None) -> Case:
    return Case(name, frozenset(detectors.split()), output, error, needles or (), name in _PROBE_NAMES)


SECRETS: tuple[Case, ...] = (
    # F1: where the secret sits
    _s("error-aws-key", "aws_access_key", "ok", AKIA, error=f"boom {AKIA}"),
    _s("object-key-aws-key", "aws_access_key", {AKIA: "x"}, AKIA),
    _s("card-as-json-integer", "credit_card", {"card": int(CARD)}, CARD),
    _s("ssn-as-json-integer", "ssn", {"ssn": 219099999}, "219099999"),
    _s("error-private-key", "private_key", None, RSA_LINES[1], error=f"parse failed near {RSA_PEM[:400]}"),
    _s("error-password", "password", "", "Hunter2!x", error="db connect failed: password=Hunter2!x"),
    _s("object-key-email", "email", {EMAIL: 1}, EMAIL),
    _s("card-as-json-float", "credit_card", {"pan": 5555555555554444.0}, "5555555555554444"),
    # F2: the preview and non-canonical private keys
    _s("pem-split-across-list", "private_key", RSA_PEM.split("\n"), RSA_LINES[0][16:], RSA_LINES[5]),
    _s(
        "pem-header-one-long-line-no-end",
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\n" + RSA_BODY,
        RSA_BODY[20:80],
    ),
    _s("pem-body-without-header", "private_key", "\n".join(RSA_LINES[:8]), RSA_LINES[1]),
    _s("pem-body-lines-in-list", "private_key", {"lines": RSA_LINES[:8]}, RSA_LINES[1], RSA_LINES[6]),
    _s(
        "pem-encrypted-headers-no-end",
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n"
        + "\n".join(RSA_LINES[2:6]),
        RSA_LINES[3],
    ),
    _s(
        "pem-on-one-line-with-spaces", "private_key", "key: " + RSA_PEM.replace("\n", " ")[:700], RSA_LINES[4]
    ),
    _s("ec-pkcs8-body-without-header", "private_key", {"key": EC_BODY}, EC_BODY[20:60]),
    _s("openssh-body-without-header", "private_key", _lines(OSSH_BODY, 70), OSSH_BODY[30:90]),
    # passwords
    _s("password-in-prose", "password", "the password is Tr0ub4dor&3", "Tr0ub4dor&3"),
    _s("pw-colon-in-prose", "password", "login ok. pw: hunter2!", "hunter2!"),
    _s("pw-object-key", "password", {"user": "app", "pw": "hunter22"}, "hunter22"),
    _s("db-pass-object-key", "password", {"db_pass": "s3cr3tP4ss"}, "s3cr3tP4ss"),
    _s("pass-object-key", "password", {"pass": "Xy9#kLm2"}, "Xy9#kLm2"),
    _s("secret-object-key", "password", {"secret": "hunter2-prod"}, "hunter2-prod"),
    _s("password-was-in-prose", "password", "my old password was swordfish7, rotate it", "swordfish7"),
    _s("password-for-host-in-prose", "password", "the password for db01 is Q8rx!m2Z", "Q8rx!m2Z"),
    _s("passwd-object-key", "password", {"passwd": "letmein99"}, "letmein99"),
    _s("db-password-object-key", "password", {"db_password": "Pa55w0rd!"}, "Pa55w0rd!"),
    _s("password-assignment", "password", "password=hunter22", "hunter22"),
    _s("password-in-error-pw", "password", None, "hunter2x", error="auth: pw=hunter2x rejected"),
    # AWS secret keys
    _s("bare-aws-secret", "aws_secret_key", f"creds rotated, new value {AWS_SECRET}", AWS_SECRET),
    _s(
        "aws-secret-near-key-id",
        "aws_access_key aws_secret_key",
        f"AWS {AKIA} / {AWS_SECRET_2}",
        AKIA,
        AWS_SECRET_2,
    ),
    _s("aws-secret-assigned", "aws_secret_key", f"aws_secret_access_key = {AWS_SECRET_3}", AWS_SECRET_3),
    _s("aws-secret-json", "aws_secret_key", {"SecretAccessKey": AWS_SECRET}, AWS_SECRET),
    _s("aws-secret-in-list", "aws_secret_key", ["ok", AWS_SECRET_3], AWS_SECRET_3),
    # cards, ssn
    _s("card-dotted", "credit_card", "card 4111.1111.1111.1111 on file", "4111.1111.1111.1111"),
    _s("card-mixed-separators", "credit_card", "card 4111 1111-1111 1111 on file", "4111 1111-1111 1111"),
    _s("card-spaced", "credit_card", "charge 4111 1111 1111 1111", "4111 1111 1111 1111"),
    _s("card-amex-dashed", "credit_card", "amex 3782-822463-10005", "3782-822463-10005"),
    _s("ssn-dashed", "ssn", "SSN 078-05-1120", "078-05-1120"),
    _s("ssn-spaced-in-error", "ssn", None, "536 22 1234", error="bad record: 536 22 1234"),
    # evasions: encodings, splits, invisible and full-width characters
    _s(
        "aws-key-base64",
        "aws_access_key",
        "payload: " + base64.b64encode(AKIA.encode()).decode(),
        base64.b64encode(AKIA.encode()).decode(),
    ),
    _s(
        "pem-base64",
        "private_key",
        {"blob": base64.b64encode(RSA_PEM[:600].encode()).decode()},
        base64.b64encode(RSA_PEM[:600].encode()).decode()[40:100],
    ),
    _s(
        "aws-key-split-across-list",
        "aws_access_key",
        ["AKIAQ7XK2M", "4N6P8R0T2V"],
        "AKIAQ7XK2M",
        "4N6P8R0T2V",
    ),
    _s("card-split-across-list", "credit_card", ["card 4111 1111", "1111 1111"], "4111 1111", "1111 1111"),
    _s(
        "aws-key-zero-width",
        "aws_access_key",
        "key AKIA\u200bQ7XK\u200d2M4N6P8R0T2V",
        "AKIA\u200bQ7XK\u200d2M4N6P8R0T2V",
    ),
    _s(
        "email-zero-width",
        "email",
        "mail jane\u200b.doe@exa\u2060mple.com",
        "jane\u200b.doe@exa\u2060mple.com",
    ),
    _s("aws-key-full-width", "aws_access_key", f"key {_fw(AKIA)}", _fw(AKIA)),
    _s("card-full-width", "credit_card", f"card {_fw('4111 1111 1111 1111')}", _fw("4111 1111 1111 1111")),
    _s("aws-key-hex", "aws_access_key", "dump " + AKIA.encode().hex(), AKIA.encode().hex()),
    _s(
        "password-base64",
        "password",
        "cfg=" + base64.b64encode(b"password=Hunter2!x").decode(),
        base64.b64encode(b"password=Hunter2!x").decode(),
    ),
    _s(
        "aws-key-double-base64",
        "aws_access_key",
        base64.b64encode(base64.b64encode(AKIA.encode())).decode(),
        base64.b64encode(base64.b64encode(AKIA.encode())).decode(),
    ),
    _s("github-token-soft-hyphen", "github_token", f"token {GHP[:12]}\u00ad{GHP[12:]}", GHP[12:]),
    _s("aws-key-dashed-groups", "aws_access_key", "AKIA-Q7XK-2M4N-6P8R-0T2V", "Q7XK-2M4N-6P8R-0T2V"),
    _s("email-base64", "email", {"x": base64.b64encode(f"to: {EMAIL}".encode()).decode()}, EMAIL),
    # shapes that were already caught
    _s("aws-key-plain", "aws_access_key", f"key {AKIA} here", AKIA),
    _s("private-key-pem", "private_key", f"here:\n{RSA_PEM}", RSA_LINES[2]),
    _s("github-token", "github_token", f"GH_TOKEN={GHP}", GHP),
    _s("slack-token", "slack_token", f"slack {XOXB}", XOXB),
    _s("jwt", "jwt", f"Authorization: {JWT}", JWT),
    _s(
        "api-key-assignment",
        "generic_api_key",
        "api_key=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    ),
    _s(
        "bearer-token",
        "generic_api_key",
        "Authorization: Bearer Zx81kPq02LmN5tR7vW3yB6cD",
        "Zx81kPq02LmN5tR7vW3yB6cD",
    ),
    _s("email-plain", "email", f"mail {EMAIL}", EMAIL),
    _s("phone", "phone", "call +1 415 555 2671", "415 555 2671"),
    _s("iban", "iban", "pay DE89 3704 0044 0532 0130 00", "3704 0044 0532 0130"),
    _s("ip-address", "ip_address", "connect to 10.20.30.40:5432", "10.20.30.40"),
    _s(
        "openai-key",
        "generic_api_key",
        "OPENAI_API_KEY=sk-proj-Qw8eRt5yUi2oPa7sDf4gHj1k",
        "Qw8eRt5yUi2oPa7sDf4gHj1k",
    ),
    _s("token-object-key", "github_token", {"token": GHP}, GHP),
)


def _n(name: str, output: Any, error: str | None = None) -> Case:
    return Case(name, frozenset(), output, error)


_PNG = _b64("89504e470d0a1a0a0000000d49484452", 150)
_UUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"

NON_SECRETS: tuple[Case, ...] = (
    _n("uuid", f"request {_UUID} done"),
    _n("uuid-list", ["9b2e6a1c-1c7e-4c8e-8f1a-2a7c0b9d3e41", "c56a4180-65aa-42ec-a945-5fd21dec0538"]),
    _n("uuid-hex", "id 3f2504e04f8911d39a0c0305e82c3301"),
    _n("git-sha", "commit 3f2a9c1e8b7d6f5a4c3b2a1908f7e6d5c4b3a291"),
    _n(
        "git-shas-list",
        ["a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "da39a3ee5e6b4b0d3255bfef95601890afd80709"],
    ),
    _n("short-sha", "fixed in 3f2a9c1"),
    _n("sha256", "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    _n("docker-digest", "image@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    _n("md5-etag", {"ETag": "d41d8cd98f00b204e9800998ecf8427e"}),
    _n(
        "npm-integrity",
        "sha512-Zd8Cj1lRrG9FGyGEQEwh8ZHqN6hRZq5cVh0pB3Xj+LQvH1Gq0c1bE7eP3C2kYqgJ1mXh0f4dW2sU9vT6rL5nAw==",
    ),
    _n("base64-png", {"image": f"data:image/png;base64,{_PNG}"}),
    _n("base64-png-bare", _PNG),
    _n("base64-prose", base64.b64encode(b"the build finished in 42 seconds without warnings").decode()),
    _n("hex-prose", b"hello from the build machine".hex()),
    _n("order-number", "order ORD-2024-000123 shipped"),
    _n("order-number-long", {"order_id": 1234567890123}),
    _n("invoice-number", "invoice 20240115-0042-7781"),
    _n("tracking-number", "UPS 1Z999AA10123456784"),
    _n("date", "2024-01-15 10:30:00"),
    _n("iso-timestamp", "2024-01-15T10:30:00+01:00"),
    _n("epoch-ms", {"ts": 1700000000000}),
    _n("epoch-ms-list", [1700000000000, 1700000000123, 1700000000456]),
    _n("version", "version 1.2.3, build 10.0.19041.1"),
    _n("luhn-fail-number", {"count": 4111111111111112}),
    _n("big-id", {"id": 1234567890123456}),
    _n("zip-code", {"zip": 94105, "city": "San Francisco"}),
    _n("pi", "pi 3.14159265358979323846"),
    _n("digits-table", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
    _n("reset-password-prose", "reset your password via the link we sent"),
    _n("password-rules-prose", "the password must be at least 12 characters long"),
    _n("password-required", "password is required"),
    _n("password-correct", "the password is correct"),
    _n("password-prompt", "Enter your password: "),
    _n("password-masked", "Password: ********"),
    _n("forgot-password", "Forgot password? Click here."),
    _n("password-env-ref", "password=${DB_PASSWORD}"),
    _n("password-null", {"password": None, "user": "app"}),
    _n("password-placeholder", {"password": "<redacted>"}),
    _n("pass-test-count", "pass: 15/15, fail: 0"),
    _n("pass-count-json", {"pass": 12, "fail": 0, "skip": 3}),
    _n("tokens-count", {"max_tokens": 4096, "tokens": 1024, "token_count": 512}),
    _n("token-expired-prose", "token expired, please log in again"),
    _n("secret-name-ref", {"secret": "db-credentials", "namespace": "prod"}),
    _n("api-key-env-ref", "api_key=${API_KEY}"),
    _n("aws-region", "AWS region us-east-1, bucket s3://my-bucket/path/to/key"),
    _n("aws-arn", "arn:aws:iam::123456789012:role/deploy-role"),
    _n("url-path-40", "/api/v1/Users/12345/Orders/67890/Items/4"),
    _n("long-identifier", "ThisIsAVeryLongIdentifierNameForTesting1"),
    _n("java-class", "at com.example.service.UserAccountRepositoryImpl.findById(Repo.java:42)"),
    _n("file-paths", ["/var/log/app/2024-01-15.log", "/home/user/projects/gatehouse/README.md"]),
    _n(
        "public-key",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
        "-----END PUBLIC KEY-----",
    ),
    _n("certificate-body", "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ"),
    _n("jwt-header-only", "eyJhbGciOiJIUzI1NiJ9"),
    _n("isbn", "ISBN 978-3-16-148410-0"),
    _n("mac-address", "mac 00:1A:2B:3C:4D:5E"),
    _n("loopback", "listening on 127.0.0.1:8080"),
    _n("email-like-file", "icon@2x.png"),
    _n("lorem", "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor."),
    _n("list-of-words", ["alpha", "beta", "gamma", "delta"]),
    _n("error-plain", None, "timeout after 30s connecting to db01"),
    _n(
        "error-trace",
        None,
        "Traceback (most recent call last):\n  File \"app.py\", line 42, in main\nKeyError: 'user'",
    ),
    _n("random-request-id-40", {"request_id": "8sBXIvadwcIGYpbJb6dveHWYkWvMFyVyKivzmhiZ"}),
)

CASES: tuple[Case, ...] = SECRETS + NON_SECRETS
PROBE: tuple[Case, ...] = tuple(c for c in SECRETS if c.probe)
assert len(PROBE) == len(_PROBE_NAMES) == 38, sorted(_PROBE_NAMES - {c.name for c in PROBE})
