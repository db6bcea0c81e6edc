"""The decision cache: bounded, TTL, keyed on what the policy reads, never stale."""

from __future__ import annotations

import asyncio

from gatehouse.kernel import Kernel
from gatehouse.kernel.cache import DecisionCache
from gatehouse.metrics import Metrics
from gatehouse.policy import load

POLICY_A = """
version: 1
default_decision: allow
rules:
  - id: deny-prod
    decision: deny
    match: {topics: ["job.deploy.*"], labels: {env: prod}}
"""
POLICY_B = POLICY_A.replace("decision: deny", "decision: require_approval")


def _kernel(**kw) -> Kernel:
    return Kernel(metrics=Metrics(), **kw)


def decide(kernel: Kernel, ctx: dict) -> tuple[str, str, bool]:
    v = asyncio.run(kernel.decide(ctx, stage="submit"))
    return v.decision.decision, v.decision.rule_id, v.cached


CTX = {"topic": "job.deploy.apply", "labels": {"env": "prod"}}


def test_second_identical_decision_is_a_hit_and_prompts_do_not_defeat_it() -> None:
    k = _kernel()
    k.install(load(POLICY_A))
    assert decide(k, CTX) == ("deny", "deny-prod", False)
    assert decide(k, CTX) == ("deny", "deny-prod", True)
    # Fields the policy does not read (here: the tenant, a label it ignores) share the entry.
    assert decide(k, {**CTX, "tenant": "other", "labels": {"env": "prod", "x": "1"}})[2] is True
    # A field it reads changes the key.
    assert decide(k, {**CTX, "labels": {"env": "dev"}}) == ("allow", "default", False)
    assert k.cache.hits == 2 and k.cache.misses == 2


def test_a_policy_change_is_never_answered_from_the_old_snapshot() -> None:
    k = _kernel()
    k.install(load(POLICY_A))
    for _ in range(3):
        assert decide(k, CTX)[0] == "deny"
    k.install(load(POLICY_B))
    assert decide(k, CTX) == ("require_approval", "deny-prod", False)
    assert len(k.cache) == 1


def test_entries_are_keyed_on_the_snapshot_even_without_clearing() -> None:
    cache = DecisionCache()
    a, b = load(POLICY_A), load(POLICY_B)
    cache.put(cache.key(a, CTX), a.decide(CTX))
    assert cache.get(cache.key(b, CTX)) is None
    assert cache.get(cache.key(a, CTX)) is not None


def test_bounded_with_lru_eviction() -> None:
    cache = DecisionCache(max_entries=3)
    p = load(POLICY_A)
    for i in range(5):
        ctx = {"topic": f"job.deploy.t{i}", "labels": {"env": "prod"}}
        cache.put(cache.key(p, ctx), p.decide(ctx))
    assert len(cache) == 3 and cache.evictions == 2
    assert cache.get(cache.key(p, {"topic": "job.deploy.t0", "labels": {"env": "prod"}})) is None
    assert cache.get(cache.key(p, {"topic": "job.deploy.t4", "labels": {"env": "prod"}})) is not None


def test_ttl_expires_entries() -> None:
    now = [100.0]
    cache = DecisionCache(ttl=10, clock=lambda: now[0])
    p = load(POLICY_A)
    key = cache.key(p, CTX)
    cache.put(key, p.decide(CTX))
    now[0] += 5
    assert cache.get(key) is not None
    now[0] += 6
    assert cache.get(key) is None


def test_fail_mode_verdicts_are_never_cached() -> None:
    k = _kernel()
    v = asyncio.run(k.decide(CTX, stage="submit"))  # no policy: fail closed
    assert v.fail_mode_applied and v.decision.rule_id == "kernel_unavailable"
    assert len(k.cache) == 0
    k.install(load(POLICY_A))
    assert decide(k, CTX) == ("deny", "deny-prod", False)


def test_evaluation_error_falls_to_the_fail_mode_of_the_topic() -> None:
    k = _kernel()
    k.install(load(POLICY_A + "fail_mode: open\n"))
    v = asyncio.run(k.decide({"topic": "job.deploy.x", "labels": ["not", "a", "mapping"]}, stage="submit"))
    assert v.fail_mode_applied and v.decision.decision == "allow"
    k.install(load(POLICY_A))
    v = asyncio.run(k.decide({"topic": "job.deploy.x", "labels": ["bad"]}, stage="submit"))
    assert v.fail_mode_applied and v.decision.decision == "deny"
    assert v.decision.reason == "kernel_unavailable"


STEP_POLICY = """
default_decision: allow
rules:
  - id: evil-domain
    decision: deny
    target: "adapter:mail:send"
    conditions: [{eq: {params.to.domain: evil}}, {eq: {params.count: 1}}]
  - id: unapproved
    decision: require_approval
    conditions: [{not: {approved: true}}]
"""


def test_nested_params_are_keyed_by_their_path_and_their_type() -> None:
    cache, policy = DecisionCache(), load(STEP_POLICY)
    assert {"params.to.domain", "params.count", "approved", "target"} <= policy.fields
    step = {"target": "adapter:mail:send", "params": {"to": {"domain": "evil"}, "count": 1, "body": "hi"}}
    key = cache.key(policy, step)
    # A parameter no rule reads shares the entry; the value at a path a rule reads does not.
    assert cache.key(policy, {**step, "params": {**step["params"], "body": "other"}}) == key
    assert cache.key(policy, {**step, "params": {**step["params"], "to": {"domain": "corp"}}}) != key
    # `1`, `"1"` and `true` are different values to a rule, so they are different keys.
    assert policy.decide(step).rule_id == "evil-domain"
    for other in ("1", True, 1.5):
        changed = {**step, "params": {**step["params"], "count": other}}
        assert cache.key(policy, changed) != key
        assert policy.decide(changed).rule_id == "default"


def test_approved_one_is_not_keyed_as_approved_true() -> None:
    cache, policy = DecisionCache(), load(STEP_POLICY)
    job = {"topic": "job.x", "approved": True}
    assert policy.decide(job).rule_id == "default"
    assert policy.decide({**job, "approved": 1}).rule_id == "unapproved"
    assert cache.key(policy, job) != cache.key(policy, {**job, "approved": 1})
    # Absent and null are alike to every rule, so they may share an entry.
    assert cache.key(policy, {"topic": "job.x"}) == cache.key(policy, {"topic": "job.x", "approved": None})
