"""The output detectors: one named, self-testing regex (plus a validator) per secret or PII kind.

Each `Detector` is a compiled regex that proposes candidates and an optional validator that
throws the implausible ones away (a card number must pass Luhn, an IBAN mod-97, an IPv4 address
must have octets <= 255, ...; the validators live in `gatehouse.output.validators`). Secrets that
have a shape of their own (AWS key ids, private keys, GitHub and Slack tokens, JWTs, prefixed API
keys) take it from `gatehouse.ingress.secrets`, the one table ingress and the audit preview read
too. Like the classifier table in `gatehouse.ingress.patterns`, every
row carries `examples` it must find and `counter_examples` it must not, so the table documents
itself and a test proves each row.

Two rules keep the scan safe on hostile output, where a worker may return megabytes of text
shaped to hurt us:

- every repetition is bounded, and none of an unbounded group is nested in another: the cost
  of a scan is linear in the text (times a small constant per detector);
- where a pattern needs context (`password=...`, `api_key: ...`), the reported span is only the
  value (the named group `secret`), so redaction keeps the key name and the reader sees what
  was removed.

No detector finds anything inside a redaction marker (`[REDACTED:<name>]`): redacting is
therefore stable, and the gate can re-scan redacted text to prove nothing is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gatehouse.ingress.secrets import AWS_KEY_ID_PREFIXES, PRIVATE_KEY_BEGIN, PRIVATE_KEY_END, shape
from gatehouse.output.validators import (
    IBAN_LENGTHS,
    MARKER_PREFIX,
    api_key_valid,
    aws_key_id_valid,
    aws_secret_bare_valid,
    aws_secret_valid,
    card_valid,
    email_valid,
    has_digit,
    iban_valid,
    ip_valid,
    jwt_valid,
    password_valid,
    password_value_valid,
    phone_valid,
    ssn_valid,
    varied,
)
from gatehouse.policy.model import DETECTORS as DETECTOR_NAMES

__all__ = [
    "ALL_DETECTORS",
    "KEYED_DETECTORS",
    "MARKER_PREFIX",
    "Detector",
    "get_detector",
    "keyed_password",
    "public_prefix",
]

# The group that, when a pattern defines it and it took part in the match, is the finding.
_SECRET = "secret"
# The group of a branch that finds a secret by its form alone (`Detector.bare_validator`).
_BARE = "bare"


@dataclass(frozen=True, slots=True)
class Detector:
    """A named regex and validator; `spans(text)` lists what it finds as `(start, end)`."""

    name: str
    regex: str
    description: str
    examples: tuple[str, ...]
    counter_examples: tuple[str, ...]
    # Called with the candidate text (the `secret` group, or the whole match); False drops it.
    validator: Callable[[str], bool] | None = None
    ignore_case: bool = False
    # For a match through the named group `bare` (a secret found by its form alone, with no
    # name in front of it): the stricter test that candidate must pass instead.
    bare_validator: Callable[[str], bool] | None = None
    # A cheap necessary condition: a regex that finds something in every text the detector
    # finds something in (a literal its matches must hold, a run of digits). Most texts hold
    # no secret, and the hint turns them away in a microsecond where the full regex, with its
    # look-arounds and alternations, takes tens. `tests/output` checks the hint against every
    # example and a generated corpus: a hint that misses what the regex finds fails there.
    hint: str | None = None
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)
    hint_compiled: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flags = re.IGNORECASE if self.ignore_case else 0
        compiled = re.compile(self.regex, flags)
        if compiled.search("") is not None:
            # It would report an empty finding at every position.
            raise ValueError(f"detector `{self.name}`: regex matches the empty string")
        object.__setattr__(self, "compiled", compiled)
        object.__setattr__(self, "hint_compiled", re.compile(self.hint, flags) if self.hint else None)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Every accepted finding in `text`, in order, as (start, end) offsets."""
        if self.hint_compiled is not None and self.hint_compiled.search(text) is None:
            return []
        groups = self.compiled.groupindex
        has_secret = _SECRET in groups
        has_bare = _BARE in groups
        out: list[tuple[int, int]] = []
        for m in self.compiled.finditer(text):
            start, end = m.span(_SECRET) if has_secret and m.start(_SECRET) >= 0 else m.span()
            if start == end:
                continue
            validator = self.validator
            if has_bare and m.start(_BARE) >= 0 and self.bare_validator is not None:
                validator = self.bare_validator
            if validator is None or validator(text[start:end]):
                out.append((start, end))
        return out

    def example_problems(self) -> tuple[str, ...]:
        """Examples not found and counter-examples found; empty when the row is sound."""
        problems = [f"example {ex!r} is not found" for ex in self.examples if not self.spans(ex)]
        problems += [f"counter-example {ex!r} is found" for ex in self.counter_examples if self.spans(ex)]
        return tuple(problems)


