"""What the gate reads besides the text as sent (probe F1, F2): folded Unicode, decoded blobs,
object keys, numbers, the error, list siblings joined, secrets named by their key or their form."""

from __future__ import annotations

import base64
import sys
import unicodedata
from typing import Any

import pytest

from gatehouse.output import decide, scan
from gatehouse.output.gate import _DECODE_CHARS
from gatehouse.output.normalise import _INVISIBLE, blobs, fold
from gatehouse.policy import OutputRule

AWS_KEY = "AKIAQ7XK2M4N6P8R0T2V"
EMAIL = "jane.doe@example.com"
BODY = [
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
]
HEADER, FOOTER = "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"


def rule(decision: str, *detectors: str) -> OutputRule:
    return OutputRule(id="r", detectors=detectors, decision=decision)


def found(output: Any, *detectors: str, error: str | None = None) -> list[tuple[str, str]]:
    findings, complete = scan(output, detectors, error=error)
    assert complete
    return [(f.path, f.detector) for f in findings]


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# --- fold ----------------------------------------------------------------------------------------


def test_ascii_text_is_not_copied() -> None:
    text = "plain ascii"
    folded = fold(text)
    assert folded.text is text and folded.marks is None
    assert folded.source_span(2, 5) == (2, 5)


def test_full_width_folds_to_ascii_and_spans_map_back() -> None:
    text = f"key {fullwidth(AWS_KEY)} end"
    folded = fold(text)
    assert folded.text == f"key {AWS_KEY} end"
    start = folded.text.index(AWS_KEY)
    assert folded.source_span(start, start + len(AWS_KEY)) == (4, 4 + len(AWS_KEY))


def test_invisible_characters_are_removed_and_stay_inside_the_source_span() -> None:
    text = "x AKIA\u200bQ7XK\u200d2M4N\u00ad6P8R\ufeff0T2V y"
    folded = fold(text)
    assert folded.text == f"x {AWS_KEY} y"
    start, end = folded.source_span(2, 2 + len(AWS_KEY))
    assert text[start:end] == "AKIA\u200bQ7XK\u200d2M4N\u00ad6P8R\ufeff0T2V"


def test_one_character_folding_to_several_maps_each_back_to_it() -> None:
    text = "a\ufb01b"  # the `fi` ligature
    folded = fold(text)
    assert folded.text == "afib"
    assert folded.source_span(1, 3) == (1, 2)
    assert folded.source_span(3, 4) == (2, 3)


def test_normalised_non_ascii_text_is_left_alone() -> None:
    text = "na\u00efve caf\u00e9 \u6f22\u5b57"
    assert fold(text).marks is None


def test_the_invisible_class_holds_every_format_character() -> None:
    missing = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) == "Cf" and not _INVISIBLE.match(chr(cp))
    ]
    assert missing == []


# --- blobs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: base64.b64encode(b).decode(),
        lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
        lambda b: b.hex(),
        lambda b: b.hex().upper(),
    ],
    ids=["base64", "base64url-unpadded", "hex", "HEX"],
)
def test_encoded_text_is_decoded(encode: Any) -> None:
    blob = encode(f"key={AWS_KEY}".encode())
    text = f"dump {blob} end"
    [found_blob] = blobs(text, 10_000)
    assert text[found_blob.start : found_blob.end] == blob
    assert found_blob.decoded == f"key={AWS_KEY}"


def test_binary_hashes_and_words_are_not_decoded() -> None:
    text = (
        "commit 3f2a9c1e8b7d6f5a4c3b2a1908f7e6d5c4b3a291 "
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg== "
        "configurationmanagement UserAccountRepositoryImpl"
    )
    assert blobs(text, 10_000) == []


def test_decoding_stops_at_its_bound() -> None:
    blob = base64.b64encode(b"a readable sentence of text").decode()
    assert len(blobs(f"{blob} {blob} {blob}", 60)) == 2


def test_a_blob_bomb_costs_a_bounded_amount_of_work() -> None:
    inner = base64.b64encode(b"x" * 1000).decode()
    text = " ".join([base64.b64encode(inner.encode()).decode()] * 400)
    # Far more decoded text than the bound: the scan still answers, and finds nothing.
    assert len(text) * 2 > _DECODE_CHARS
    assert scan(text, ["aws_access_key"]) == ((), True)


def test_nested_base64_is_opened_to_the_depth_bound() -> None:
    once = base64.b64encode(AWS_KEY.encode())
    twice = base64.b64encode(once).decode()
    thrice = base64.b64encode(twice.encode()).decode()
    assert found(twice, "aws_access_key") == [("$", "aws_access_key")]
    assert found(thrice, "aws_access_key") == []  # deeper than the gate looks


# --- where the secret sits -----------------------------------------------------------------------


def test_the_error_is_scanned_and_redacted() -> None:
    assert found("ok", "aws_access_key", error=f"boom {AWS_KEY}") == [("error", "aws_access_key")]
    verdict = decide("ok", [rule("redact", "email")], topic="job.x", error=f"to {EMAIL}")
    assert (verdict.decision, verdict.redacted, verdict.redacted_error) == (
        "redact",
        "ok",
        "to [REDACTED:email]",
    )


