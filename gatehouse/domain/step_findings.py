"""What an approver must not miss in a step that waits for them: its params' findings.

    prov = provenance_of(session, earlier_steps, bound)
    found = param_findings(params, classifier=kernel.classifier, provenance=prov)

A job's approval card shows what the ingress classifier derived from its prompt; a step has no
prompt, its params are the payload. So the same two scans the step gate runs on the params
(`domain.steps.step_context`: the output detectors for `detected`, the classifier for `labels`)
are run again for the card, with where each finding sits (the param's path), plus what the
policy may not have asked about but a person should see:

- `hosts`: the hosts the params' links name (a link to an outside domain is egress);
- `from_untrusted`: the params' paths whose values occur in output an earlier step of the session
  returned from an untrusted action (the `from_untrusted` test of the policy language, applied to
  every param: the value may have been planted by the content the agent read).

Pure: the caller (the approval queue) reads the session and passes its provenance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from gatehouse.domain.sessions import Session, SessionStep
from gatehouse.domain.steps import detector_scan
from gatehouse.ingress.canon import canon_labels
from gatehouse.ingress.classify import Classifier
from gatehouse.output import get_detector
from gatehouse.policy import ALLOW, Provenance, detected, detections_of, host_of
from gatehouse.policy.model import SECRET_DETECTORS, Condition, Rule

__all__ = ["SECRET_DETECTORS", "param_findings", "provenance_of", "untrusted_checks"]

_URL = get_detector("url")
_MAX_DEPTH = 32


def provenance_of(session: Session, steps: Sequence[SessionStep], bound: int) -> Provenance:
    """The session's provenance from its stored task and the kept untrusted outputs of `steps`."""
    trusted = [session.task] if session.task else []
    if session.bounded:
        # Past its bound a session fails closed: `from_untrusted` holds for every value.
        return Provenance.start(trusted=trusted, bound=0).with_untrusted("bounded")
    prov = Provenance.start(trusted=trusted, bound=bound)
    for s in steps:
        if s.result == ALLOW and not s.trusted and s.output is not None:
            prov = prov.with_untrusted(s.output)
    return prov


def _leaves(value: Any, path: str = "params", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(path, scalar) for every string or number of the params, in document order."""
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        yield path, value
    elif depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if isinstance(k, str):
                    yield from _leaves(v, f"{path}.{k}", depth + 1)
        elif isinstance(value, list | tuple):
            for v in value:
                yield from _leaves(v, path, depth + 1)


def param_findings(
    params: Any,
    *,
    classifier: Classifier,
    provenance: Provenance | None = None,
    scan: Callable[[str], Iterable[str]] = detector_scan,
) -> dict[str, Any]:
    """The findings in `params` (see the module docstring): `labels`, `risk_tags` and `hits` as
    a job's `derived` has them (a hit's `source` is the param's path), `detections` (path ->
    detector names), `detected`, `secrets` (the secret detectors among them), `hosts` and
    `from_untrusted`."""
    leaves = list(_leaves(params))
    strings = [(path, v) for path, v in leaves if isinstance(v, str) and v]
    texts = [v for _, v in strings]
    c = classifier.classify(texts[0], attachments_text=texts[1:]) if texts else classifier.classify("")

    def where(source: str) -> str:
        # The classifier names its inputs `prompt`, `attachment[i]` (and `... (as a shell reads it)`).
        base, _, rest = source.partition(" ")
        if base == "prompt" and strings:
            base = strings[0][0]
        elif base.startswith("attachment[") and base.endswith("]"):
            i = int(base[len("attachment[") : -1])
            base = strings[i + 1][0] if i + 1 < len(strings) else base
        return f"{base} {rest}".strip()

    found = detections_of(params, scan)
    names = detected(found)
    hosts = sorted(
        {h for _, text in strings for start, end in _URL.spans(text) if (h := host_of(text[start:end]))}
    )
    untrusted = []
    if provenance is not None:
        untrusted = sorted({path for path, v in leaves if provenance.from_untrusted(v)})
    return {
        "labels": canon_labels(dict(c.labels)),
        "risk_tags": list(c.risk_tags),
        "hits": [{**h.to_dict(), "source": where(h.source)} for h in c.hits],
        "detections": {path: sorted(n) for path, n in sorted(found.items())},
        "detected": names,
        "secrets": [n for n in names if n in SECRET_DETECTORS],
        "hosts": hosts,
        "from_untrusted": untrusted,
    }


def untrusted_checks(rule: Rule | None) -> list[str]:
    """The fields `rule`'s conditions test with `from_untrusted` (a rule that fired on them says
    the step's values came from untrusted output)."""
    if rule is None:
        return []
    out: list[str] = []
    stack: list[Condition] = list(rule.conditions)
    while stack:
        c = stack.pop()
        if c.op == "from_untrusted" and c.field not in out:
            out.append(c.field)
        stack.extend(c.children)
    return sorted(out)
