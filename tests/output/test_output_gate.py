"""`scan` and `decide`: JSON paths, redaction, rule precedence, topic scoping, the scan budget."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatehouse.output import ALL_DETECTORS, DEFAULT_MAX_CHARS, Finding, OutputVerdict, decide, scan
from gatehouse.output.gate import _replace
from gatehouse.policy import EvaluationError, OutputRule, load

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHC\n-----END RSA PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc123"
ALL_NAMES = [d.name for d in ALL_DETECTORS]


def rule(
    rid: str, decision: str, *detectors: str, topics: tuple[str, ...] = (), reason: str = ""
) -> OutputRule:
    return OutputRule(id=rid, detectors=detectors, decision=decision, reason=reason, topics=topics)


QUARANTINE_KEYS = rule("quarantine-keys", "quarantine", "private_key", "aws_access_key")
REDACT_PII = rule("redact-pii", "redact", "email", "credit_card")
SEED_RULES = (QUARANTINE_KEYS, REDACT_PII)


# --- scan: paths, offsets, excerpts ------------------------------------------------------------


def test_a_bare_string_is_scanned_at_the_root_path() -> None:
    text = f"mail {EMAIL} please"
    findings, complete = scan(text, ["email"])
    assert complete
    # The excerpt shows no character of an address, a card, a password: only a public prefix.
    assert findings == (Finding("email", "$", 5, 5 + len(EMAIL), "…[20 chars]"),)
    assert text[findings[0].start : findings[0].end] == EMAIL


def test_nested_strings_are_reported_with_their_json_paths() -> None:
    output = {
        "stdout": f"to {EMAIL}",
        "items": [1, None, {"text": f"card {CARD}"}, [f"x {EMAIL}"]],
        "odd key": EMAIL,
        "0": EMAIL,
        "exit": 0,
        "ok": True,
    }
    findings, _ = scan(output, ["email", "credit_card"])
    assert [(f.path, f.detector, f.start) for f in findings] == [
        ("$.stdout", "email", 3),
        ("$.items[2].text", "credit_card", 5),
        ("$.items[3][0]", "email", 2),
        ('$["odd key"]', "email", 0),
        ('$["0"]', "email", 0),
    ]


def test_dict_keys_are_scanned_redacted_and_masked_in_paths() -> None:
    # Probe F1: a secret in an object key was stored and shown verbatim.
    output = {EMAIL: "nothing here", "n": {CARD: 1}, AWS_KEY: {"inner": EMAIL}}
    findings, _ = scan(output, ["email", "credit_card", "aws_access_key"])
    assert [(f.path, f.detector) for f in findings] == [
        ('$["[REDACTED:email]"]', "email"),
        ('$.n["[REDACTED:credit_card]"]', "credit_card"),
        ('$["[REDACTED:aws_access_key]"]', "aws_access_key"),
        ('$["[REDACTED:aws_access_key]"].inner', "email"),
    ]
    assert all(EMAIL not in f.path and AWS_KEY not in f.path for f in findings)
    verdict = decide({EMAIL: f"write to {EMAIL}", "ok": 1}, [REDACT_PII], topic="job.x")
    assert verdict.redacted == {"[REDACTED:email]": "write to [REDACTED:email]", "ok": 1}


def test_redacted_keys_that_collide_are_kept_apart() -> None:
    other = "john.roe@example.org"
    verdict = decide({EMAIL: 1, other: 2}, [REDACT_PII], topic="job.x")
    assert verdict.redacted == {"[REDACTED:email]": 1, "[REDACTED:email] #2": 2}


def test_findings_in_one_string_come_in_offset_order_whatever_the_detector_order() -> None:
    text = f"{CARD} then {EMAIL} then {AWS_KEY}"
    findings, _ = scan(text, ["aws_access_key", "email", "credit_card"])
    assert [f.detector for f in findings] == ["credit_card", "email", "aws_access_key"]
    assert [text[f.start : f.end] for f in findings] == [CARD, EMAIL, AWS_KEY]


@pytest.mark.parametrize(("name", "example"), [(d.name, ex) for d in ALL_DETECTORS for ex in d.examples])
def test_excerpts_never_contain_the_secret(name: str, example: str) -> None:
    findings, _ = scan({"out": example}, [name])
    assert findings
    for f in findings:
        secret = example[f.start : f.end]
        assert secret not in f.excerpt
        assert len(f.excerpt.partition("…")[0]) <= min(4, len(secret) // 4)
        assert f.excerpt.endswith(f"[{len(secret) - len(f.excerpt.partition('…')[0])} chars]")
        assert secret not in json.dumps(f.to_dict())


def test_finding_to_dict() -> None:
    f = Finding("email", "$.a", 1, 21, "jane…[16 chars]")
    assert f.to_dict() == {
        "detector": "email",
        "path": "$.a",
        "start": 1,
        "end": 21,
        "excerpt": "jane…[16 chars]",
    }


def test_an_unknown_detector_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError) as err:
        scan("text", ["email", "telepathy"])
    assert err.value.code == "unknown_detector"
    with pytest.raises(EvaluationError):
        decide("text", [rule("r", "redact", "telepathy")], topic="job.x")


@pytest.mark.parametrize("value", [{"a": {1, 2}}, [b"bytes"], object()])
def test_a_value_that_is_not_json_is_an_evaluation_error(value: Any) -> None:
    with pytest.raises(EvaluationError) as err:
        scan(value, ["email"])
    assert err.value.code == "output_not_json"


def test_a_cycle_is_refused_instead_of_walked_forever() -> None:
    loop: list[Any] = ["x"]
    loop.append(loop)
    with pytest.raises(EvaluationError) as err:
        scan(loop, ["email"])
    assert err.value.code == "output_too_deep"


def test_a_cycle_past_the_scan_budget_is_refused_too() -> None:
    loop: list[Any] = [EMAIL + " " + "x" * 100]
    loop.append(loop)
    with pytest.raises(EvaluationError) as err:
        decide(loop, [REDACT_PII], topic="job.x", max_chars=50)
    assert err.value.code == "output_too_deep"


def test_deeply_nested_json_is_walked_without_recursion() -> None:
    deep: Any = EMAIL
    for _ in range(3000):  # deeper than Python's recursion limit
        deep = [deep]
    verdict = decide(deep, [REDACT_PII], topic="job.x")
    assert verdict.decision == "redact"
    inner = verdict.redacted
    for _ in range(3000):
        inner = inner[0]
    assert inner == "[REDACTED:email]"


# --- the scan budget ---------------------------------------------------------------------------


def test_an_output_within_the_budget_is_complete() -> None:
    output = {"a": "x" * 10, "b": EMAIL}
    assert scan(output, ["email"], max_chars=2 + 10 + len(EMAIL))[1] is True  # keys count
    assert scan(output, ["email"], max_chars=0)[1] is False
    assert scan({"n": None, "e": ""}, ["email"], max_chars=0) == ((), False)  # keys count too
    assert scan([None, True, ""], ["email"], max_chars=0) == ((), True)
    assert scan([4111111111111111], ["credit_card"], max_chars=15)[1] is False  # numbers too


def test_only_the_first_max_chars_are_scanned() -> None:
    output = {"a": "x" * 10, "b": f"{EMAIL} and {EMAIL}", "c": EMAIL}
    findings, complete = scan(output, ["email"], max_chars=10 + len(EMAIL) + 5)
    assert complete is False
    assert [(f.path, f.start) for f in findings] == [("$.b", 0)]


def test_a_huge_output_is_marked_incomplete_and_its_prefix_still_redacted() -> None:
    output = {"head": f"to {EMAIL}", "body": "y" * DEFAULT_MAX_CHARS, "tail": EMAIL}
    verdict = decide(output, [REDACT_PII], topic="job.x")
    assert verdict.complete is False
    assert verdict.decision == "redact"
    assert [f.path for f in verdict.findings] == ["$.head"]
    assert verdict.redacted["head"] == "to [REDACTED:email]"
    assert verdict.redacted["tail"] == EMAIL  # never scanned: the caller fails closed on `complete`


def test_a_negative_budget_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        scan("x", ["email"], max_chars=-1)


# --- decide: which rule wins -------------------------------------------------------------------


def test_no_rules_or_no_match_allows_the_output_unchanged_under_default() -> None:
    output = {"stdout": "all good"}
    for rules in ((), SEED_RULES):
        verdict = decide(output, rules, topic="job.demo.echo")
        assert (verdict.decision, verdict.rule_id, verdict.findings) == ("allow", "default", ())
        assert verdict.redacted is output
        assert verdict.complete is True


def test_a_redact_rule_replaces_exactly_the_spans_and_leaves_the_rest() -> None:
    output = {"stdout": f"mail {EMAIL} and charge {CARD} today", "code": 0}
    verdict = decide(output, SEED_RULES, topic="job.demo.echo")
    assert (verdict.decision, verdict.rule_id) == ("redact", "redact-pii")
    assert verdict.redacted == {
        "stdout": "mail [REDACTED:email] and charge [REDACTED:credit_card] today",
        "code": 0,
    }
    assert [f.detector for f in verdict.findings] == ["email", "credit_card"]
    assert verdict.reason == "output rule `redact-pii` found `email`, `credit_card`"


def test_the_rule_reason_is_used_when_given() -> None:
    verdict = decide(EMAIL, [rule("r", "redact", "email", reason="no addresses")], topic="job.x")
    assert verdict.reason == "no addresses"


@pytest.mark.parametrize("rules", [SEED_RULES, SEED_RULES[::-1]], ids=["quarantine-first", "redact-first"])
def test_quarantine_beats_redact_whatever_the_order(rules: tuple[OutputRule, ...]) -> None:
    output = {"a": f"key {AWS_KEY}", "b": f"mail {EMAIL}"}
    verdict = decide(output, rules, topic="job.x")
    assert (verdict.decision, verdict.rule_id) == ("quarantine", "quarantine-keys")
    # The reviewer's preview hides both what caused the quarantine and the PII beside it.
    assert verdict.redacted == {"a": "key [REDACTED:aws_access_key]", "b": "mail [REDACTED:email]"}


def test_redact_beats_allow_and_only_hiding_rules_redact() -> None:
    rules = [
        rule("allow-ips", "allow", "ip_address"),
        rule("redact-mail", "redact", "email"),
    ]
    verdict = decide(f"{EMAIL} from 10.1.2.3", rules, topic="job.x")
    assert (verdict.decision, verdict.rule_id) == ("redact", "redact-mail")
    assert verdict.redacted == "[REDACTED:email] from 10.1.2.3"
    assert {f.detector for f in verdict.findings} == {"email", "ip_address"}


def test_a_matching_allow_rule_wins_over_default_and_changes_nothing() -> None:
    output = ["from 10.1.2.3"]
    verdict = decide(output, [rule("allow-ips", "allow", "ip_address")], topic="job.x")
    assert (verdict.decision, verdict.rule_id) == ("allow", "allow-ips")
    assert verdict.redacted is output
    assert len(verdict.findings) == 1


def test_ties_go_to_the_rule_listed_first() -> None:
    first = rule("first", "redact", "email", "phone")
    second = rule("second", "redact", "email")
    for rules, winner in (([first, second], "first"), ([second, first], "second")):
        verdict = decide(f"{EMAIL} or +1 415 555 2671", rules, topic="job.x")
        assert verdict.rule_id == winner
        # Both rules matched: the findings of both are redacted, whichever won.
        assert verdict.redacted == "[REDACTED:email] or [REDACTED:phone]"


def test_a_rule_matches_when_any_one_of_its_detectors_finds_something() -> None:
    verdict = decide(f"{CARD}", [rule("r", "quarantine", "jwt", "ssn", "credit_card")], topic="job.x")
    assert (verdict.decision, verdict.rule_id) == ("quarantine", "r")


def test_a_rule_with_a_decision_outside_the_output_decisions_is_refused() -> None:
    with pytest.raises(EvaluationError) as err:
        decide("x", [rule("r", "deny", "email")], topic="job.x")
    assert err.value.code == "bad_output_rule"


@pytest.mark.parametrize(
    ("topics", "topic", "applies"),
    [
        ((), "job.anything.at.all", True),
        (("job.exec.*",), "job.exec.shell", True),
        (("job.exec.*",), "job.exec.shell.bash", False),
        (("job.exec.*",), "job.db.read", False),
        (("job.**",), "job.exec.shell.bash", True),
        (("job.db.re*", "job.exec.*"), "job.db.read", True),
    ],
)
def test_rules_apply_only_to_their_topics(topics: tuple[str, ...], topic: str, applies: bool) -> None:
    verdict = decide(f"mail {EMAIL}", [rule("scoped", "redact", "email", topics=topics)], topic=topic)
    assert verdict.decision == ("redact" if applies else "allow")
    # A rule that does not apply runs no detector: nothing is reported either.
    assert bool(verdict.findings) is applies


def test_findings_hold_every_detector_of_every_applicable_rule() -> None:
    rules = [rule("mail", "redact", "email"), rule("ips", "allow", "ip_address", topics=("job.net.*",))]
    text = f"{EMAIL} 10.1.2.3"
    assert [f.detector for f in decide(text, rules, topic="job.net.ping").findings] == ["email", "ip_address"]
    assert [f.detector for f in decide(text, rules, topic="job.exec.sh").findings] == ["email"]


def test_the_seed_bundle_rules_work_end_to_end() -> None:
    policy = load(
        "version: 1\nname: t\noutput_rules:\n"
        "  - id: quarantine-private-keys\n    detectors: [private_key, aws_access_key]\n"
        "    decision: quarantine\n"
        "  - id: redact-pii\n    detectors: [email, credit_card]\n    decision: redact\n"
    )
    verdict = decide({"echo": f"here is the key:\n{PRIVATE_KEY}"}, policy.output_rules, topic="job.demo.echo")
    assert (verdict.decision, verdict.rule_id) == ("quarantine", "quarantine-private-keys")
    assert verdict.redacted == {"echo": "here is the key:\n[REDACTED:private_key]"}
    assert "MIIEowIBAAKCAQEA" not in json.dumps(verdict.to_dict())


# --- redaction details ------------------------------------------------------------------------


def test_the_input_is_never_mutated_and_the_redacted_copy_shares_no_container() -> None:
    output = {"a": [f"x {EMAIL}", {"b": CARD}], "c": ("t ", EMAIL), "d": 1.5}
    before = copy.deepcopy(output)
    verdict = decide(output, SEED_RULES, topic="job.x")
    assert output == before
    assert verdict.redacted == {
        "a": ["x [REDACTED:email]", {"b": "[REDACTED:credit_card]"}],
        "c": ["t ", "[REDACTED:email]"],  # JSON has no tuples: arrays come back as lists
        "d": 1.5,
    }
    verdict.redacted["a"][1]["b"] = "changed"
    assert output == before


def test_identical_overlapping_findings_become_one_marker_named_by_table_order() -> None:
    rules = [rule("r", "redact", "generic_api_key", "jwt")]
    verdict = decide(f"token={JWT}", rules, topic="job.x")
    assert {f.detector for f in verdict.findings} == {"jwt", "generic_api_key"}
    assert verdict.redacted == "token=[REDACTED:jwt]"


def test_a_finding_inside_another_is_covered_by_the_outer_marker() -> None:
    text = "ssn +44 078-05-1120 end"
    verdict = decide(text, [rule("r", "redact", "ssn", "phone")], topic="job.x")
    spans = {f.detector: text[f.start : f.end] for f in verdict.findings}
    assert spans == {"phone": "+44 078-05-1120", "ssn": "078-05-1120"}
    assert verdict.redacted == "ssn [REDACTED:phone] end"


def test_the_union_of_partly_overlapping_spans_is_redacted() -> None:
    text = "0123456789abcdef"
    assert _replace(text, [(2, 6, "email"), (4, 9, "phone"), (12, 14, "ssn")]) == (
        "01[REDACTED:email]9ab[REDACTED:ssn]ef"
    )
    # Touching spans stay two markers: nothing between them survives either way.
    assert _replace(text, [(0, 4, "ssn"), (4, 8, "email")]) == "[REDACTED:ssn][REDACTED:email]89abcdef"


def test_decide_is_deterministic() -> None:
    output = {"z": f"{EMAIL} {CARD}", "a": [AWS_KEY, EMAIL]}
    verdicts = {json.dumps(decide(output, SEED_RULES, topic="job.x").to_dict()) for _ in range(5)}
    assert len(verdicts) == 1


def test_verdict_to_dict_is_json_and_carries_no_output() -> None:
    verdict = decide({"a": f"{AWS_KEY} {EMAIL}"}, SEED_RULES, topic="job.x")
    data = verdict.to_dict()
    assert set(data) == {"decision", "rule_id", "reason", "findings", "complete"}
    text = json.dumps(data)
    assert AWS_KEY not in text and EMAIL not in text
    assert data["findings"][0] == verdict.findings[0].to_dict()


def test_a_verdict_can_be_built_by_the_caller() -> None:
    # The job path builds its own fail-closed verdicts (no policy loaded, output too large).
    v = OutputVerdict("quarantine", "kernel_unavailable", "no policy", (), None, False)
    assert v.to_dict()["rule_id"] == "kernel_unavailable"


def test_a_large_adversarial_output_is_decided_quickly() -> None:
    # Smoke guard against catastrophic backtracking through the whole gate, not a benchmark.
    chunk = "password: token= +1 (415) 555- a@b. 192.168. eyJ ghp_ xoxb- AKIA DE89 4111 "
    output = {"stdout": chunk * 2_700, "items": [chunk * 10] * 20}
    rules = [rule("all", "redact", *ALL_NAMES)]
    started = time.perf_counter()
    decide(output, rules, topic="job.x")
    assert time.perf_counter() - started < 2.0


# --- properties --------------------------------------------------------------------------------

FRAGMENTS = sorted(
    {ex for d in ALL_DETECTORS for ex in (*d.examples, *d.counter_examples)}
    | {" ", "\n", "=", ":", '"', "'", "-", ".", "@", "+", "[", "]", "password=", "token: ", "Bearer ", "ssn "}
    | {"1", "4111", "555", "abc", "x9", "[REDACTED:email]", "example.com", "AKIA", "eyJ", "DE89"}
)
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=6).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from("abc"), children, max_size=3)
    ),
    max_leaves=8,
)


def strings(value: Any, path: str = "$") -> list[tuple[str, str]]:
    """(path, string) pairs, in the path syntax `scan` uses (the test values have identifier keys)."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in strings(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in strings(v, f"{path}.{k}")]
    return []