def test_with_nothing_found_the_error_comes_back_as_sent() -> None:
    verdict = decide("ok", [rule("redact", "email")], topic="job.x", error="timeout")
    assert (verdict.decision, verdict.redacted_error) == ("allow", "timeout")


@pytest.mark.parametrize(
    ("output", "detector"),
    [
        ({"card": 4111111111111111}, "credit_card"),
        ({"pan": 5555555555554444.0}, "credit_card"),
        ([4111111111111111], "credit_card"),
        ({"ssn": 219099999}, "ssn"),
        ({"password": 12345678}, "password"),
    ],
)
def test_numbers_are_read_as_text(output: Any, detector: str) -> None:
    assert [d for _, d in found(output, detector)] == [detector]
    verdict = decide(output, [rule("redact", detector)], topic="job.x")
    assert f"[REDACTED:{detector}]" in str(verdict.redacted)


@pytest.mark.parametrize(
    "output", [{"ssn_count": 219099999}, {"count": 4111111111111112}, {"ts": 1700000000000}]
)
def test_numbers_that_are_not_secrets_pass(output: Any) -> None:
    assert found(output, "ssn", "credit_card", "password", "phone") == []


# --- joined siblings -----------------------------------------------------------------------------


def test_a_pem_block_split_across_list_elements_is_masked_whole() -> None:
    output = [HEADER, *BODY, FOOTER]
    verdict = decide(output, [rule("quarantine", "private_key")], topic="job.x")
    assert verdict.decision == "quarantine"
    assert verdict.redacted == ["[REDACTED:private_key]"] * 4


def test_a_key_id_cut_in_two_across_list_elements_is_found() -> None:
    output = ["AKIAQ7XK2M", "4N6P8R0T2V"]
    assert found(output, "aws_access_key") == [("$[0]", "aws_access_key"), ("$[1]", "aws_access_key")]
    verdict = decide(output, [rule("quarantine", "aws_access_key")], topic="job.x")
    assert verdict.redacted == ["[REDACTED:aws_access_key]", "[REDACTED:aws_access_key]"]


def test_a_neighbour_does_not_lengthen_what_an_element_holds() -> None:
    verdict = decide(["t", EMAIL, "x"], [rule("redact", "email")], topic="job.x")
    assert verdict.redacted == ["t", "[REDACTED:email]", "x"]


def test_unrelated_list_elements_stay_apart() -> None:
    assert found(["4111 1111", "and", "1111 1111"], "credit_card") == []
    assert found(["alpha", "beta", "gamma"], *("email", "password", "aws_secret_key")) == []


# --- private keys without their canonical shape --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"{HEADER}\n{''.join(BODY) * 5}",  # one long line, no END line
        f"{HEADER}\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n{BODY[0]}\n{BODY[1]}",
        f"{HEADER} {BODY[0]} {BODY[1]}",  # line breaks turned into spaces, no END
        "\n".join(BODY),  # no header
        f"key: {BODY[0]}",
    ],
    ids=["long-line", "encrypted-headers", "spaces", "no-header", "inline-no-header"],
)
def test_private_key_material_is_masked_whole(text: str) -> None:
    verdict = decide(text, [rule("quarantine", "private_key")], topic="job.x")
    assert verdict.decision == "quarantine"
    assert all(line[:12] not in verdict.redacted and line[-12:] not in verdict.redacted for line in BODY)


def test_certificates_and_public_keys_are_not_private_keys() -> None:
    assert found("MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ", "private_key") == []
    assert found("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo", "private_key") == []


# --- passwords and secrets by name ---------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        {"pw": "hunter22"},
        {"db_pass": "s3cr3tP4ss"},
        {"pass": "Xy9#kLm2"},
        {"dbPassword": "Pa55w0rd!"},
        {"secret": "hunter2-prod"},
        {"token": "abc123XYZ"},
        {"api_key": "k-77aa"},
        "the password is Tr0ub4dor&3",
        "pw: hunter2!",
    ],
)
def test_passwords_by_key_name_and_in_prose(output: Any) -> None:
    assert [d for _, d in found(output, "password")] == ["password"]


@pytest.mark.parametrize(
    "output",
    [
        {"secret": "db-credentials"},
        {"token_count": 512, "tokens": 4096, "max_tokens": 1024},
        {"pass": 12, "fail": 0},
        {"password": None},
        {"passwordHint": "your first pet"},
        {"bypass": "enabled"},
        "the password is correct",
        "reset your password via the link",
    ],
)
def test_words_about_passwords_are_not_passwords(output: Any) -> None:
    assert found(output, "password") == []


def test_bare_aws_secret_keys_and_lookalikes() -> None:
    secret = "nFIGLj5M7YYpHCOTHUtuJvbipRdkJAWZ4moUxm+y"
    assert found(f"new value {secret}", "aws_secret_key") == [("$", "aws_secret_key")]
    assert found(["ok", secret], "aws_secret_key") == [("$[1]", "aws_secret_key")]
    for lookalike in (
        "3f2a9c1e8b7d6f5a4c3b2a1908f7e6d5c4b3a291",  # a git SHA
        "ThisIsAVeryLongIdentifierNameForTesting1",
        "/api/v1/Users/12345/Orders/67890/Items/4",
    ):
        assert found(lookalike, "aws_secret_key") == [], lookalike
