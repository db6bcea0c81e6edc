"""Screening job attachments: executables, scripts and archives that hide them are removed.

An attachment is `{name, content_type, content_base64}`. The checks run cheapest first and the
first one that fires decides the reason:

1. the name's last extension (`executable_extension`),
2. the declared content type (`executable_content_type`),
3. base64 decoding (`invalid_base64`),
4. the first bytes: executable magic (`executable_magic`) or `#!` (`script_shebang`),
5. archives, by content first and then by name or type: every member gets checks 1 and 4
   (`archive_contains_executable`); an archive that cannot be inspected is `unreadable_archive`.

Names and content types are claims by the client; the bytes are what would run, so a renamed
binary is still caught by step 4 and a renamed zip by step 5.

A kept attachment's name is made safe to hand to a worker that may write it to disk
(`safe_name`): its last path component only (`../../etc/passwd` is `passwd`), without control
or format characters, at most `MAX_NAME_CHARS` characters (its extension kept).
"""

from __future__ import annotations

import base64
import binascii
import io
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatehouse.ingress.archives import MEMBER_READ_BYTES, inspect_archive
from gatehouse.ingress.signatures import (
    Finding,
    archive_kind,
    check_content_type,
    check_head,
    check_name,
)

__all__ = ["MAX_NAME_CHARS", "AttachmentScreen", "RemovedAttachment", "safe_name", "screen_attachments"]

MAX_NAME_CHARS = 128
_FALLBACK_NAME = "attachment"


def safe_name(name: str) -> str:
    """`name` as a plain file name: no directories, no control or format characters, bounded."""
    kept = []
    for ch in name:
        if ch in "\t\n\r":
            kept.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf"):
            kept.append(ch)
    # The last path component, either separator; no leading dots (`..`, hidden files).
    base = "".join(kept).replace("\\", "/").rsplit("/", 1)[-1].strip(" .")
    if not base:
        return _FALLBACK_NAME
    if len(base) > MAX_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        if dot and stem and len(ext) <= 16:
            base = stem[: MAX_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            base = base[:MAX_NAME_CHARS]
    return base


@dataclass(frozen=True)
class RemovedAttachment:
    """An attachment that was taken out: its name, a snake_case reason and a human detail."""

    name: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class AttachmentScreen:
    """The attachments that passed (the caller's dicts, unchanged) and those removed."""

    kept: tuple[dict[str, Any], ...]
    removed: tuple[RemovedAttachment, ...]


def screen_attachments(attachments: Sequence[Mapping[str, Any]]) -> AttachmentScreen:
    """Split `attachments` into kept and removed, in their original order."""
    kept: list[dict[str, Any]] = []
    removed: list[RemovedAttachment] = []
    for attachment in attachments:
        raw_name = attachment.get("name")
        name = raw_name if isinstance(raw_name, str) else ""
        finding = _screen_one(name, attachment)
        safe = safe_name(name)
        if finding is None and safe != name:
            # The name a worker will see is judged too (`x.exe\x00.txt` is an `.exe` once cleaned).
            finding = check_name(safe)
        if finding is None:
            if safe != name:
                kept.append({**attachment, "name": safe})
            else:
                kept.append(attachment if isinstance(attachment, dict) else dict(attachment))
        else:
            removed.append(RemovedAttachment(name, finding.reason, finding.detail))
    return AttachmentScreen(kept=tuple(kept), removed=tuple(removed))


def _screen_one(name: str, attachment: Mapping[str, Any]) -> Finding | None:
    content_type = attachment.get("content_type")
    finding = check_name(name) or check_content_type(content_type)
    if finding is not None:
        return finding
    data = _decode(attachment.get("content_base64"))
    if data is None:
        return Finding("invalid_base64", f"`{name}`: content_base64 is not valid base64")
    head = data[:MEMBER_READ_BYTES]
    finding = check_head(head)
    if finding is not None:
        return finding
    kind = archive_kind(head, name, content_type)
    if kind is None and _zip_at_end(data):
        # A zip appended to another file (a GIF or PDF with a zip tail) opens as a zip too.
        kind = "zip"
    if kind is not None:
        return inspect_archive(kind, name, data)
    return None


def _decode(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    # MIME-style base64 wraps lines; whitespace is not content, anything else outside the
    # alphabet is an error rather than silently skipped.
    compact = "".join(value.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _zip_at_end(data: bytes) -> bool:
    try:
        return zipfile.is_zipfile(io.BytesIO(data))
    except Exception:  # a parser error on untrusted bytes just means "not a zip"
        return False