# `key: value`, `key = value`, `"key": "value"`, `key := value`, `key => value`; quotes around
# the key may be JSON-escaped (`\"password\": \"...\"`) when the output holds serialised JSON.
_ASSIGN = r"""\\?["']?[ \t]{0,8}(?::=|=>|[:=])[ \t]{0,8}"""

# A line break, real or escaped (`\n` inside a JSON string or a log line).
_LINE_BREAK = r"[ \t]{0,8}+(?:\r?\n|(?:\\r)?\\n)"
_END_OF_LINE = r"(?=[ \t]{0,8}+(?:\r?\n|\\n|\\r|$))"
# What follows the first line of a key block without its END line: whole lines of base64 of any
# length (one long line too), RFC 1421 header lines (`Proc-Type: 4,ENCRYPTED`), blank lines, and
# chunks of 16+ base64 characters after spaces (a block whose line breaks became spaces, or one
# read joined from list elements). A line of prose ends it.
_KEY_BODY = (
    r"(?:"
    + _LINE_BREAK
    + r"(?:[A-Za-z0-9+/=]{1,65536}+"
    + _END_OF_LINE
    + r"|[A-Za-z][A-Za-z-]{0,31}:[ \t][^\r\n\\]{0,256}+|(?="
    + _LINE_BREAK
    + r"))"
    + r"|[ \t]{1,8}+[A-Za-z0-9+/=]{16,65536}+"
    + r"){0,8192}+"
)
# The DER of a private key, base64-encoded, begins in a handful of ways (the ASN.1 header of an
# RSA PKCS#1 key, of a PKCS#8 key plain or encrypted, of an EC key, an OpenSSH key's magic): a
# key body without its PEM header is found by them. Certificates and public keys begin
# otherwise (`MIIDdzCC...`, `MIIBIjAN...`).
_KEY_BODY_HEADS = (
    r"MI[I-L][A-Za-z0-9+/]{2}[AQgw]IBA(?:AK[BC]|DAN)",  # RSA PKCS#1, PKCS#8
    r"MI[I-L][A-Za-z0-9+/]{2}[DTjz]B[A-Za-z0-9+/]BgkqhkiG9w0BBQ",  # encrypted PKCS#8
    r"MH[A-Za-z0-9+/]CAQEE",  # EC (SEC1), P-256
    r"MI[GH][A-Za-z0-9+/]AgEBB",  # EC (SEC1), P-384 and P-521
    r"MI[GH][A-Za-z0-9+/]AgEAMB[A-Za-z0-9+/]GByqGSM49",  # EC PKCS#8
    r"MC4CAQAwBQYDK2Vw",  # Ed25519 PKCS#8
    r"b3BlbnNzaC1rZXktdjE",  # openssh-key-v1
)
_KEY_BODY_TAIL = r"[A-Za-z0-9+/]{16,65536}+=*" + _KEY_BODY
_PRIVATE_KEY = "|".join(
    (
        PRIVATE_KEY_BEGIN
        + r"(?:"
        # A complete block: everything up to the END line. The body stops at the first `-----`,
        # so a run of headers without END lines costs one pass, not one pass per header.
        + r"(?:[^-]|-(?!----)){0,65536}+"
        + PRIVATE_KEY_END
        # A truncated block: what follows the header, as far as it looks like a key.
        + r"|"
        + _KEY_BODY
        + r")",
        # A body without its header. Every branch starts with a literal and checks the boundary
        # after it: the regex engine then skips ahead to the next `-`, `M` or `b` instead of
        # trying every position (a nested group would cost the scan twenty times more).
        *(f"{head[0]}(?<![A-Za-z0-9+/]{head[0]}){head[1:]}{_KEY_BODY_TAIL}" for head in _KEY_BODY_HEADS),
    )
)

