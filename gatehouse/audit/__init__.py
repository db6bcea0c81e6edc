"""The tamper-evident audit log: hash-chained entries per stream, Ed25519-signed checkpoints."""

from __future__ import annotations

from gatehouse.audit.chain import GENESIS, Checkpoint, Entry, StreamReport, verify_stream
from gatehouse.audit.events import AuditEvent, current_actor, current_request_id

__all__ = [
    "GENESIS",
    "AuditEvent",
    "Checkpoint",
    "Entry",
    "StreamReport",
    "current_actor",
    "current_request_id",
    "verify_stream",
]
