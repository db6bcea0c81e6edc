"""The control layer: the only one that imports the store, the bus and the kernel together.

`plane.ControlPlane` assembles it from one `deps.Deps` value (drivers picked by URL in
`drivers`). Every gate judges through the one decision pipeline (`decide`: containment, the
caller's scope, the kernel): `submit` (submit, simulate, explain, cancel, remediate), `dispatch`
(the dispatch gate) and `leases` (lease, heartbeat, finish, expiry). Beside them: `approvals`,
`outputs` (the output gate and quarantine review), `incidents`, `identities`, `installer` (policy
bundles), `auth` (API key -> principal, for every edge) and `builtin` (the demo workers). The
services take domain values (`gatehouse.domain.requests.JobRequest`), never HTTP models.
"""

from __future__ import annotations

# Nothing re-exported: the offline CLI tools import one module of this package (the policy
# file reader) and must not load the whole plane, its drivers and the remote kernel with it.
__all__: list[str] = []
