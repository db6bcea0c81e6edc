"""The one table of secret shapes: credentials recognisable by their form alone.

Three places look for secrets, each for its own reason: ingress tags a prompt that carries one
(`secrets_in_input`), the output gate redacts or quarantines one in a worker's result
(`gatehouse.output`), and the audit log masks one in its preview of a prompt
(`gatehouse.audit.chain.redact_preview`). They used to spell the shapes three times and
disagreed (an `ASIA...` key id reached the audit preview in clear). Now each builds its regex
from this table; each adds only what its job needs around a shape: word boundaries, a validator
that turns away placeholders (the output gate), a catch-all for long random tokens (the
preview).

A shape is the token itself, without boundaries; it matches nothing shorter than a real token.
Every row carries `examples` the shape must match whole, and a test proves that ingress, the
output gate and the audit preview each catch every example of every row.

The table sits in ingress, the lowest floor of the pure core, because both others already
import it (`output -> policy -> ingress`, `audit -> ingress`): placed in `output/`, ingress
importing it would close a package cycle. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "AWS_KEY_ID_PREFIXES",
    "PRIVATE_KEY_BEGIN",
    "PRIVATE_KEY_END",
    "SECRET_SHAPES",
    "SecretShape",
    "shape",
]

# Every prefix AWS gives a unique identifier that is used as (or beside) an access key id:
# AKIA long-term and ASIA temporary access keys, ABIA/ACCA (STS service bearer and
# context-specific credentials), AGPA groups, AIDA users, AROA roles, AIPA instance profiles,
# ANPA/ANVA managed policies and their versions, APKA public keys.
AWS_KEY_ID_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA")

_PEM_LABEL = r"-----{0}[ A-Z0-9]{{0,40}}PRIVATE KEY(?: BLOCK)?-----"
# The first and last line of a PEM / OpenSSH / PGP private key block.
PRIVATE_KEY_BEGIN = _PEM_LABEL.format("BEGIN")
PRIVATE_KEY_END = _PEM_LABEL.format("END")


@dataclass(frozen=True, slots=True)
class SecretShape:
    """A named secret shape: `regex` matches the token itself (no boundaries, no flags)."""

    name: str
    regex: str
    description: str
    examples: tuple[str, ...]

    def example_problems(self) -> tuple[str, ...]:
        """Examples the shape does not match whole; empty when the row is sound."""
        compiled = re.compile(self.regex)
        return tuple(f"example {ex!r} is not matched" for ex in self.examples if not compiled.fullmatch(ex))


SECRET_SHAPES: tuple[SecretShape, ...] = (
    SecretShape(
        name="aws_access_key",
        regex=rf"(?:{'|'.join(AWS_KEY_ID_PREFIXES)})[A-Z0-9]{{16}}",
        description="an AWS access key id or unique id (AKIA long-term, ASIA temporary, ...)",
        examples=tuple(f"{prefix}Y34FZKBOKMUTVV7A" for prefix in AWS_KEY_ID_PREFIXES),
    ),
    SecretShape(
        name="private_key",
        regex=PRIVATE_KEY_BEGIN,
        description="the first line of a PEM / OpenSSH / PGP private key block",
        examples=(
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        ),
    ),
    SecretShape(
        name="github_token",
        # At most 255 characters in all, as GitHub documents.
        regex=r"gh[pousr]_[A-Za-z0-9]{36,251}+|github_pat_[A-Za-z0-9_]{22,244}+",
        description="a GitHub personal, OAuth, app or refresh token (ghp_, gho_, ghs_, github_pat_)",
        examples=(
            "ghp_" + "a1B2" * 9,
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV",
        ),
    ),
    SecretShape(
        name="slack_token",
        regex=(
            r"xox[abeoprs]-[A-Za-z0-9-]{10,250}+|xapp-\d-[A-Za-z0-9-]{10,250}+"
            r"|https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,250}+"
        ),
        description="a Slack bot / user / app token or an incoming-webhook URL",
        examples=(
            "xoxb-1234567890-abcdefghij",
            "xoxp-1234-5678-91011-abcdef0123456789",
            "xapp-1-A0123456789-0123456789-abcdef",
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXX1",
        ),
    ),
    SecretShape(
        name="jwt",
        regex=r"eyJ[A-Za-z0-9_-]{5,4096}+\.eyJ[A-Za-z0-9_-]{5,16384}+\.[A-Za-z0-9_-]{0,4096}+",
        description="a JSON Web Token (base64url JSON header and payload, then the signature)",
        examples=("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc123",),
    ),
    SecretShape(
        name="prefixed_api_key",
        regex=(
            r"sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,250}+"
            r"|[sr]k_live_[A-Za-z0-9]{16,250}+|AIza[0-9A-Za-z_-]{35}|glpat-[0-9A-Za-z_-]{20,64}+"
        ),
        description="an API key with a vendor prefix (OpenAI / Anthropic sk-, Stripe, Google, GitLab)",
        examples=(
            "sk-proj-abcdefghijklmnopqrstuvwx",
            "sk-ant-api03-abcdefghijklmnopqrstuvwx",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
            "glpat-abcdefghij0123456789",
        ),
    ),
)

_BY_NAME: Mapping[str, SecretShape] = MappingProxyType({s.name: s for s in SECRET_SHAPES})


def shape(name: str) -> str:
    """The regex of the shape called `name` (`KeyError` when there is none)."""
    return _BY_NAME[name].regex
