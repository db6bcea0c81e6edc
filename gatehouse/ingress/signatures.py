"""What makes a file executable: magic bytes, file extensions, content types, archive formats.

Checks here look at a name, a declared content type, or the first bytes of a file (the *head*),
and return a `Finding` or None. They are shared by the top-level attachment screen and by the
archive inspector, which runs the same checks on every member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gatehouse.ingress.text import clean_text

__all__ = [
    "ARCHIVE_EXTENSIONS",
    "EXECUTABLE_CONTENT_TYPES",
    "EXECUTABLE_EXTENSIONS",
    "Finding",
    "archive_kind",
    "base_name",
    "check_content_type",
    "check_head",
    "check_name",
]


@dataclass(frozen=True)
class Finding:
    """Why a file (or an archive member) is removed: a snake_case code and a human message."""

    reason: str
    detail: str


EXECUTABLE_EXTENSIONS: frozenset[str] = frozenset(
    {
        # Native binaries, installers and packages.
        *(".exe", ".dll", ".so", ".dylib", ".elf", ".bin", ".com", ".scr", ".msi", ".msp"),
        *(".cpl", ".apk", ".app", ".deb", ".rpm", ".jar", ".class", ".dex", ".wasm", ".lnk"),
        # Scripts that an interpreter or the OS will run.
        *(".sh", ".bash", ".zsh", ".ksh", ".csh", ".fish", ".bat", ".cmd", ".ps1", ".psm1"),
        *(".vbs", ".vbe", ".js", ".jse", ".mjs", ".cjs", ".wsf", ".hta"),
        *(".py", ".pyw", ".pyc", ".pl", ".rb", ".php"),
    }
)

# A versioned shared library (`libfoo.so.1.2`) is a `.so` whatever its last suffix says.
_VERSIONED_SO = re.compile(r"\.so(?:\.\d+)+$")

EXECUTABLE_CONTENT_TYPES: frozenset[str] = frozenset(
    {
        "application/x-executable",
        "application/x-msdownload",
        "application/x-sh",
        "text/x-shellscript",
        "application/x-msdos-program",
        "application/java-archive",
        "application/x-sharedlib",
        "application/x-mach-binary",
        "application/x-elf",
        "application/x-dosexec",
        "application/vnd.microsoft.portable-executable",
        "application/x-msi",
        "application/x-ms-installer",
        "application/vnd.android.package-archive",
        "application/x-debian-package",
        "application/x-rpm",
        "application/wasm",
        "application/x-csh",
        "application/x-bat",
        "application/x-powershell",
        "application/x-python-code",
        "text/x-python",
        "text/x-script.python",
        "application/x-perl",
        "text/x-perl",
        "application/x-ruby",
        "text/x-ruby",
        "application/x-php",
        "text/x-php",
        "application/javascript",
        "text/javascript",
        "application/x-javascript",
        "application/hta",
        "application/x-ms-shortcut",
    }
)

# First bytes of native executables. Mach-O has four byte orders/widths plus the "fat" (universal)
# header, which is also the Java class-file magic: both are executable code.
_EXEC_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "PE/DOS executable (MZ header)"),
    (b"\xfe\xed\xfa\xce", "Mach-O executable (32-bit)"),
    (b"\xfe\xed\xfa\xcf", "Mach-O executable (64-bit)"),
    (b"\xce\xfa\xed\xfe", "Mach-O executable (32-bit, little-endian)"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable (64-bit, little-endian)"),
    (b"\xca\xfe\xba\xbe", "Mach-O universal binary or Java class file"),
    (b"\x00asm", "WebAssembly module"),
    (b"dex\n", "Android DEX bytecode"),
)

_BOM = b"\xef\xbb\xbf"

# Archive formats by first bytes. `zip`, `tar`, `gzip`, `bz2` and `xz` can be opened with the
# standard library; the `unsupported` ones cannot, so they are removed rather than trusted.
_ARCHIVE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "unsupported"),
    (b"Rar!\x1a\x07", "unsupported"),
    (b"MSCF", "unsupported"),
    (b"\x28\xb5\x2f\xfd", "unsupported"),
    (b"xar!", "unsupported"),
)

ARCHIVE_EXTENSIONS: dict[str, str] = {
    ".zip": "zip",
    ".tar": "tar",
    ".tgz": "gzip",
    ".gz": "gzip",
    ".tbz": "bz2",
    ".tbz2": "bz2",
    ".bz2": "bz2",
    ".txz": "xz",
    ".xz": "xz",
    ".7z": "unsupported",
    ".rar": "unsupported",
    ".cab": "unsupported",
    ".zst": "unsupported",
    ".iso": "unsupported",
    ".dmg": "unsupported",
    ".pkg": "unsupported",
}

_ARCHIVE_CONTENT_TYPES: dict[str, str] = {
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/x-tar": "tar",
    "application/gzip": "gzip",
    "application/x-gzip": "gzip",
    "application/x-bzip2": "bz2",
    "application/x-xz": "xz",
    "application/x-7z-compressed": "unsupported",
    "application/vnd.rar": "unsupported",
    "application/x-rar-compressed": "unsupported",
    "application/vnd.ms-cab-compressed": "unsupported",
    "application/zstd": "unsupported",
    "application/x-iso9660-image": "unsupported",
    "application/x-apple-diskimage": "unsupported",
}


def base_name(name: str) -> str:
    """The last path component, cleaned and case-folded, without trailing dots and spaces.

    Windows ignores trailing dots and spaces (`evil.exe.` runs as `evil.exe`), and invisible or
    fullwidth characters must not hide an extension.
    """
    cleaned = clean_text(name)
    last = re.split(r"[/\\]", cleaned)[-1]
    return last.rstrip(". \t\n").casefold()


def _extension(base: str) -> str:
    dot = base.rfind(".")
    return base[dot:] if dot > 0 else ""


def check_name(name: str) -> Finding | None:
    """An executable or script extension on the last suffix (`report.pdf.exe` is an `.exe`)."""
    base = base_name(name)
    ext = _extension(base)
    if ext in EXECUTABLE_EXTENSIONS:
        return Finding("executable_extension", f"`{name}` has executable extension `{ext}`")
    if _VERSIONED_SO.search(base):
        return Finding("executable_extension", f"`{name}` is a shared library")
    return None


def _media_type(content_type: object) -> str:
    if not isinstance(content_type, str):
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def check_content_type(content_type: object) -> Finding | None:
    media = _media_type(content_type)
    if media in EXECUTABLE_CONTENT_TYPES:
        return Finding("executable_content_type", f"content type `{media}` is executable")
    return None


def check_head(head: bytes) -> Finding | None:
    """Executable magic bytes, or a `#!` interpreter line, at the start of `head`."""
    for magic, what in _EXEC_MAGIC:
        if head.startswith(magic):
            return Finding("executable_magic", f"content starts with the {what} header")
    # A UTF-8 BOM before `#!` stops the kernel from honouring it, but not `sh file`.
    if head.removeprefix(_BOM).startswith(b"#!"):
        line = head.removeprefix(_BOM)[:80].split(b"\n", 1)[0].decode("utf-8", "replace")
        return Finding("script_shebang", f"content starts with the interpreter line `{line}`")
    return None


def archive_kind(head: bytes, name: str = "", content_type: object = None) -> str | None:
    """`zip`, `tar`, `gzip`, `bz2`, `xz`, `unsupported`, or None for a non-archive.

    The content decides first (a zip named `notes.txt` is still a zip); a name or content type
    that claims an archive the content does not look like is returned too, so that it is opened,
    fails, and is removed as unreadable rather than waved through.
    """
    for magic, kind in _ARCHIVE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    base = base_name(name)
    for suffix, kind in ARCHIVE_EXTENSIONS.items():
        if base.endswith(suffix) and len(base) > len(suffix):
            return kind
    return _ARCHIVE_CONTENT_TYPES.get(_media_type(content_type))