_VALUE_CHARS = r"A-Za-z0-9_\-+/=.~"
_API_KEY = (
    r"(?:"
    r"(?i:api[_.-]?key|(?:access|secret|private|master|signing|encryption|app|license|service)"
    r"[_.-]?key|secret|token|credential)" + _ASSIGN + r"""\\?["']?"""
    r"|(?<![A-Za-z0-9])(?i:bearer)[ \t]{1,8}+"
    rf")(?P<secret>[{_VALUE_CHARS}]{{20,512}}+)(?![{_VALUE_CHARS}])"
    rf"|(?<![A-Za-z0-9_-])(?:{shape('prefixed_api_key')})"
)

_PASSWORD = (
    r"(?:"
    # `password=...`, `"passwd": "..."`, `pw: ...`, `DB_PASS=...`
    r"(?i:password|passwd|passphrase|passcode|(?<![A-Za-z])pwd|(?<![A-Za-z0-9])pw(?![A-Za-z])"
    r"|(?<![A-Za-z])pass(?![A-Za-z]))" + _ASSIGN + r"\\?(?P<q>[\"'])?"
    # Prose: `the password is X`, `my password was X`, `the password for db01 is X`. The bare
    # value of a sentence must not be a plain word (`the password is correct`): it holds a digit
    # or a symbol, or is quoted.
    r"|(?i:password|passwd|passphrase|passcode)"
    r"(?:[ \t]{1,4}(?i:for|of|on|to)[ \t]{1,4}[\w.@:/-]{1,64}+)?"
    r"[ \t]{1,4}(?i:is|was|will be)[ \t]{0,4}:?[ \t]{0,4}(?P<pq>[\"'`])?"
    r"(?(pq)|(?=[^\s\"'`]{0,255}[0-9!@#$%^&*+=~?_]))"
    r")"
    # Quoted: anything up to the closing quote. Bare: up to whitespace or a quote, less trailing
    # punctuation (`password=x1, user=y`), but not a lone word followed by more text on the line
    # (`Password: must be ...`). `&`, `;` and `|` stay in: cutting a password there would leak
    # its tail, and redacting a few characters too many is the cheaper mistake.
    r"""(?P<secret>(?(q)[^"'\\\r\n]{1,256}+|(?(pq)[^"'`\\\r\n]{1,256}+|(?![A-Za-z]{1,64}+[ \t]+\S)"""
    r"""[^\s"'`<>\\]{0,255}[^\s"'`<>\\,;.:)\]}])))"""
    r"(?(q)\\?(?P=q))(?(pq)(?P=pq))"
)

_PHONE = (
    # International, E.164-style: +<country> then up to six groups of digits.
    r"(?<![\w+])\+[1-9](?:[ .-]?\(?\d{1,4}+\)?){1,6}+(?!\d)"
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-800-555-0199.
    r"|(?<![\w.+-])(?:1[ .-]?)?(?:\(\d{3}\)[ ]?\d{3}[ .-]\d{4}|\d{3}(?P<sep>[.-])\d{3}(?P=sep)\d{4})"
    r"(?![\w]|[.-]\d)"
)

_IBAN = (
    r"(?<![A-Za-z0-9])(?=[A-Z]{2}\d\d)(?:"
    + "|".join(
        rf"{country}\d\d(?:[ ]?[A-Z0-9]){{{length - 4}}}" for country, length in sorted(IBAN_LENGTHS.items())
    )
    + r")(?![A-Za-z0-9])"
)

