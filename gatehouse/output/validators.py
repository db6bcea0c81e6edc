"""The output detectors' validators: checks that throw implausible regex candidates away.

A detector's regex proposes candidates cheaply; a validator, called with one candidate, says
whether it is plausibly the real thing: a card number passes Luhn and fits its issuer's lengths,
an IBAN its country's length and the mod-97 check digits, an IPv4 address names a host, an API
key is not a placeholder or a variable name. Pure functions of the text, standard library only.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "IBAN_LENGTHS",
    "MARKER_PREFIX",
    "api_key_valid",
    "aws_key_id_valid",
    "aws_secret_bare_valid",
    "aws_secret_valid",
    "card_valid",
    "email_valid",
    "has_digit",
    "iban_valid",
    "ip_valid",
    "jwt_valid",
    "luhn_valid",
    "password_valid",
    "password_value_valid",
    "phone_valid",
    "ssn_valid",
    "varied",
]

# What redaction writes (`[REDACTED:<name>]`); no detector may report a finding inside it, and a
# password validator must not take a marker left by an earlier redaction for a password.
MARKER_PREFIX = "[REDACTED:"


def luhn_valid(number: str) -> bool:
    """The Luhn checksum of the digits in `number` (separators ignored); False without digits."""
    digits = [int(c) for c in number if c.isdigit() and c.isascii()]
    if not digits:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Issuer prefixes (inclusive ranges over the first 2-4 digits) and the lengths each issues.
# Luhn alone passes one random number in ten; the issuer table turns away millisecond
# timestamps, order numbers and the like that happen to pass it.
_CARD_ISSUERS: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(14, 20))),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (2200, 2204, frozenset(range(16, 20))),  # Mir
    (50, 50, frozenset(range(12, 20))),  # Maestro
    (56, 58, frozenset(range(12, 20))),
    (63, 63, frozenset(range(12, 20))),
    (67, 67, frozenset(range(12, 20))),
)


def card_valid(text: str) -> bool:
    digits = "".join(c for c in text if c.isdigit())
    if len(set(digits)) < 2:
        return False
    for low, high, lengths in _CARD_ISSUERS:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return luhn_valid(digits)
    return False


# IBAN length by country (the SWIFT IBAN registry). A fixed length per country lets the regex
# stop exactly where the IBAN ends, even when an upper-case word follows it.
IBAN_LENGTHS: Mapping[str, int] = MappingProxyType(
    {
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
        "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
        "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
        "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
        "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
        "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
        "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
        "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
        "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    }
)  # fmt: skip


def iban_valid(text: str) -> bool:
    """True for a well-formed IBAN: known country, its length, and the mod-97 check digits."""
    compact = "".join(text.split()).upper()
    if not compact.isascii() or not compact.isalnum() or len(compact) != IBAN_LENGTHS.get(compact[:2]):
        return False
    if not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    # int(c, 36) maps 0-9 to themselves and A..Z to 10..35, as ISO 13616 asks.
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def ssn_valid(text: str) -> bool:
    """A US social security number the SSA could have issued (area, group, serial rules)."""
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) != 9:
        return False
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


def _nanp_valid(ten: str) -> bool:
    """North American numbers: area code and exchange start 2-9; N11 area codes are services."""
    return len(ten) == 10 and ten[0] >= "2" and ten[3] >= "2" and ten[1:3] != "11"


def phone_valid(text: str) -> bool:
    digits = "".join(c for c in text if c.isdigit())
    if text.startswith("+"):
        if not 8 <= len(digits) <= 15:  # E.164 allows at most 15 digits
            return False
        # Country code 1 is the NANP alone, and all its numbers have ten digits after it.
        return _nanp_valid(digits[1:]) if digits[0] == "1" else True
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return _nanp_valid(digits)


def ip_valid(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    # Loopback, "any", multicast and reserved (netmasks such as 255.255.255.0 fall here) name no
    # host and fill logs; reporting them would drown the addresses that matter.
    return not (ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_reserved)


# Image "addresses" such as `icon@2x.png` are file names, not mailboxes.
_FILE_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff"})


def email_valid(text: str) -> bool:
    local, _, domain = text.rpartition("@")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return domain.rpartition(".")[2].lower() not in _FILE_TLDS


def _b64url_json_object(part: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return isinstance(json.loads(raw), dict)
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False


def jwt_valid(text: str) -> bool:
    return _b64url_json_object(text.split(".", 1)[0])


def varied(text: str, minimum: int = 4) -> bool:
    """Not a placeholder made of a few repeated characters (`xxxx`, `AKIA0000...`)."""
    return len(set(text)) >= minimum


def has_digit(text: str) -> bool:
    return any(c.isdigit() for c in text)


def aws_key_id_valid(text: str) -> bool:
    """An AWS key id, also written in groups (`AKIA-Q7XK-...`): not a placeholder, and a grouped
    one holds a digit (`AKIA-TEST-DATA-ONLY-HERE` is words)."""
    compact = "".join(c for c in text if c.isalnum())
    if compact != text and not has_digit(compact[4:]):
        return False
    return varied(compact[4:])


def aws_secret_valid(text: str) -> bool:
    classes = (any(c.islower() for c in text), any(c.isupper() for c in text), has_digit(text))
    return sum(classes) >= 2 and varied(text, 10)


def aws_secret_bare_valid(text: str) -> bool:
    """40 characters with no name in front: only when they look like random base64.

    A random key of 40 characters from 64 has, but for about one in a hundred, at least two
    digits, five upper- and five lower-case letters, at most three slashes, and 4.2 bits of
    entropy per character or more; identifiers, paths and words in camel case do not.
    """
    digits = sum(c.isdigit() for c in text)
    upper = sum(c.isupper() for c in text)
    lower = sum(c.islower() for c in text)
    return (
        digits >= 2
        and upper >= 5
        and lower >= 5
        and text.count("/") <= 3
        and not _is_path_like(text)
        and _shannon_bits(text) >= 4.2
    )


def _is_path_like(text: str) -> bool:
    """`Users/12345/Orders`: slash-separated parts that are words or numbers."""
    parts = [p for p in text.split("/") if p]
    return len(parts) > 1 and all(p.isdigit() or p.isalpha() for p in parts)


_PLACEHOLDER_WORDS = ("your", "xxxx", "placeholder", "changeme", "change_me", "redacted", "example_")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,64}(?:\.[A-Za-z_][A-Za-z0-9_]{0,64}){1,16}")
# Prefixes of well-known key formats: no keyword is needed before these.
_KEY_PREFIXES = ("sk-", "sk_live_", "rk_live_", "AIza", "glpat-")


def _is_code_reference(text: str) -> bool:
    """`token = self.settings.token_v2` names a variable; it is not the key.

    A JWT is dotted identifiers too, but its base64 segments are full of digits.
    """
    if not _DOTTED_NAME.fullmatch(text) or text.startswith("eyJ"):
        return False
    return all(sum(c.isdigit() for c in part) <= 2 for part in text.split("."))


def _shannon_bits(text: str) -> float:
    n = len(text)
    return -sum(k / n * math.log2(k / n) for k in Counter(text).values())


def api_key_valid(text: str) -> bool:
    if text.startswith(_KEY_PREFIXES):
        return varied(text[4:], 6)
    lowered = text.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS) or text.startswith(("/", "./", "~/")):
        return False
    if _is_code_reference(text):
        return False
    has_letter = any(c.isalpha() for c in text)
    # Random keys of 20+ characters mix letters and digits and spread over many symbols.
    return has_letter and has_digit(text) and varied(text, 8) and _shannon_bits(text) >= 3.0


_PASSWORD_PLACEHOLDERS = frozenset(
    {
        "null",
        "none",
        "nil",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "string",
        "str",
        "password",
        "secret",
        "redacted",
        "hidden",
        "masked",
        "empty",
        "unset",
        "changeme",
        "example",
    }
)


_CODE_CALL = re.compile(r"[A-Za-z_][\w.]{0,64}\(.{0,200}")


def password_valid(text: str) -> bool:
    value = text.strip()
    if len(value) < 3 or value.lower() in _PASSWORD_PLACEHOLDERS:
        return False
    # `${VAR}`, `<secret>`, `{{ var }}`, `%s`, `*****`, an absolute path (`pwd: /home/x`), a
    # marker left by an earlier redaction: none of these is the password itself.
    if value.startswith(("$", "<", "{", "%", "*", "/", "~/", "•", MARKER_PREFIX)):
        return False
    if set(value) <= set("*xX.•-_#"):
        return False
    # `pass: 15/15`, `password: 2024-01-15`: counts, dates, versions.
    if _NUMERIC.fullmatch(value) and (len(value) < 6 or not value.isdigit()):
        return False
    # `password = getpass()`, `password: os.environ.get("PW")`: code reading a password.
    return _CODE_CALL.fullmatch(value) is None


_NUMERIC = re.compile(r"[0-9/.:%,+-]+")
_PLAIN_WORDS = re.compile(r"[a-z]+(?:[-_. ][a-z]+)*")


def password_value_valid(value: str, *, plain_words: bool) -> bool:
    """A value under a password-ish or secret-ish object key that is plausibly the secret.

    `plain_words` False (a `secret` or `token` key): lower-case words are a reference
    (`db-credentials`), not the secret.
    """
    if not password_valid(value) or len(value) > 1024:
        return False
    return plain_words or _PLAIN_WORDS.fullmatch(value) is None
