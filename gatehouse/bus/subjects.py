"""The subjects the control plane publishes on: named once, so a typo is an import error."""

from __future__ import annotations

__all__ = ["IDENTITY_REVOKED", "JOBS_QUEUED", "POLICY_CHANGED", "SUBJECTS"]

# A job entered the queue (submitted, approved, or its lease expired): wake up waiting lessees.
# Data: {job_id, topic}.
JOBS_QUEUED = "jobs.queued"
# A policy bundle was installed: other replicas load it from the store. Data: {snapshot}.
POLICY_CHANGED = "policy.changed"
# An identity's key was revoked: drop anything cached about it. Data: {id}.
IDENTITY_REVOKED = "identity.revoked"

SUBJECTS = (JOBS_QUEUED, POLICY_CHANGED, IDENTITY_REVOKED)
