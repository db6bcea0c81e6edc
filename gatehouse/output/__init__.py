"""The output gate: detectors for secrets and PII, and the allow / redact / quarantine decision.

    verdict = gatehouse.output.decide(result, policy.output_rules, topic=job.topic)
    verdict.decision, verdict.rule_id, verdict.findings, verdict.redacted, verdict.complete

Pure, like `gatehouse.policy`: no I/O, no clock; a test walks the imports to keep it so.
"""

from __future__ import annotations

from gatehouse.output.detectors import ALL_DETECTORS, Detector, get_detector
from gatehouse.output.gate import DEFAULT_MAX_CHARS, Finding, OutputVerdict, applies, decide, scan
from gatehouse.output.validators import iban_valid, luhn_valid, ssn_valid

__all__ = [
    "ALL_DETECTORS",
    "DEFAULT_MAX_CHARS",
    "Detector",
    "Finding",
    "OutputVerdict",
    "applies",
    "decide",
    "get_detector",
    "iban_valid",
    "luhn_valid",
    "scan",
    "ssn_valid",
]
