"""One spelling for what policy compares: topics, label keys and values, capabilities.

A rule written `topics: ["job.exec.*"]` or `labels: {env: prod}` must not be walked past by a
job on `JOB.EXEC.SHELL` or with `env: Prod` (probe F5). Everything a rule compares by equality
is brought to one spelling on both sides, the job's at intake and the rule's at load:

- topics, label keys and capabilities are identifiers: lower-cased;
- label values are text: Unicode NFKC (full-width and other compatibility forms become their
  plain letters) then case-folded, so full-width `PROD`, `PROD` and `prod` are one value.

The stored job keeps this spelling, so what the policy judged is what the job shows. Pure.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

__all__ = ["canon_capability", "canon_labels", "canon_topic", "canon_value"]


def canon_topic(topic: str) -> str:
    return topic.lower()


def canon_capability(capability: str) -> str:
    return unicodedata.normalize("NFKC", capability).lower()


def canon_value(value: str) -> str:
    return unicodedata.normalize("NFKC", value).casefold()


def canon_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Keys lower-cased, values folded; when two keys fold together the later one wins, as a
    repeated key of a JSON object would."""
    return {key.lower(): canon_value(value) for key, value in labels.items()}
