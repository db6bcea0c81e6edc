"""`screen_attachments`: executables, scripts and archives that carry them are removed.

All test files are built here, byte by byte or with `zipfile` / `tarfile`, so the tests show
exactly what is being recognised.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.ingress import AttachmentScreen, RemovedAttachment, archives, screen_attachments

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHI", 2, 0x3E, 1) + b"\x00" * 40
PE = b"MZ\x90\x00" + b"\x00" * 56 + struct.pack("<I", 64) + b"PE\x00\x00" + b"\x00" * 20
MACHO = {
    "feedface": b"\xfe\xed\xfa\xce",
    "feedfacf": b"\xfe\xed\xfa\xcf",
    "cefaedfe": b"\xce\xfa\xed\xfe",
    "cffaedfe": b"\xcf\xfa\xed\xfe",
    "cafebabe": b"\xca\xfe\xba\xbe",
}
WASM = b"\x00asm\x01\x00\x00\x00"
TEXT = b"quarterly numbers\nall fine\n"


def att(name: str, data: bytes, content_type: str = "application/octet-stream") -> dict[str, Any]:
    return {
        "name": name,
        "content_type": content_type,
        "content_base64": base64.b64encode(data).decode("ascii"),
    }


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def one(attachment: dict[str, Any]) -> RemovedAttachment | None:
    screen = screen_attachments([attachment])
    assert len(screen.kept) + len(screen.removed) == 1
    return screen.removed[0] if screen.removed else None


def reason(attachment: dict[str, Any]) -> str | None:
    removed = one(attachment)
    return None if removed is None else removed.reason


# -- plain files ----------------------------------------------------------------------------------


def test_a_text_file_is_kept_unchanged() -> None:
    a = att("notes.txt", TEXT, "text/plain")
    screen = screen_attachments([a])
    assert screen == AttachmentScreen(kept=(a,), removed=())
    assert screen.kept[0] is a


def test_order_is_preserved_and_nothing_is_lost() -> None:
    items = [att("a.txt", TEXT), att("b.exe", TEXT), att("c.csv", b"x,y\n"), att("d.bin", ELF)]
    screen = screen_attachments(items)
    assert [k["name"] for k in screen.kept] == ["a.txt", "c.csv"]
    assert [r.name for r in screen.removed] == ["b.exe", "d.bin"]


def test_an_empty_list() -> None:
    assert screen_attachments([]) == AttachmentScreen(kept=(), removed=())


# -- magic bytes ----------------------------------------------------------------------------------


def test_elf_is_removed_whatever_its_name() -> None:
    removed = one(att("report.pdf", ELF, "application/pdf"))
    assert removed is not None
    assert (removed.name, removed.reason) == ("report.pdf", "executable_magic")
    assert "ELF" in removed.detail


def test_pe_is_removed() -> None:
    assert reason(att("invoice.txt", PE, "text/plain")) == "executable_magic"


@pytest.mark.parametrize("magic", sorted(MACHO), ids=str)
def test_every_mach_o_variant_is_removed(magic: str) -> None:
    assert reason(att("tool", MACHO[magic] + b"\x00" * 28)) == "executable_magic"


def test_webassembly_is_removed() -> None:
    assert reason(att("module.dat", WASM)) == "executable_magic"


@pytest.mark.parametrize("head", [b"#!/bin/sh\nrm -rf /\n", b"\xef\xbb\xbf#!/usr/bin/env python\n"])
def test_a_shebang_script_is_removed(head: bytes) -> None:
    removed = one(att("notes.txt", head, "text/plain"))
    assert removed is not None
    assert removed.reason == "script_shebang"
    assert "#!" in removed.detail


def test_a_hash_that_is_not_a_shebang_is_fine() -> None:
    assert reason(att("readme.md", b"# Title\n#hashtag\n")) is None


# -- names and content types ----------------------------------------------------------------------

SPEC_EXTENSIONS = [
    *(".exe", ".dll", ".so", ".dylib", ".sh", ".bash", ".zsh", ".bat", ".cmd", ".ps1", ".psm1"),
    *(".vbs", ".js", ".jar", ".msi", ".com", ".scr", ".py", ".pl", ".rb", ".php", ".elf", ".bin"),
    *(".apk", ".app", ".deb", ".rpm"),
]


@pytest.mark.parametrize("ext", SPEC_EXTENSIONS)
def test_each_executable_extension_is_removed(ext: str) -> None:
    removed = one(att(f"file{ext}", TEXT, "text/plain"))
    assert removed is not None
    assert removed.reason == "executable_extension"
    assert ext in removed.detail


@pytest.mark.parametrize(
    "name",
    [
        "SETUP.EXE",
        "report.pdf.exe",
        "evil.exe.",
        "evil.exe  ",
        "dir/sub/run.sh",
        "C:\\Users\\me\\run.BAT",
        "inv\u200boice.e\u200bxe",
        "evil\uff0eexe",  # fullwidth full stop
        "libfoo.so.1.2",
    ],
)
def test_extensions_are_found_through_disguises(name: str) -> None:
    assert reason(att(name, TEXT)) == "executable_extension"


@pytest.mark.parametrize("name", ["report.exe.pdf", "exe", "notes.txt", "archive.tar.gz.txt"])
def test_names_that_only_mention_an_executable_are_kept(name: str) -> None:
    assert reason(att(name, TEXT)) is None


SPEC_CONTENT_TYPES = [
    "application/x-executable",
    "application/x-msdownload",
    "application/x-sh",
    "text/x-shellscript",
    "application/x-msdos-program",
    "application/java-archive",
]


@pytest.mark.parametrize("content_type", SPEC_CONTENT_TYPES)
def test_each_executable_content_type_is_removed(content_type: str) -> None:
    assert reason(att("data", TEXT, content_type)) == "executable_content_type"


def test_content_type_parameters_and_case_are_ignored() -> None:
    assert reason(att("x", TEXT, "Text/X-ShellScript; charset=utf-8")) == "executable_content_type"


# -- base64 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload", ["not base64!!", "abc", "YWJj=ZA==", "\u00e9\u00e9\u00e9\u00e9", None, 42]
)
def test_invalid_base64_is_removed(payload: object) -> None:
    removed = one({"name": "x.txt", "content_type": "text/plain", "content_base64": payload})
    assert removed is not None
    assert removed.reason == "invalid_base64"


def test_a_missing_content_field_is_invalid_base64() -> None:
    assert reason({"name": "x.txt", "content_type": "text/plain"}) == "invalid_base64"


def test_wrapped_base64_is_valid() -> None:
    encoded = base64.encodebytes(TEXT * 20).decode("ascii")  # MIME style, with newlines
    assert "\n" in encoded
    assert reason({"name": "x.txt", "content_type": "text/plain", "content_base64": encoded}) is None


def test_empty_content_is_kept() -> None:
    assert reason(att("empty.txt", b"")) is None


# -- archives -------------------------------------------------------------------------------------


def test_a_zip_of_documents_is_kept() -> None:
    data = zip_bytes({"a.txt": TEXT, "dir/b.csv": b"x,y\n1,2\n", "dir/": b""})
    assert reason(att("docs.zip", data, "application/zip")) is None


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        ({"a.txt": TEXT, "bin/tool": ELF}, "bin/tool"),
        ({"setup.exe": TEXT}, "setup.exe"),
        ({"scripts/run.txt": b"#!/bin/bash\necho hi\n"}, "scripts/run.txt"),
        ({"word/document.xml": b"<w/>", "word/vbaProject.bin": b"\xd0\xcf\x11\xe0"}, "vbaProject"),
        ({"Main.class": b"\xca\xfe\xba\xbe\x00\x00\x00\x34"}, "Main.class"),
    ],
)
def test_a_zip_carrying_an_executable_is_removed(members: dict[str, bytes], needle: str) -> None:
    removed = one(att("bundle.zip", zip_bytes(members), "application/zip"))
    assert removed is not None
    assert removed.reason == "archive_contains_executable"
    assert needle in removed.detail


def test_a_zip_disguised_as_text_is_still_opened() -> None:
    data = zip_bytes({"payload": PE})
    assert reason(att("notes.txt", data, "text/plain")) == "archive_contains_executable"


def test_a_zip_appended_to_another_file_is_opened() -> None:
    polyglot = b"GIF89a" + b"\x00" * 64 + zip_bytes({"x": ELF})
    assert reason(att("cat.gif", polyglot, "image/gif")) == "archive_contains_executable"


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_tar_carrying_an_executable_is_removed(mode: str) -> None:
    data = tar_bytes({"docs/readme.txt": TEXT, "docs/helper": ELF}, mode)
    removed = one(att("bundle.tar", data, "application/x-tar"))
    assert removed is not None
    assert removed.reason == "archive_contains_executable"
    assert "docs/helper" in removed.detail


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_tar_of_documents_is_kept(mode: str) -> None:
    data = tar_bytes({"docs/readme.txt": TEXT, "docs/data.csv": b"a,b\n"}, mode)
    assert reason(att("bundle.tgz", data)) is None


def test_a_tar_member_named_like_a_script_is_removed() -> None:
    data = tar_bytes({"install.sh": b"echo hi\n"}, "w:gz")
    assert reason(att("x.tar.gz", data)) == "archive_contains_executable"


@pytest.mark.parametrize(
    ("compress", "name"),
    [(gzip.compress, "x.gz"), (bz2.compress, "x.bz2"), (lzma.compress, "x.xz")],
)
def test_a_single_compressed_file_is_judged_by_its_content(compress: Any, name: str) -> None:
    assert reason(att(name, compress(ELF + b"\x00" * 10_000))) == "archive_contains_executable"
    assert reason(att(name, compress(TEXT * 100))) is None


def test_a_single_compressed_file_is_judged_by_its_inner_name() -> None:
    removed = one(att("evil.sh.gz", gzip.compress(b"echo hi\n")))
    assert removed is not None
    assert removed.reason == "archive_contains_executable"
    assert "evil.sh" in removed.detail


def test_a_compressed_log_inside_a_tar_is_kept_and_a_compressed_binary_is_not() -> None:
    logs = tar_bytes({"logs/app.log.1.gz": gzip.compress(TEXT * 50)})
    assert reason(att("logs.tar", logs)) is None
    binary = tar_bytes({"logs/app.log.1.gz": gzip.compress(ELF)})
    assert reason(att("logs.tar", binary)) == "archive_contains_executable"


@pytest.mark.parametrize(
    "inner",
    [zip_bytes({"a.txt": TEXT}), tar_bytes({"a.txt": TEXT}), tar_bytes({"a.txt": TEXT}, "w:gz")],
    ids=["zip", "tar", "tar.gz"],
)
def test_a_nested_archive_cannot_be_inspected_and_is_removed(inner: bytes) -> None:
    removed = one(att("outer.zip", zip_bytes({"inner.dat": inner})))
    assert removed is not None
    assert removed.reason == "unreadable_archive"
    assert "nested" in removed.detail


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("broken.zip", b"PK\x03\x04 this is not really a zip"),
        ("broken.zip", b"just text"),
        ("broken.tar", b"just text"),
        ("broken.tgz", b"\x1f\x8b not gzip"),
        ("truncated.zip", zip_bytes({"a.txt": TEXT * 100})[:-30]),
        ("packed.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 32),
        ("packed.bin.txt", b"Rar!\x1a\x07\x01\x00" + b"\x00" * 32),
    ],
)
def test_an_archive_that_cannot_be_opened_is_removed(name: str, data: bytes) -> None:
    assert reason(att(name, data)) == "unreadable_archive"


def test_an_encrypted_zip_member_is_refused() -> None:
    data = bytearray(zip_bytes({"a.txt": TEXT}))
    # Set the "encrypted" bit in the central directory entry; that is what readers trust.
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x01
    removed = one(att("secret.zip", bytes(data)))
    assert removed is not None
    assert removed.reason == "unreadable_archive"
    assert "encrypted" in removed.detail


def test_member_count_is_capped() -> None:
    at_cap = zip_bytes({f"f{i}.txt": b"x" for i in range(archives.MAX_MEMBERS)})
    assert reason(att("many.zip", at_cap)) is None
    over = zip_bytes({f"f{i}.txt": b"x" for i in range(archives.MAX_MEMBERS + 1)})
    removed = one(att("many.zip", over))
    assert removed is not None
    assert removed.reason == "unreadable_archive"
    assert str(archives.MAX_MEMBERS) in removed.detail


def test_tar_member_count_is_capped() -> None:
    over = tar_bytes({f"f{i}.txt": b"x" for i in range(archives.MAX_MEMBERS + 1)})
    assert reason(att("many.tar", over)) == "unreadable_archive"


def test_zip_members_are_read_only_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    requested: list[int] = []
    original = zipfile.ZipExtFile.read

    def spy(self: zipfile.ZipExtFile, n: int | None = -1) -> bytes:
        requested.append(-1 if n is None else n)
        return original(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", spy)
    bomb = zip_bytes({"zeros.txt": b"\x00" * (20 * 1024 * 1024), "small.txt": b"hi"})
    assert len(bomb) < 100_000  # 20 MiB of zeros compresses to almost nothing
    assert reason(att("bomb.zip", bomb)) is None
    assert requested
    assert all(0 <= n <= archives.MEMBER_READ_BYTES for n in requested)


def test_a_compressed_tar_that_expands_past_the_cap_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(archives, "MAX_EXPANDED_BYTES", 256 * 1024)
    data = tar_bytes({"zeros.txt": b"\x00" * (1024 * 1024)}, "w:gz")
    removed = one(att("bomb.tar.gz", data))
    assert removed is not None
    assert removed.reason == "unreadable_archive"
    assert "expands" in removed.detail
    small = tar_bytes({"a.txt": TEXT}, "w:gz")
    assert reason(att("ok.tar.gz", small)) is None


def test_a_member_bigger_than_the_read_cap_is_judged_by_its_head() -> None:
    data = tar_bytes({"big.dat": ELF + b"\x00" * (archives.MEMBER_READ_BYTES * 4)})
    assert reason(att("big.tar", data)) == "archive_contains_executable"


# -- robustness -----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.text(max_size=20) | st.sampled_from(["a.zip", "b.tgz", "c.gz", "d.tar"]),
                "content_type": st.text(max_size=20),
                "content_base64": st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode("ascii"))
                | st.sampled_from(
                    [
                        base64.b64encode(zip_bytes({"a": b"b"})[:-5]).decode(),
                        base64.b64encode(gzip.compress(b"x" * 300)[:20]).decode(),
                        base64.b64encode(b"\x1f\x8b\x08" + b"\x00" * 300).decode(),
                    ]
                ),
            }
        ),
        max_size=4,
    )
)
def test_any_input_is_either_kept_or_removed_with_a_known_reason(
    items: list[dict[str, Any]],
) -> None:
    screen = screen_attachments(items)
    assert len(screen.kept) + len(screen.removed) == len(items)
    assert {r.reason for r in screen.removed} <= {
        "executable_magic",
        "script_shebang",
        "executable_extension",
        "executable_content_type",
        "archive_contains_executable",
        "invalid_base64",
        "unreadable_archive",
    }
