"""Which upstream tools a client may see: pinned definitions, unflagged descriptions, no
collisions (rug-pull and tool-poisoning protection).

On first sight a tool's definition is pinned by its digest (`ToolPinStore`). A definition whose
digest differs from its pin (`tool_definition_changed`), whose text the ingress classifier flags
(`tool_description_flagged`: instructions to the model, hidden characters), or whose name the
upstream lists twice (`tool_name_collision`) is withheld: audited and counted once per
definition, and listed again only after an admin pins what the upstream offers now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from gatehouse.audit.events import SYSTEM, AuditEvent
from gatehouse.domain.ids import now
from gatehouse.domain.tools import FIRST_SIGHT, ToolPin, definition_of, tool_digest
from gatehouse.errors import NotFound
from gatehouse.ingress.classify import Classifier
from gatehouse.metrics import Metrics
from gatehouse.store import Store

__all__ = ["CHANGED", "COLLISION", "FLAGGED", "ToolVetting", "Vetted"]

CHANGED = "tool_definition_changed"
FLAGGED = "tool_description_flagged"
COLLISION = "tool_name_collision"


@dataclass(frozen=True, slots=True)
class Vetted:
    listed: dict[str, dict[str, Any]]  # tool name -> wire definition
    withheld: dict[str, str]  # tool name -> reason code


def _texts(value: Any) -> Iterator[str]:
    """Every string a model reads in a definition: descriptions and titles, at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and k in ("description", "title"):
                yield v
            else:
                yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


class ToolVetting:
    def __init__(self, *, store: Store, metrics: Metrics, classifier: Callable[[], Classifier]) -> None:
        self.store = store
        self.classifier = classifier
        self.withheld_total = Counter(
            "gatehouse_mcp_tools_withheld_total",
            "MCP tool definitions withheld from clients, by adapter and reason",
            ["adapter", "reason"],
            registry=metrics.registry,
        )
        self._reported: set[tuple[str, str, str]] = set()

    def flags(self, tool: dict[str, Any]) -> tuple[str, ...]:
        text = "\n".join(_texts({"description": tool.get("description"), "s": tool.get("inputSchema")}))
        return self.classifier().classify(text).risk_tags if text else ()

    async def vet(self, adapter: str, tools: list[dict[str, Any]]) -> Vetted:
        pins = await self.store.tool_pins(adapter)
        names = [t.get("name") for t in tools]
        listed: dict[str, dict[str, Any]] = {}
        withheld: dict[str, str] = {}
        for tool in tools:
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                continue
            digest = tool_digest(tool)
            pin = pins.get(name)
            reason: str | None = None
            if names.count(name) > 1:
                reason = COLLISION
            elif pin is not None:
                # A pinned definition stands even when it would be flagged: an admin reviewed it.
                reason = None if pin.digest == digest else CHANGED
            elif self.flags(tool):
                reason = FLAGGED
            else:
                pin = await self.store.pin_tool(self._pin(adapter, tool, FIRST_SIGHT), replace=False)
                reason = None if pin.digest == digest else CHANGED
            if reason is None:
                listed[name] = tool
            else:
                withheld[name] = reason
                await self._report(adapter, name, digest, reason, pin)
        return Vetted(listed=listed, withheld=withheld)

    async def _report(self, adapter: str, tool: str, digest: str, reason: str, pin: ToolPin | None) -> None:
        # Once per definition and process: a client listing every second must not flood the log.
        if (adapter, tool, digest) in self._reported:
            return
        self._reported.add((adapter, tool, digest))
        self.withheld_total.labels(adapter, reason).inc()
        data = {"adapter": adapter, "tool": tool, "reason": reason, "digest": digest,
                "pinned_digest": pin.digest if pin is not None else None}  # fmt: skip
        await self.store.append_audit([AuditEvent(SYSTEM, "mcp.tool_withheld", data)])

    @staticmethod
    def _pin(adapter: str, tool: dict[str, Any], by: str) -> ToolPin:
        return ToolPin(adapter=adapter, tool=tool["name"], digest=tool_digest(tool),
                       definition=definition_of(tool), pinned_at=now(), pinned_by=by)  # fmt: skip

    async def pin(self, adapter: str, name: str, tools: list[dict[str, Any]], by: str) -> ToolPin:
        """Pin what the upstream offers now for `name` (an admin's review)."""
        offered = [t for t in tools if t.get("name") == name]
        if not offered:
            raise NotFound(f"adapter `{adapter}` offers no tool `{name}`", code="tool_not_found")
        if len(offered) > 1:
            raise NotFound(
                f"adapter `{adapter}` offers `{name}` more than once: a collision cannot be pinned",
                code="tool_name_collision",
            )
        pin = await self.store.pin_tool(self._pin(adapter, offered[0], by), replace=True)
        self._reported = {r for r in self._reported if r[:2] != (adapter, name)}
        data = {"adapter": adapter, "tool": name, "digest": pin.digest, "pinned_by": by}
        await self.store.append_audit([AuditEvent(SYSTEM, "mcp.tool_pinned", data)])
        return pin
