"""What verifying and exporting the audit log read: a small protocol any store satisfies.

It lives here, not in `gatehouse.store`, so that the audit package never imports the store (the
store imports the audit chain and writer): a driver satisfies it by having these methods.
"""

from __future__ import annotations

from typing import Protocol

from gatehouse.audit.chain import Checkpoint, Entry, Root

__all__ = ["AuditReader"]


class AuditReader(Protocol):
    async def audit_streams(self) -> list[str]: ...

    async def audit_entries(self, stream: str) -> list[Entry]: ...

    async def audit_checkpoints(self, stream: str) -> list[Checkpoint]: ...

    async def audit_roots(self) -> list[Root]: ...
