"""Ingress: what happens to a job's untrusted input before the submit gate sees it.

- `sanitise` drops labels and meta keys that only the server may set (`command_class`,
  `approved`, `gatehouse.*`, ...) and meta keys outside the allow-list;
- `screen_attachments` removes executables, scripts and archives that contain (or may hide) them;
- `classify` derives `command_class` and risk tags from the prompt and attachment text with a
  table of named patterns, and reports which patterns matched;
- `intake` runs the three on one job body: the one function both the server and the offline
  policy tools call, so that they judge the same job.

`secrets` holds the one table of secret shapes that the classifier's `secrets_in_input`
patterns, the output gate's detectors and the audit preview all build on.

Pure: the standard library and `gatehouse.errors` only; no clock, no I/O, no asyncio. A test
walks the imports to keep it that way.
"""

from __future__ import annotations

from gatehouse.ingress.attachments import AttachmentScreen, RemovedAttachment, screen_attachments
from gatehouse.ingress.classify import (
    DEFAULT_CLASSIFIER,
    Classification,
    Classifier,
    Hit,
    classify,
)
from gatehouse.ingress.intake import Intake, intake
from gatehouse.ingress.patterns import COMMAND_CLASSES, Pattern
from gatehouse.ingress.sanitise import (
    META_KEYS,
    RESERVED_KEYS,
    RESERVED_PREFIXES,
    Dropped,
    Sanitised,
    sanitise,
)
from gatehouse.ingress.text import clean_text

__all__ = [
    "COMMAND_CLASSES",
    "DEFAULT_CLASSIFIER",
    "META_KEYS",
    "RESERVED_KEYS",
    "RESERVED_PREFIXES",
    "AttachmentScreen",
    "Classification",
    "Classifier",
    "Dropped",
    "Hit",
    "Intake",
    "Pattern",
    "RemovedAttachment",
    "Sanitised",
    "classify",
    "clean_text",
    "intake",
    "sanitise",
    "screen_attachments",
]
