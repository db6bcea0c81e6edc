"""Looking inside zip and tar archives (plain, gzip, bzip2, xz) without trusting them.

An archive is removed when any member would be removed on its own (by name or by its first
bytes), and when it cannot be inspected at all: corrupt, encrypted, too many members, expanding
past the cap, a format the standard library cannot open, or a nested archive. "Cannot look
inside" must never mean "let it through".

Bounds, so that a hostile archive costs little:
- at most `MAX_MEMBERS` members are examined; more is itself a reason to refuse;
- at most `MEMBER_READ_BYTES` of each member are read, never past the size the member declares,
  so a zip bomb is never expanded;
- a compressed tar is expanded to at most `MAX_EXPANDED_BYTES` (tar headers sit between the
  members, so the stream must be expanded to walk it); beyond that it is refused.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator

from gatehouse.ingress.signatures import Finding, archive_kind, check_head, check_name

__all__ = ["MAX_EXPANDED_BYTES", "MAX_MEMBERS", "MEMBER_READ_BYTES", "inspect_archive"]

MAX_MEMBERS = 1000
MEMBER_READ_BYTES = 4096
MAX_EXPANDED_BYTES = 32 * 1024 * 1024

_CONTAINS = "archive_contains_executable"
_UNREADABLE = "unreadable_archive"

_COMPRESSED_SUFFIXES = (".tgz", ".tbz2", ".tbz", ".txz", ".gz", ".bz2", ".xz")

_COMPRESSED = frozenset({"gzip", "bz2", "xz"})


class _Refused(Exception):
    """The archive cannot be inspected; the message is the human detail."""


def inspect_archive(kind: str, name: str, data: bytes) -> Finding | None:
    """Inspect an archive of `kind` (see `signatures.archive_kind`); a Finding removes it."""
    try:
        if kind == "zip":
            return _inspect_zip(data)
        if kind == "tar":
            return _inspect_tar(data)
        if kind in _COMPRESSED:
            return _inspect_compressed(kind, name, data)
        raise _Refused("archive format cannot be opened for inspection")
    except _Refused as exc:
        return Finding(_UNREADABLE, f"`{name}`: {exc}")
    except Exception as exc:  # any parser failure on untrusted bytes fails closed
        return Finding(_UNREADABLE, f"`{name}` cannot be opened: {type(exc).__name__}")


def _inspect_zip(data: bytes) -> Finding | None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _Refused(f"more than {MAX_MEMBERS} members")
        for info in infos:
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                # Encrypted members are a classic way to smuggle malware past scanners.
                raise _Refused(f"member `{info.filename}` is encrypted")
            with zf.open(info) as member:
                head = member.read(min(MEMBER_READ_BYTES, info.file_size))
            finding = _check_member(info.filename, head)
            if finding is not None:
                return finding
    return None


def _inspect_tar(data: bytes) -> Finding | None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for count, member in enumerate(_members(tf), start=1):
            if count > MAX_MEMBERS:
                raise _Refused(f"more than {MAX_MEMBERS} members")
            if member.isdir():
                continue
            head = b""
            if member.isfile():
                extracted = tf.extractfile(member)
                if extracted is not None:
                    head = extracted.read(min(MEMBER_READ_BYTES, member.size))
            finding = _check_member(member.name, head)
            if finding is not None:
                return finding
    return None


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    # `next()` reads one header at a time; `getmembers()` would index the whole archive first.
    while (member := tf.next()) is not None:
        yield member


def _inspect_compressed(kind: str, name: str, data: bytes) -> Finding | None:
    head = _peek(kind, data)
    if head[257:262] == b"ustar":
        return _inspect_tar(_expand(kind, data))
    # A single compressed file (`app.log.gz`): judge the inner name and the first bytes.
    inner = _strip_compressed_suffix(name)
    return _check_member(inner, head)


def _check_member(member_name: str, head: bytes) -> Finding | None:
    finding = check_name(member_name) or check_head(head)
    if finding is not None:
        return Finding(_CONTAINS, f"member `{member_name}`: {finding.detail}")
    kind = archive_kind(head, member_name)
    if kind in _COMPRESSED:
        # A compressed single file inside an archive: its head can be decompressed from the
        # bytes already read; a tar or zip inside it could not be inspected within the bounds.
        inner = _peek(kind, head)
        nested = check_head(inner)
        if nested is not None:
            return Finding(_CONTAINS, f"member `{member_name}`: {nested.detail}")
        kind = archive_kind(inner)
    if kind is not None:
        raise _Refused(f"member `{member_name}` is a nested archive and cannot be inspected")
    return None


def _peek(kind: str, data: bytes) -> bytes:
    """The first `MEMBER_READ_BYTES` of a compressed stream; tolerates a truncated input."""
    if kind == "gzip":
        return zlib.decompressobj(wbits=31).decompress(data, MEMBER_READ_BYTES)
    if kind == "bz2":
        return bz2.BZ2Decompressor().decompress(data, max_length=MEMBER_READ_BYTES)
    return lzma.LZMADecompressor().decompress(data, max_length=MEMBER_READ_BYTES)


def _expand(kind: str, data: bytes) -> bytes:
    """The whole decompressed stream, refused if it grows past `MAX_EXPANDED_BYTES`."""
    raw, limit = io.BytesIO(data), MAX_EXPANDED_BYTES + 1
    if kind == "gzip":
        with gzip.GzipFile(fileobj=raw) as gz:
            out = gz.read(limit)
    elif kind == "bz2":
        with bz2.BZ2File(raw) as bz:
            out = bz.read(limit)
    else:
        with lzma.LZMAFile(raw) as xz:
            out = xz.read(limit)
    if len(out) > MAX_EXPANDED_BYTES:
        raise _Refused(f"expands to more than {MAX_EXPANDED_BYTES} bytes")
    return out


def _strip_compressed_suffix(name: str) -> str:
    lowered = name.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        if lowered.endswith(suffix):
            inner = name[: -len(suffix)]
            return inner + ".tar" if suffix.startswith(".t") else inner
    return name