rules_strategy = st.lists(
    st.tuples(
        st.sampled_from(["allow", "redact", "quarantine"]),
        st.lists(st.sampled_from(ALL_NAMES), min_size=1, max_size=4, unique=True),
    ),
    min_size=1,
    max_size=4,
).map(lambda rows: [rule(f"r{i}", decision, *names) for i, (decision, names) in enumerate(rows)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output=json_values, rules=rules_strategy)
def test_property_redacted_output_holds_nothing_a_hiding_rule_would_find(
    output: Any, rules: list[OutputRule]
) -> None:
    before = copy.deepcopy(output)
    verdict = decide(output, rules, topic="job.x")
    assert output == before
    assert verdict.complete
    if verdict.decision == "allow":
        assert verdict.redacted is output
        return
    hiding = [d for r in rules if r.decision != "allow" for d in r.detectors]
    assert scan(verdict.redacted, hiding) == ((), True)
    # Strings with no finding of a hiding detector come back as they were.
    touched = {f.path for f in verdict.findings if f.detector in hiding}
    assert touched
    old, new = dict(strings(output)), dict(strings(verdict.redacted))
    assert old.keys() == new.keys()
    assert {p: s for p, s in old.items() if p not in touched} == {
        p: s for p, s in new.items() if p not in touched
    }


@settings(max_examples=200, deadline=None)
@given(output=json_values)
def test_property_with_only_allow_rules_the_output_is_returned_unchanged(output: Any) -> None:
    before = copy.deepcopy(output)
    verdict = decide(output, [rule("allow-all", "allow", *ALL_NAMES)], topic="job.x")
    assert verdict.decision == "allow"
    assert verdict.redacted is output
    assert output == before
    assert verdict.rule_id == ("allow-all" if verdict.findings else "default")


@pytest.mark.parametrize(
    ("output", "detector", "path"),
    [
        ({"password": "hunter2"}, "password", "$.password"),
        ({"db": {"db_password": "S3cr3t!pw"}}, "password", "$.db.db_password"),
        ({"api_key": "a8f5f167f44f4964e6c998dee827110c"}, "generic_api_key", "$.api_key"),
        (
            {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
            "aws_secret_key",
            "$.aws_secret_access_key",
        ),
    ],
)
def test_a_secret_named_by_its_object_key_is_found_in_the_value(
    output: Any, detector: str, path: str
) -> None:
    findings, complete = scan(output, [detector])
    assert complete
    [finding] = findings
    assert (finding.detector, finding.path, finding.start) == (detector, path, 0)


def test_only_names_make_a_key_a_secret() -> None:
    findings, _ = scan({"user": "hunter2", "items": ["password", "hunter2"], "password": ""}, ["password"])
    assert findings == ()


def test_a_keyed_secret_is_redacted_and_its_key_kept() -> None:
    rules = (OutputRule(id="r", detectors=("password",), decision="redact"),)
    verdict = decide({"login": {"password": "hunter2", "user": "app"}}, rules, topic="job.x")
    assert verdict.redacted == {"login": {"password": "[REDACTED:password]", "user": "app"}}


def test_rules_apply_by_topic_to_jobs_and_by_target_to_tool_calls() -> None:
    from gatehouse.output.gate import applies

    everything = OutputRule(id="all", detectors=("email",), decision="redact")
    jobs = OutputRule(id="jobs", detectors=("email",), decision="redact", topics=("job.mail.*",))
    calls = OutputRule(id="calls", detectors=("email",), decision="redact", targets=("adapter:web:*",))
    both = OutputRule(id="both", detectors=("email",), decision="redact", topics=("job.mail.*",),
                      targets=("adapter:web:*",))  # fmt: skip
    # A job's result.
    assert [r.id for r in (everything, jobs, calls, both) if applies(r, "job.mail.send")] == ["all", "jobs"]
    # A tool call outside any job.
    assert [r.id for r in (everything, jobs, calls, both) if applies(r, None, "adapter:web:read")] == [
        "all",
        "calls",
    ]
    # A tool call inside a job on a matching topic.
    found = [r.id for r in (everything, jobs, calls, both) if applies(r, "job.mail.send", "adapter:web:read")]
    assert found == ["all", "jobs", "calls", "both"]
    assert not applies(calls, "job.mail.send", "adapter:bank:pay")