_TABLE: tuple[Detector, ...] = (
    Detector(
        name="private_key",
        hint=r"-----BEGIN|M[IHC]|b3BlbnNzaC1rZXktdjE",
        regex=_PRIVATE_KEY,
        description="a PEM / OpenSSH / PGP private key block, header to END line",
        examples=(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHC\n-----END RSA PRIVATE KEY-----",
            "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=",
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0BBQ0w\\n",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----",
            "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
            "key: MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
            "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        ),
        counter_examples=(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo",
            "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ",
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN RSA PUBLIC KEY-----",
            "the private key is in the vault",
            "BEGIN RSA PRIVATE KEY",
        ),
    ),
    Detector(
        name="aws_access_key",
        hint=r"A[A-Z]{3}",
        regex=(
            rf"(?<![A-Za-z0-9])(?:{shape('aws_access_key')}"
            # Written in groups of four (`AKIA-Q7XK-2M4N-6P8R-0T2V`), as a person reads one out.
            rf"|(?:{'|'.join(AWS_KEY_ID_PREFIXES)})(?:[ ._-][A-Z0-9]{{4}}){{4}})(?![A-Za-z0-9])"
        ),
        description="an AWS access key id (long-term AKIA, temporary ASIA, and the other id prefixes)",
        validator=aws_key_id_valid,
        examples=(
            "key AKIAIOSFODNN7EXAMPLE here",
            "ASIAY34FZKBOKMUTVV7A",
            "id=AKIA2E0A8F3B244C9986",
            "AKIA-Q7XK-2M4N-6P8R-0T2V",
        ),
        counter_examples=(
            "AKIA is a prefix",
            "AKIAIOSFODNN7EXAMPL",
            "XAKIAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPLEX",
            "akiaiosfodnn7example",
            "AKIAXXXXXXXXXXXXXXXX",
            "AKIA-TEST-DATA-ONLY-HERE",
        ),
    ),
    Detector(
        name="aws_secret_key",
        hint=r"[A-Za-z0-9/+]{40}",
        regex=(
            r"(?:(?i:aws[_.-]?secret(?:[_.-]?access)?[_.-]?key|secret[_.-]?access[_.-]?key)"
            + _ASSIGN
            + r"""\\?["']?"""
            # Near an AWS context on the same line: `aws ... <40 characters>`, `AKIA... <40>`.
            + r"|(?:(?<![A-Za-z])(?i:aws)(?![a-z])|(?<![A-Za-z0-9])A[KS]IA[A-Z0-9]{16})"
            + r"[^\r\n]{0,64}?(?<![A-Za-z0-9/+=_-])"
            + r""")(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=_-])"""
            # Alone: 40 characters of base64 that look random (`bare_validator`).
            + r"|(?<![A-Za-z0-9/+=_-])(?P<bare>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=_-])"
        ),
        description="an AWS secret access key: 40 base64 characters after its name, near an AWS key "
        "id or the word AWS, or alone when random enough",
        validator=aws_secret_valid,
        bare_validator=aws_secret_bare_valid,
        examples=(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
            "export AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            "AWS AKIAQ7XK2M4N6P8R0T2V / I5B+KGnplJJpdu0ol29vX6N+631mG8YE5+is+I4c",
            "new value nFIGLj5M7YYpHCOTHUtuJvbipRdkJAWZ4moUxm+y",
        ),
        counter_examples=(
            "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}",
            "aws_secret_access_key = " + "a" * 40,
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYX",
            "commit 3f2a9c1e8b7d6f5a4c3b2a1908f7e6d5c4b3a291",
            "ThisIsAVeryLongIdentifierNameForTesting1",
            "/api/v1/Users/12345/Orders/67890/Items/4",
            "aws s3 cp s3://bucket/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s",
        ),
    ),
    Detector(
        name="github_token",
        hint=r"gh[pousr]_|github_pat_",
        regex=rf"(?<![A-Za-z0-9_])(?:{shape('github_token')})",
        description="a GitHub personal, OAuth, app or refresh token (ghp_, gho_, ghs_, github_pat_)",
        validator=lambda s: varied(s[4:]),
        examples=(
            "token ghp_" + "a1B2" * 9,
            "GH_TOKEN=gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV",
        ),
        counter_examples=("ghp_short", "ghp_" + "a1B2" * 8 + "abc", "xghp_" + "a1B2" * 9, "ghp_" + "x" * 36),
    ),
    Detector(
        name="slack_token",
        hint=r"xox[abeoprs]-|xapp-|hooks\.slack\.com/",
        regex=rf"(?<![A-Za-z0-9])(?:{shape('slack_token')})",
        description="a Slack bot / user / app token or an incoming-webhook URL",
        validator=has_digit,
        examples=(
            "xoxb-1234567890-abcdefghij",
            "SLACK_TOKEN=xoxp-1234-5678-91011-abcdef0123456789",
            "post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        ),
        counter_examples=("xoxo hugs", "xoxb-not-a-real-token", "xoxb-123", "https://slack.com/help"),
    ),
    Detector(
        name="jwt",
        hint=r"eyJ",
        regex=rf"(?<![A-Za-z0-9_-])(?:{shape('jwt')})",
        description="a JSON Web Token (header and payload are base64url JSON objects)",
        validator=jwt_valid,
        examples=(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc123",
            "Authorization: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6"
            "IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ),
        counter_examples=(
            'eyJ is base64 for `{"`',
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJub3Qgb2JqZWN0.eyJzdWIiOiIxMjM0In0.sig",
        ),
    ),
    Detector(
        name="generic_api_key",
        hint=rf"[{_VALUE_CHARS}]{{16}}",
        regex=_API_KEY,
        description="a long random token assigned to a key-ish name, after `Bearer`, or with a known prefix",
        validator=api_key_valid,
        examples=(
            "api_key=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            '{"apiKey": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA=="}',
            "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
            "export SERVICE_TOKEN=ZXhhbXBsZS10b2tlbi0xMjM0NTY3ODkw",
            "client_secret: 8d5f2e1a-7c3b-4e9f-a1d2-3b4c5d6e7f80",
            "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx",
            "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        ),
        counter_examples=(
            "token = settings.auth_token_value_production",
            "max_tokens: 4096",
            "api_key=${API_KEY}",
            "api_key: your-api-key-goes-here-1234",
            "commit 3f2a9c1e8b7d6f5a4c3b2a1908f7e6d5c4b3a291",
            "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sk-learn is a library",
            "token: abcdefghijklmnopqrstuvwxyzabcdef",
            "secret = xxxxxxxxxxxxxxxxxxxxxxxx1",
            "token_path=/var/run/secrets/kubernetes.io/serviceaccount/token1",
        ),
    ),
    Detector(
        name="password",
        hint=r"(?i:pass|pw)",
        regex=_PASSWORD,
        description="a literal password assigned to a password-ish name (`password=...`, JSON, YAML)",
        validator=password_valid,
        examples=(
            "password=hunter22",
            "DB_PASSWORD=s3cr3t!",
            '{"password": "correct horse battery staple"}',
            "passwd: Tr0ub4dor&3",
            "MYSQL_PWD='p@ss w0rd'",
            '{\\"password\\": \\"hunter2\\"}',
            "password: hunter",
            "the password is Tr0ub4dor&3",
            "my old password was swordfish7, rotate it",
            "the password for db01 is Q8rx!m2Z",
            "the password is 'swordfish'",
            "pw: hunter2!",
            "DB_PASS=s3cr3tP4ss",
        ),
        counter_examples=(
            "the password is correct",
            "password is required",
            "pass: 15/15, fail: 0",
            "bypass=on",
            "password=${DB_PASSWORD}",
            "reset your password please",
            "password: <redacted>",
            "Password: must be at least 8 characters",
            "password: null",
            "password: ********",
            "pwd: /home/user",
            "password_hash=$2b$12$abc",
            "password=[REDACTED:password]",
            "password = getpass.getpass()",
            'password: ""',
        ),
    ),
    Detector(
        name="email",
        hint=r"@",
        regex=(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}"
            r"(?![A-Za-z0-9-]|:[\w~/])"
        ),
        description="an e-mail address",
        validator=email_valid,
        examples=(
            "mail jane.doe@example.com today",
            "<j.smith+tag@sub.example.co.uk>",
            "USER_1@EXAMPLE.ORG",
            "mailto:ops@gatehouse.dev",
        ),
        counter_examples=(
            "icon@2x.png",
            "git@github.com:org/repo.git",
            "@handle",
            "user@localhost",
            "npm install pkg@1.2.3",
            "a@b.c",
            ".jane@example.com",
        ),
    ),
    Detector(
        name="credit_card",
        hint=r"\d{4}",
        regex=(
            r"(?<![\w.,+-])(?:\d{13,19}"
            # Groups of digits with any mix of the separators people type (`4111.1111.1111.1111`,
            # `4111 1111-1111 1111`, `3782 822463 10005`); the validator counts the digits.
            r"|\d{4}(?:[ .-]{1,3}\d{3,6}){2,4})"
            r"(?!\d|[.,-]\d)"
        ),
        description="a payment card number (issuer prefix and length, Luhn checksum)",
        validator=card_valid,
        examples=(
            "charge 4111 1111 1111 1111 now",
            "4111-1111-1111-1111",
            "5555555555554444",
            "amex 3782 822463 10005",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "diners 30569309025904",
            "4222222222222",
            "4111.1111.1111.1111",
            "4111 1111-1111 1111",
            "4111 - 1111 - 1111 - 1111",
        ),
        counter_examples=(
            "4111 1111 1111 1112",
            "1234567890123452",
            "ts 1700000000000",
            "0000 0000 0000 0000",
            "41111111111111111111",
            "pi 3.14159265358979323846",
            "id x4111111111111111",
            "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            "2024-01-15 10:30:00",
            "invoice 20240115-0042-7781",
        ),
    ),
    Detector(
        name="phone",
        hint=r"\+[1-9]|\d{3}",
        regex=_PHONE,
        description="a phone number: international (+country) or North American (NANP) formats",
        validator=phone_valid,
        examples=(
            "call +1 415 555 2671",
            "+44 20 7946 0958",
            "(415) 555-2671",
            "tel 415-555-2671",
            "415.555.2671",
            "1-800-555-0199",
            "+14155552671",
            "+49 30 1234567",
        ),
        counter_examples=(
            "version 1.2.3",
            "2024-01-15 10:30:00",
            "2024-01-15T10:30:00+01:00",
            "192.168.1.1",
            "order 12345678901",
            "ISBN 978-3-16-148410-0",
            "123-456-7890",
            "1e+10",
            "build 10.0.19041.1",
            "555-1234",
            "+1 234 5678",
            "+123",
        ),
    ),
    Detector(
        name="ssn",
        hint=r"\d{3}",
        regex=(
            r"(?<![\d-])\d{3}(?P<ss>[- ])\d{2}(?P=ss)\d{4}(?!\d|-\d)"
            r"|(?i:(?<![A-Za-z])(?:ssn|social security number)(?![A-Za-z]))"
            + r"""["']?[ \t]{0,8}(?:(?::=|=>|[:=#])[ \t]{0,8})?["']?(?P<secret>\d{9})(?!\d)"""
        ),
        description="a US social security number (dashed or spaced, or nine digits after `SSN`)",
        validator=ssn_valid,
        examples=("SSN 123-45-6789", "078-05-1120", "ssn: 219099999", "536 22 1234"),
        counter_examples=(
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "415-555-2671",
            "2024-01-15",
            "123-45-67890",
            "id 123456789",
        ),
    ),
    Detector(
        name="iban",
        hint=r"[A-Z]{2}\d\d",
        regex=_IBAN,
        description="an international bank account number (country length, mod-97 check digits)",
        validator=iban_valid,
        examples=(
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "pay GB82 WEST 1234 5698 7654 32 TODAY",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91ABNA0417164300",
            "BE68 5390 0754 7034 THEN",
        ),
        counter_examples=(
            "DE89 3704 0044 0532 0130 01",
            "GB82WEST1234569876543",
            "XX89370400440532013000",
            "DE8937040044053201300099",
            "ID 12345678",
        ),
    ),
    Detector(
        name="ip_address",
        hint=r"\d\.|:[0-9A-Fa-f]{0,4}:",
        regex=(
            r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)"
            r"|(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}+(?![\w:]|\.\d)"
        ),
        description="an IPv4 or IPv6 host address (not loopback, unspecified, multicast or reserved)",
        validator=ip_valid,
        examples=(
            "connect to 192.168.1.20:5432",
            "10.0.0.12",
            "route 203.0.113.7/24",
            "2001:db8::ff00:42:8329",
            "from fe80::1ff:fe23:4567:890a.",
        ),
        counter_examples=(
            "version 1.2.3",
            "build 10.0.19041.1",
            "999.1.1.1",
            "1.2.3.4.5",
            "127.0.0.1",
            "0.0.0.0",
            "netmask 255.255.255.0",
            "01.02.03.04",
            "12:30:45",
            "00:1A:2B:3C:4D:5E",
            "::1",
            "std::vector",
        ),
    ),
    Detector(
        name="url",
        hint=r"://|www\.",
        ignore_case=True,
        regex=(
            # A scheme URL (`https://h/p`, `ftp://`, `s3://`), up to white space, a quote or an
            # angle bracket, less trailing punctuation (`see https://h/x.` ends before the dot).
            r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,15}://"
            r"(?:[^\s<>\"'`\\]{0,2047}[^\s<>\"'`\\.,;:!?)\]}])"
            # A `www.` host with a dotted name, and what follows it as a path.
            r"|(?<![a-z0-9.@/-])www\.[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,8}"
            r"(?:[:/?#](?:[^\s<>\"'`\\]{0,2047}[^\s<>\"'`\\.,;:!?)\]}])?)?(?![a-z0-9-])"
        ),
        description="a URL: a scheme URL (`https://...`) or a `www.` host, never a bare file name",
        examples=(
            "see https://evil.example/pay?to=me",
            "http://10.0.0.1:8080/admin",
            "visit www.example.com/path today",
            "ftp://files.example.org/a.zip",
            "HTTPS://EXAMPLE.COM",
            "s3://bucket/key",
            "(at https://h.example/x).",
        ),
        counter_examples=(
            "notes.docx",
            "report.final.pdf",
            "example.com",
            "www.",
            "https://",
            "file_www.txt",
            "a://",
            "mailto:someone@example.com",
        ),
    ),
)

