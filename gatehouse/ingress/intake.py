"""Intake: a job's untrusted body -> the labels, meta and attachments the gates judge.

One pure function for every path that decides a job: the server's submit, simulate and explain
(`gatehouse.control.submit`) and the offline `gatehouse policy simulate|explain|test|diff`. Were they
two functions, the offline tools would judge a different job than the server does (a
`rm -rf /` prompt allowed offline and denied on the server), and CI fixtures would test a
different system.

Steps, in order: `sanitise` drops server-only label keys and meta keys outside the allow-list;
`screen_attachments` removes executables and the archives that may hide them; `classify` derives
`command_class` and risk tags from the prompt and the text attachments (within a character
budget, the job tagged `attachment_not_fully_classified` past it); derived labels override
client-sent ones. Label keys and the capability get the one spelling policy compares (`canon`);
the topic's (`canon_topic`) and the label values' (`canon_labels`) are applied by the callers.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatehouse.ingress.attachments import screen_attachments
from gatehouse.ingress.canon import canon_capability
from gatehouse.ingress.classify import Classifier
from gatehouse.ingress.sanitise import sanitise

__all__ = ["Intake", "intake"]

# Meta keys a stored job keeps (the sanitiser's allow-list minus `risk_tags`, rebuilt below).
_KEPT_META = ("capability", "source", "trace_id", "session_id", "description")
TRUNCATED_TAG = "attachment_not_fully_classified"


@dataclass(frozen=True, slots=True)
class Intake:
    """What the gates see of a job, and what the server derived (`derived` is recorded)."""

    labels: dict[str, str]
    meta: dict[str, Any]
    attachments: list[dict[str, Any]]
    derived: dict[str, Any]


def _texts(attachments: Sequence[Mapping[str, Any]], budget: int) -> tuple[list[str], bool]:
    """Decoded text of the attachments that are text, within `budget` characters in all; True
    when some text was left unread."""
    out: list[str] = []
    truncated = False
    for a in attachments:
        try:
            text = base64.b64decode(a.get("content_base64", ""), validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if len(text) > budget:
            truncated = True
            text = text[:budget]
        budget -= len(text)
        out.append(text)
    return out, truncated


def intake(
    *,
    prompt: str,
    labels: Mapping[str, Any] | None,
    meta: Mapping[str, Any] | None,
    attachments: Sequence[Mapping[str, Any]] = (),
    classifier: Classifier,
    max_attachment_chars: int,
) -> Intake:
    """Sanitise, screen and classify one job body. Pure: the same body gives the same intake."""
    clean = sanitise(dict(labels or {}), dict(meta or {}))
    screened = screen_attachments([dict(a) for a in attachments])
    kept = [dict(a) for a in screened.kept]
    for a in kept:
        a["size"] = len(a["content_base64"]) * 3 // 4
    texts, truncated = _texts(kept, max_attachment_chars)
    found = classifier.classify(prompt, attachments_text=texts)
    # Label keys are identifiers (lower case); values are kept as sent and folded where policy
    # compares them (`job_context`), so a ticket `CHG-7` stays `CHG-7` in the job.
    merged = {**{k.lower(): v for k, v in clean.labels.items()}, **found.labels}  # derived ones win
    out_meta: dict[str, Any] = {k: v for k, v in clean.meta.items() if k in _KEPT_META}
    if isinstance(out_meta.get("capability"), str):
        out_meta["capability"] = canon_capability(out_meta["capability"])
    server_tags = {*found.risk_tags, *((TRUNCATED_TAG,) if truncated else ())}
    out_meta["risk_tags"] = sorted({*clean.meta.get("risk_tags", []), *server_tags})
    derived: dict[str, Any] = {
        "labels": found.labels,
        "risk_tags": sorted(server_tags),
        "hits": [h.to_dict() for h in found.hits],
    }
    if clean.dropped:
        derived["dropped"] = [d.to_dict() for d in clean.dropped]
    if screened.removed:
        derived["removed_attachments"] = [r.to_dict() for r in screened.removed]
    return Intake(labels=merged, meta=out_meta, attachments=kept, derived=derived)
