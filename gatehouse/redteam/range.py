"""The range: what one red-team run sets up in the deployment, and takes down again.

A throw-away tenant (`rt-<random>`) with the identities the scenarios play (an agent, a narrowly
scoped agent, an approver, an agent that is also an approver, a worker), a second throw-away
tenant with its victim agent, the secret the `rt_web` adapter injects, and the loopback target
and attacker sink. Everything goes through the deployment's public routes with the admin key;
every identity it made is revoked at the end, jobs still waiting are cancelled, containments it
made are lifted and its secret deleted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from gatehouse.redteam.target import Sink, Target

__all__ = ["ADAPTERS", "Actor", "Range", "RangeError"]

# The adapters (and actions) the hardened bundle declares for the red team; a deployment under
# test must carry them in its catalog (docs/redteam.md).
ADAPTERS: dict[str, tuple[str, ...]] = {
    "rt_web": ("page", "item", "echo", "fail", "redirect"),
    "rt_rebind": ("page",),
    "rt_agent": ("fetch_url", "send_money", "send_email", "run_shell", "drop_table", "read_file"),
    "rt_admin": ("delete_tenant",),
}
SECRET_NAME = "rt_web_token"


class RangeError(Exception):
    """The range cannot be set up (a wrong key, a bundle without the red team's adapters, ...)."""


@dataclass
class Actor:
    """One identity of the range: its id, tenant and a client that speaks with its key."""

    name: str
    id: str
    tenant: str
    key: str
    http: httpx.Client


@dataclass
class Range:
    url: str
    admin_key: str
    target_port: int
    timeout: float = 10.0
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    actors: dict[str, Actor] = field(default_factory=dict)
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (actor name, job id)
    containments: list[str] = field(default_factory=list)
    secret_value: str = field(default_factory=lambda: "rtsv_" + secrets.token_hex(16))
    target: Target | None = None
    sink: Sink | None = None
    admin: httpx.Client = field(init=False)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.admin = httpx.Client(
            base_url=self.url, headers={"X-API-Key": self.admin_key}, timeout=self.timeout
        )

    @property
    def tenant(self) -> str:
        return f"rt-{self.run_id}"

    @property
    def victim_tenant(self) -> str:
        return f"rt-{self.run_id}-v"

    def uid(self, prefix: str) -> str:
        """A fresh id for a step, session or idempotency key of this run."""
        self._seq += 1
        return f"{prefix}-{self.run_id}-{self._seq}"

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]

    # setting up ------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Check the key and the catalog before touching anything (RangeError with one line)."""
        r = self.admin.get("/api/v1/identities")
        if r.status_code == 401:
            raise RangeError("the admin key was refused (401): set $GATEHOUSE_API_KEY to an admin key")
        if r.status_code == 403:
            raise RangeError("the key is not an admin key (403): the red team creates identities")
        if r.status_code != 200:
            raise RangeError(f"GET /api/v1/identities answered {r.status_code}")
        catalog = self.admin.get("/api/v1/adapters").json().get("adapters", [])
        have = {a["name"]: set(a.get("actions", {})) for a in catalog}
        missing = [
            f"{a}:{act}" for a, acts in ADAPTERS.items() for act in acts if act not in have.get(a, set())
        ]
        if missing:
            raise RangeError(
                f"the deployment's bundle lacks the red team's adapters ({', '.join(missing[:4])}"
                f"{', ...' if len(missing) > 4 else ''}): install examples/policies/hardened.yaml "
                "or add its `rt_*` adapters (docs/redteam.md)"
            )

    def setup(self) -> None:
        self.sink = Sink().start()
        self.target = Target(self.target_port).start()
        t, v = self.tenant, self.victim_tenant
        everything = ["rt_web:*", "rt_rebind:*", "rt_agent:*", "rt_mcp:*"]
        self.identity("agent", t, roles=["agent"], topics=["job.**"], capabilities=["*"], adapters=everything)
        self.identity("scoped", t, roles=["agent"], topics=["job.redteam.read"], capabilities=["rt.read"],
                      adapters=["rt_agent:fetch_url", "rt_web:page"])  # fmt: skip
        self.identity("approver", t, roles=["approver"])
        self.identity("agent_approver", t, roles=["agent", "approver"], topics=["job.**"], capabilities=["*"],
                      adapters=everything)  # fmt: skip
        self.identity("worker", t, roles=["worker"], topics=["job.redteam.**"])
        self.identity(
            "victim", v, roles=["agent"], topics=["job.**"], capabilities=["*"], adapters=everything
        )
        self.identity("victim_approver", v, roles=["approver"])
        r = self.admin.put(f"/api/v1/secrets/{SECRET_NAME}", json={"value": self.secret_value},
                           headers={"X-Tenant-ID": t})  # fmt: skip
        if r.status_code not in (200, 201):
            raise RangeError(f"storing the range's secret answered {r.status_code}: {r.text[:200]}")

    def identity(self, name: str, tenant: str, **body: Any) -> Actor:
        r = self.admin.post(
            "/api/v1/identities", json={"name": f"rt-{self.run_id}-{name}", "tenant": tenant, **body}
        )
        if r.status_code != 201:
            raise RangeError(f"creating identity `{name}` answered {r.status_code}: {r.text[:200]}")
        data = r.json()
        http = httpx.Client(base_url=self.url, headers={"X-API-Key": data["api_key"]}, timeout=self.timeout)
        actor = Actor(name=name, id=data["id"], tenant=tenant, key=data["api_key"], http=http)
        self.actors[name] = actor
        return actor

    # taking down ------------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Undo what the run made; the problems met (never raised: cleanup does all it can)."""
        problems: list[str] = []

        def attempt(what: str, method: str, path: str, tenant: str | None = None) -> None:
            headers = {"X-Tenant-ID": tenant} if tenant else {}
            try:
                r = self.admin.request(method, path, headers=headers)
                if r.status_code >= 400 and r.status_code not in (404, 409):
                    problems.append(f"{what}: {r.status_code}")
            except httpx.HTTPError as exc:
                problems.append(f"{what}: {exc}")

        for actor_name, job_id in self.jobs:
            attempt(f"cancel {job_id}", "POST", f"/api/v1/jobs/{job_id}/cancel", self[actor_name].tenant)
        for inc in self.containments:
            attempt(f"lift {inc}", "POST", f"/api/v1/incidents/{inc}/lift")
        attempt("delete secret", "DELETE", f"/api/v1/secrets/{SECRET_NAME}", self.tenant)
        for actor in self.actors.values():
            attempt(f"revoke {actor.id}", "DELETE", f"/api/v1/identities/{actor.id}")
            actor.http.close()
        self.admin.close()
        for service in (self.target, self.sink):
            if service is not None:
                service.stop()
        return problems