ALL_DETECTORS: tuple[Detector, ...] = tuple(sorted(_TABLE, key=lambda d: DETECTOR_NAMES.index(d.name)))
_BY_NAME: Mapping[str, Detector] = MappingProxyType({d.name: d for d in ALL_DETECTORS})

if tuple(_BY_NAME) != DETECTOR_NAMES:  # pragma: no cover - a table edit that forgot a row
    raise RuntimeError("gatehouse.output.detectors must implement exactly gatehouse.policy DETECTORS")


def get_detector(name: str) -> Detector:
    """The detector called `name`; `KeyError` with the known names when there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown output detector `{name}` (known: {', '.join(_BY_NAME)})") from None


# --- secrets named by an object key -----------------------------------------------------------

# Detectors that find a secret by the name in front of it; under an object key the gate also
# reads the value as `key=value` (`{"aws_secret_access_key": "..."}`, `{"ssn": 219099999}`),
# when the key (lower-cased) holds one of the words the detector's names are made of.
KEYED_DETECTORS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "password": ("pass", "pw"),
        "generic_api_key": ("key", "secret", "token", "credential"),
        "aws_secret_key": ("secret",),
        "ssn": ("ssn", "social"),
    }
)

# A key whose last word is one of these holds a password (`pw`, `db_pass`, `rootPassword`).
_PASSWORD_WORDS = frozenset({"pw", "pwd", "pass", "passwd", "password", "passphrase", "passcode"})
# Keys that hold a secret or a token of any length. Their values are often references instead
# (`{"secret": "db-credentials"}` names a Kubernetes secret), so a plain word does not count.
_SECRET_NAMES = frozenset(
    {
        "secret", "clientsecret", "appsecret", "apisecret", "secretkey", "privatekey", "token",
        "accesstoken", "authtoken", "refreshtoken", "apitoken", "bearertoken", "sessiontoken",
        "apikey", "accesskey", "authkey", "credential", "credentials",
    }
)  # fmt: skip
_KEY_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def keyed_password(key: str, value: str) -> bool:
    """Whether `value`, sitting under the object key `key`, is a password or a short secret
    (the `password` detector's reading of `{"pw": "hunter22"}`)."""
    words = [w.lower() for w in _KEY_WORDS.findall(key)]
    if not words:
        return False
    if words[-1] in _PASSWORD_WORDS or "".join(words).endswith(("password", "passwd", "passphrase")):
        return password_value_valid(value, plain_words=True)
    if "".join(words) in _SECRET_NAMES or words[-1] == "secret":
        return password_value_valid(value, plain_words=False)
    return False


# Prefixes a finding's excerpt may show: they say what kind of key it is and are public.
_PUBLIC_PREFIX = re.compile(
    rf"(?:{'|'.join(AWS_KEY_ID_PREFIXES)}|gh[pousr]_|github_pat_|xox[abeoprs]-|xapp-|eyJ|sk-|sk_live_|rk_live_|AIza|glpat-)"
)


def public_prefix(secret: str) -> str:
    """The public prefix `secret` starts with (`AKIA`, `ghp_`, `eyJ`), or ``."""
    m = _PUBLIC_PREFIX.match(secret)
    return m.group() if m else ""
