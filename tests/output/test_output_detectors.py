"""The detector table, row by row, and the validators behind it.

Every row must carry examples and counter-examples; the parametrised tests below run each one
through `scan`, so a row added without examples, or with a regex that misses its own examples,
fails here.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.output import ALL_DETECTORS, Detector, get_detector, iban_valid, luhn_valid, scan, ssn_valid
from gatehouse.policy.model import DETECTORS as DETECTOR_NAMES

ALL_NAMES = [d.name for d in ALL_DETECTORS]
EXAMPLES = [
    pytest.param(d.name, ex, id=f"{d.name}[{i}]") for d in ALL_DETECTORS for i, ex in enumerate(d.examples)
]
COUNTER_EXAMPLES = [
    pytest.param(d.name, ex, id=f"{d.name}[{i}]")
    for d in ALL_DETECTORS
    for i, ex in enumerate(d.counter_examples)
]


def found(name: str, text: str) -> list[str]:
    """The texts `name` finds in `text`, through the public `scan`."""
    findings, complete = scan(text, [name])
    assert complete
    return [text[f.start : f.end] for f in findings]


def with_luhn_digit(prefix: str) -> str:
    """`prefix` plus the check digit that makes it pass Luhn."""
    return next(prefix + str(d) for d in range(10) if luhn_valid(prefix + str(d)))


# --- the table ---------------------------------------------------------------------------------


def test_every_detector_a_bundle_may_name_is_implemented_in_order() -> None:
    assert tuple(ALL_NAMES) == DETECTOR_NAMES


@pytest.mark.parametrize("detector", ALL_DETECTORS, ids=lambda d: d.name)
def test_every_detector_documents_itself(detector: Detector) -> None:
    assert detector.description
    assert len(detector.examples) >= 2, f"{detector.name} needs examples"
    assert len(detector.counter_examples) >= 3, f"{detector.name} needs counter-examples"
    assert detector.example_problems() == ()


@pytest.mark.parametrize(("name", "example"), EXAMPLES)
def test_each_example_is_found_by_its_detector(name: str, example: str) -> None:
    assert found(name, example), f"{name} did not find anything in {example!r}"


@pytest.mark.parametrize(("name", "example"), COUNTER_EXAMPLES)
def test_no_counter_example_is_found_by_its_detector(name: str, example: str) -> None:
    assert found(name, example) == []


def test_get_detector_names_the_known_ones_when_asked_for_another() -> None:
    assert get_detector("email").name == "email"
    with pytest.raises(KeyError, match="unknown output detector `nope`"):
        get_detector("nope")


def test_a_detector_whose_regex_matches_nothing_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="matches the empty string"):
        Detector(name="bad", regex=r"x?", description="d", examples=(), counter_examples=())


@pytest.mark.parametrize("name", ALL_NAMES)
def test_no_detector_finds_anything_in_redaction_markers(name: str) -> None:
    # Redaction must be stable: text already redacted has nothing left to find.
    text = (
        f"[REDACTED:{name}] password=[REDACTED:{name}] token: [REDACTED:{name}] "
        f'"api_key": "[REDACTED:{name}]" aws_secret_access_key=[REDACTED:{name}] ssn: [REDACTED:{name}]'
    )
    findings, _ = scan(text, ALL_NAMES)
    assert findings == ()


# --- hints: the cheap necessary condition in front of each regex --------------------------------

_FRAGMENTS = [ex for d in ALL_DETECTORS for ex in (*d.examples, *d.counter_examples)]
# Characters that regexes treat specially or that fold: Unicode digits, the long s and the
# Kelvin sign (which `(?i)` matches to `s` and `k`), separators, base64, JSON escapes.
_ALPHABET = "aAkKsSpPwW019+/=_-.~:@ \t\n\\\"'()[]{}#$%&" + "\u0663\u017f\u212a\uff11\u00e9"


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(_FRAGMENTS), st.text(alphabet=_ALPHABET, max_size=12)),
        min_size=1,
        max_size=5,
    )
)
def test_a_hint_holds_wherever_its_regex_finds_something(parts: list[str]) -> None:
    text = "".join(parts)
    for d in ALL_DETECTORS:
        unhinted = dataclasses.replace(d, hint=None)
        if unhinted.spans(text):
            assert d.hint_compiled is None or d.hint_compiled.search(text), (d.name, text)
            assert d.spans(text) == unhinted.spans(text)


@pytest.mark.parametrize("name,example", EXAMPLES)
def test_a_hint_holds_for_every_example_and_its_keyed_form(name: str, example: str) -> None:
    d = get_detector(name)
    assert d.hint_compiled is not None, f"{name} has no hint"
    for text in (example, f"password={example}", f'{{"token": "{example}"}}'):
        unhinted = dataclasses.replace(d, hint=None)
        assert d.spans(text) == unhinted.spans(text)


def test_a_hint_turns_plain_prose_away_fast() -> None:
    prose = ("the weekly numbers are attached; revenue grew in every region and churn fell. " * 3)[:200]
    hinted = [d.name for d in ALL_DETECTORS if d.hint_compiled is not None and d.hint_compiled.search(prose)]
    assert hinted == []


# --- what exactly is reported ------------------------------------------------------------------


def test_a_private_key_is_reported_from_header_to_end_line() -> None:
    key = (
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yBy\nVa2jK0Qm\n-----END EC PRIVATE KEY-----"
    )
    assert found("private_key", f"before\n{key}\nafter") == [key]


def test_a_truncated_private_key_takes_its_base64_lines_not_the_prose_after_them() -> None:
    text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nu1SU1LfVLPHCozMx\nthat is all, folks"
    assert found("private_key", text) == [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nu1SU1LfVLPHCozMx"
    ]


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("password", "DB_PASSWORD=s3cr3t!", "s3cr3t!"),
        ("password", '{"password": "correct horse"}', "correct horse"),
        ("password", "password=hunter2, user=bob", "hunter2"),
        ("password", "passwd: Tr0ub4dor&3", "Tr0ub4dor&3"),
        ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None),
        (
            "generic_api_key",
            "X-Api-Key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        ),
        ("generic_api_key", "Authorization: Bearer abcdefghij0123456789xyz", "abcdefghij0123456789xyz"),
        ("ssn", "SSN: 219099999", "219099999"),
    ],
)
def test_context_detectors_report_the_value_and_keep_the_name(
    name: str, text: str, value: str | None
) -> None:
    expected = value if value is not None else text.rpartition(" ")[2]
    assert found(name, text) == [expected]


def test_an_iban_stops_where_its_country_says_it_ends() -> None:
    assert found("iban", "BE68 5390 0754 7034 ABCD and DE89 3704 0044 0532 0130 00 WXYZ") == [
        "BE68 5390 0754 7034",
        "DE89 3704 0044 0532 0130 00",
    ]


def test_every_occurrence_is_reported() -> None:
    text = "a@example.com, b@example.org; c@example.net"
    assert found("email", text) == ["a@example.com", "b@example.org", "c@example.net"]


@pytest.mark.parametrize(
    "text",
    [
        "released 1.2.3 on 2024-01-15 at 10:30:00Z",
        "v10.0.19041.1",
        "took 12.345678901 s",
        "timestamp 1700000000123",
        "2024-01-15T10:30:00+01:00",
        "id 20240115103000",
    ],
)
def test_phone_does_not_fire_on_versions_dates_or_timestamps(text: str) -> None:
    assert found("phone", text) == []


# --- validators --------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["4111111111111111", "4111 1111 1111 1111", "79927398713", "0"])
def test_luhn_accepts_valid_numbers_whatever_the_separators(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "", "abc", "1"])
def test_luhn_rejects_bad_check_digits_and_empty_input(number: str) -> None:
    assert not luhn_valid(number)


def test_a_luhn_valid_number_needs_a_real_issuer_prefix_and_length() -> None:
    unknown_issuer = with_luhn_digit("123456789012345")  # 16 digits, no issuer starts with 1
    visa_17 = with_luhn_digit("4" + "1" * 15)  # Visa issues 13, 16 and 19 digits, not 17
    visa_16 = with_luhn_digit("4" + "2" * 14)
    assert luhn_valid(unknown_issuer) and luhn_valid(visa_17)
    assert found("credit_card", unknown_issuer) == []
    assert found("credit_card", visa_17) == []
    assert found("credit_card", visa_16) == [visa_16]


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "de89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "NO9386011117947",
        "MT84MALT011000012345MTLCAST001S",
    ],
)
def test_iban_accepts_valid_numbers(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013001",  # wrong check digits
        "DE8937040044053201300",  # one character short for DE
        "XX89370400440532013000",  # no such country
        "DE89-3704-0044-0532-0130-00",  # not alphanumeric
        "DEAB370400440532013000",  # check digits must be digits
        "",
    ],
)
def test_iban_rejects_bad_checks_lengths_and_countries(iban: str) -> None:
    assert not iban_valid(iban)


@pytest.mark.parametrize(
    ("ssn", "ok"),
    [
        ("123-45-6789", True),
        ("899-99-9999", True),
        ("000-12-3456", False),  # area 000 is never issued
        ("666-12-3456", False),  # nor 666
        ("900-12-3456", False),  # nor 900-999
        ("123-00-4567", False),  # group 00
        ("123-45-0000", False),  # serial 0000
        ("12-345-6789", True),  # the validator counts digits; the regex checks the layout
        ("1234-56-789", True),
        ("123-45-678", False),
    ],
)
def test_ssn_area_group_and_serial_rules(ssn: str, ok: bool) -> None:
    assert ssn_valid(ssn) is ok


# --- linear time ------------------------------------------------------------------------------

ADVERSARIAL = {
    "letters": "a" * 200_000,
    "digits": "1" * 200_000,
    "pem headers": "-----BEGIN RSA PRIVATE KEY-----" * 6_500,
    "pem body without end": "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 200_000,
    "key names": "password=" * 22_000,
    "lone word after a key name": "password: " + "a" * 200_000,
    "open quotes": 'password="' * 20_000,
    "token prefixes": "token=a" * 28_000,
    "long token": "api_key=" + "A1" * 100_000,
    "plus signs": "+1 2" * 50_000,
    "dashes": "1-" * 100_000,
    "spaced digits": "4111 " * 40_000,
    "at signs": "a@" * 100_000,
    "dotted labels": "a@" + "a." * 100_000,
    "iban heads": "DE89 " * 40_000,
    "dotted quads": "1.1." * 50_000,
    "colons": "a:" * 100_000,
    "jwt heads": "eyJaaaaa." * 22_000,
    "token heads": "ghp_xoxb-AKIA" * 15_000,
    "mixed": "password: token= +1 (415) 555- a@b. 192.168. eyJ ghp_ xoxb- AKIA DE89 ssn " * 2_800,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=list(ADVERSARIAL))
def test_hostile_text_scans_in_linear_time(text: str) -> None:
    # A smoke guard against catastrophic backtracking, not a benchmark: a quadratic regex takes
    # minutes on 200 KB, a linear one a fraction of a second.
    assert len(text) >= 190_000
    started = time.perf_counter()
    scan(text, ALL_NAMES)
    assert time.perf_counter() - started < 2.0
