"""The OpenAPI document: what FastAPI generates, completed with what it cannot see.

The routes answer with plain `Response`s (`api.errors.json_response`, no per-request model
validation on the hot path) and raise errors that `api/errors.py` maps to statuses, so FastAPI's
own document has empty success schemas and its generic `{"detail": [...]}` 422. This module adds,
once at the first request for the document:

- the success schema of every operation (`RESPONSES`, models in `api/responses.py`);
- the real error shape `ErrorBody`, per operation, with the codes each status can carry
  (`ERRORS` for the route's own codes, plus those of authentication, rate limits and bodies);
- the API-key security scheme (`X-API-Key` header, or `Authorization: Bearer`), optional
  `X-Tenant-ID`, and which operations are public;
- examples of the common answers.

`tests/api/test_api_openapi.py` validates the document and checks real answers against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from gatehouse.api import responses as r
from gatehouse.api.auth import authenticate, rate_limited

__all__ = ["ERRORS", "NOT_PER_ROUTE", "RESPONSES", "install_openapi"]

# Operation -> (success status, schema). Keys are "METHOD /path" as in the document.
RESPONSES: dict[str, tuple[int, type[BaseModel]]] = {
    "POST /api/v1/jobs": (201, r.Submitted),
    "GET /api/v1/jobs": (200, r.JobPage),
    "GET /api/v1/jobs/{job_id}": (200, r.Job),
    "GET /api/v1/jobs/{job_id}/decisions": (200, r.JobDecisions),
    "POST /api/v1/jobs/{job_id}/cancel": (200, r.Job),
    "POST /api/v1/jobs/{job_id}/remediate": (201, r.Submitted),
    "GET /api/v1/policy": (200, r.PolicyInfo),
    "PUT /api/v1/policy": (200, r.PolicyInfo),
    "PUT /api/v1/policy/shadow": (200, r.ShadowPolicy),
    "GET /api/v1/policy/shadow": (200, r.ShadowPolicy),
    "DELETE /api/v1/policy/shadow": (200, r.ShadowRemoved),
    "GET /api/v1/policy/shadow/diff": (200, r.ShadowDiff),
    "POST /api/v1/policy/simulate": (200, r.Decision),
    "POST /api/v1/policy/explain": (200, r.Explanation),
    "GET /api/v1/identities": (200, r.IdentityList),
    "POST /api/v1/identities": (201, r.IdentityCreated),
    "DELETE /api/v1/identities/{identity_id}": (200, r.Identity),
    "GET /api/v1/whoami": (200, r.WhoAmI),
    "POST /api/v1/worker/lease": (200, r.Lease),
    "POST /api/v1/worker/jobs/{job_id}/heartbeat": (200, r.Job),
    "POST /api/v1/worker/jobs/{job_id}/result": (200, r.Job),
    "GET /api/v1/audit": (200, r.AuditPage),
    "GET /api/v1/audit/verify": (200, r.AuditVerify),
    "GET /api/v1/audit/streams": (200, r.AuditStreams),
    "GET /api/v1/approvals": (200, r.ApprovalList),
    "GET /api/v1/approvals/{approval_id}": (200, r.Approval),
    "POST /api/v1/approvals/{job_id}/approve": (200, r.ApprovalDecided),
    "POST /api/v1/approvals/{job_id}/reject": (200, r.ApprovalDecided),
    "GET /api/v1/quarantine": (200, r.QuarantineList),
    "POST /api/v1/quarantine/{job_id}/release": (200, r.Job),
    "POST /api/v1/quarantine/{job_id}/discard": (200, r.Job),
    "POST /api/v1/incidents/contain": (201, r.Incident),
    "GET /api/v1/incidents": (200, r.IncidentList),
    "GET /api/v1/incidents/status": (200, r.IncidentStatus),
    "POST /api/v1/incidents/{incident_id}/lift": (200, r.Incident),
    "GET /api/v1/decisions": (200, r.DecisionPage),
    "GET /api/v1/decisions/{decision_id}": (200, r.Decision),
    "POST /api/v1/decisions/{decision_id}/remediate": (201, r.Submitted),
    "POST /api/v1/sessions": (201, r.Session),
    "GET /api/v1/sessions/{session_id}": (200, r.Session),
    "POST /api/v1/steps/evaluate": (200, r.StepDecision),
    "POST /api/v1/steps/result": (200, r.StepDecision),
    "GET /api/v1/adapters": (200, r.AdapterList),
    "POST /api/v1/adapters/{adapter}/{action}": (200, r.AdapterCall),
    "GET /api/v1/adapters/{adapter}/tools": (200, r.ToolList),
    "POST /api/v1/adapters/{adapter}/tools/{tool}/pin": (200, r.ToolPin),
    "GET /api/v1/secrets": (200, r.SecretList),
    "PUT /api/v1/secrets/{name}": (200, r.Secret),
    "GET /api/v1/secrets/{name}": (200, r.SecretValue),
    "DELETE /api/v1/secrets/{name}": (200, r.SecretDeleted),
    "GET /.well-known/jwks.json": (200, r.Jwks),
    "POST /api/v1/credentials/introspect": (200, r.Credential),
    "POST /api/v1/credentials/revoke": (200, r.Revoked),
    "GET /healthz": (200, r.Health),
    "GET /readyz": (200, r.Health),
}

# A second success status some operations answer with.
_ALSO: dict[str, tuple[int, str]] = {
    "POST /api/v1/jobs": (200, "an Idempotency-Key replayed an earlier submit (`Idempotent-Replayed: true`)"),
    "PUT /api/v1/secrets/{name}": (201, "the secret was created"),
    "POST /api/v1/adapters/{adapter}/{action}": (202, "the step waits for a person's approval"),
}

# The codes an operation raises itself, by status (authentication, rate limits and body errors
# are added to every operation that has them).
# What a bundle install refuses with, live or shadow (the same verification).
_BUNDLE_REFUSED = (
    "policy_invalid",
    "invalid_bundle",
    "bundle_unsigned",
    "bundle_malformed_signature",
    "bundle_unknown_key",
    "bundle_bad_signature",
    "bundle_expired",
    "bundle_not_yet_valid",
    "bundle_rollback",
)
ERRORS: dict[str, dict[int, tuple[str, ...]]] = {
    "POST /api/v1/jobs": {
        # A decision to deny (a rule, a fail-closed kernel, a containment) is `denied`; the
        # decision's `rule_id` says which.
        403: ("denied",),
        409: ("idempotency_key_reused",),
        413: ("payload_too_large", "prompt_too_long"),
        422: (
            "invalid_request",
            "invalid_topic",
            "invalid_idempotency_key",
            "missing_field",
            "too_many_attachments",
            "too_many_labels",
        ),
    },
    "GET /api/v1/jobs": {422: ("invalid_status", "invalid_cursor", "invalid_limit")},
    "GET /api/v1/jobs/{job_id}": {404: ("job_not_found",)},
    "GET /api/v1/jobs/{job_id}/decisions": {404: ("job_not_found",)},
    "POST /api/v1/jobs/{job_id}/cancel": {404: ("job_not_found",), 409: ("invalid_state",)},
    "POST /api/v1/jobs/{job_id}/remediate": {
        403: ("denied",),
        404: ("job_not_found", "remediation_not_found"),
        422: ("invalid_remediation",),
    },
    "GET /api/v1/policy": {404: ("no_policy",)},
    "PUT /api/v1/policy": {
        403: ("missing_role",),
        422: _BUNDLE_REFUSED,
    },
    "PUT /api/v1/policy/shadow": {
        403: ("missing_role", "global_admin_required"),
        422: _BUNDLE_REFUSED,
    },
    "GET /api/v1/policy/shadow": {403: ("missing_role",), 404: ("no_shadow_policy",)},
    "DELETE /api/v1/policy/shadow": {
        403: ("missing_role", "global_admin_required"),
        404: ("no_shadow_policy",),
    },
    "GET /api/v1/policy/shadow/diff": {
        403: ("missing_role",),
        404: ("no_shadow_policy",),
        422: ("invalid_limit",),
    },
    "POST /api/v1/policy/simulate": {404: ("job_not_found", "no_policy")},
    "POST /api/v1/policy/explain": {404: ("job_not_found", "no_policy")},
    "GET /api/v1/identities": {403: ("missing_role",), 422: ("invalid_cursor", "invalid_limit")},
    "POST /api/v1/identities": {
        403: ("missing_role", "global_admin_required"),
        422: (
            "invalid_name",
            "invalid_tenant",
            "invalid_roles",
            "invalid_rate_limit",
            "invalid_adapters",
            "invalid_capabilities",
            "invalid_topics",
        ),
    },
    "DELETE /api/v1/identities/{identity_id}": {403: ("missing_role",), 404: ("identity_not_found",)},
    "POST /api/v1/worker/lease": {403: ("missing_role",), 422: ("invalid_topics",)},
    "POST /api/v1/worker/jobs/{job_id}/heartbeat": {
        404: ("job_not_found",),
        409: ("not_lease_holder", "invalid_state"),
    },
    "POST /api/v1/worker/jobs/{job_id}/result": {
        404: ("job_not_found",),
        409: ("not_lease_holder", "invalid_state"),
    },
    "GET /api/v1/audit": {403: ("forbidden_stream",), 422: ("invalid_since",)},
    "GET /api/v1/audit/streams": {403: ("missing_role",)},
    "GET /api/v1/audit/verify": {403: ("forbidden_stream",), 429: ("rate_limited",)},
    "GET /api/v1/approvals": {
        403: ("missing_role",),
        422: ("invalid_status", "invalid_cursor", "invalid_limit"),
    },
    "GET /api/v1/approvals/{approval_id}": {403: ("missing_role",), 404: ("approval_not_found",)},
    "POST /api/v1/approvals/{job_id}/approve": {
        403: ("missing_role", "self_approval", "approval_forged", "tenant_contained"),
        404: ("job_not_found", "approval_not_found"),
        409: ("not_pending", "approval_expired", "approval_token_used"),
    },
    "POST /api/v1/approvals/{job_id}/reject": {
        403: ("missing_role", "self_approval", "tenant_contained"),
        404: ("job_not_found", "approval_not_found"),
        409: ("not_pending", "approval_expired"),
    },
    "GET /api/v1/quarantine": {403: ("missing_role",), 422: ("invalid_cursor", "invalid_limit")},
    "POST /api/v1/quarantine/{job_id}/release": {
        403: ("missing_role", "self_review", "tenant_contained"),
        404: ("job_not_found",),
        409: ("invalid_state",),
    },
    "POST /api/v1/quarantine/{job_id}/discard": {
        403: ("missing_role", "self_review", "tenant_contained"),
        404: ("job_not_found",),
        409: ("invalid_state",),
    },
    "POST /api/v1/incidents/contain": {
        403: ("missing_role", "global_admin_required"),
        404: ("identity_not_found", "tenant_not_found", "adapter_not_found"),
        409: ("already_contained",),
        422: ("unsupported_containment", "invalid_adapter", "self_containment"),
    },
    "GET /api/v1/incidents": {403: ("missing_role",), 422: ("invalid_cursor", "invalid_limit")},
    "GET /api/v1/incidents/status": {
        403: ("missing_role", "global_admin_required"),
        422: ("invalid_window", "invalid_baseline"),
    },
    "POST /api/v1/incidents/{incident_id}/lift": {
        403: ("missing_role",),
        404: ("containment_not_found",),
    },
    "GET /api/v1/decisions": {
        422: ("invalid_stage", "invalid_result", "invalid_since", "invalid_cursor"),
    },
    "GET /api/v1/decisions/{decision_id}": {404: ("decision_not_found",)},
    "POST /api/v1/decisions/{decision_id}/remediate": {
        403: ("denied",),
        404: ("decision_not_found", "remediation_not_found"),
        409: ("attachments_not_kept",),
        422: ("invalid_remediation",),
    },
    "POST /api/v1/sessions": {409: ("session_exists",), 404: ("job_not_found",)},
    "GET /api/v1/sessions/{session_id}": {
        403: ("missing_role",),
        404: ("session_not_found",),
        422: ("invalid_detail",),
    },
    "POST /api/v1/steps/evaluate": {
        404: ("session_not_found", "job_not_found"),
        409: ("step_conflict", "job_not_running"),
        413: ("params_too_large",),
        422: ("invalid_step", "invalid_params", "params_too_deep"),
    },
    "POST /api/v1/steps/result": {
        404: ("session_not_found", "step_not_found"),
        409: ("step_not_allowed", "step_result_recorded"),
    },
    "POST /api/v1/adapters/{adapter}/{action}": {
        403: ("step_denied", "identity_scope", "incident_containment", "egress_denied"),
        404: ("adapter_not_found", "unknown_action", "session_not_found"),
        409: ("step_executed", "step_in_progress", "not_executable", "secret_missing"),
        422: ("header_injection", "invalid_header_value", "invalid_path_param", "path_traversal"),
        502: ("upstream_error", "upstream_unreachable", "response_too_large"),
        504: ("upstream_timeout",),
    },
    "GET /api/v1/adapters/{adapter}/tools": {403: ("missing_role",), 404: ("adapter_not_found",)},
    "POST /api/v1/adapters/{adapter}/tools/{tool}/pin": {
        403: ("missing_role",),
        404: ("adapter_not_found",),
        409: ("tool_definition_changed", "upstream_unavailable"),
    },
    "GET /api/v1/secrets": {403: ("missing_role",)},
    "PUT /api/v1/secrets/{name}": {
        403: ("missing_role",),
        413: ("secret_too_large",),
        422: ("invalid_secret_name", "invalid_value"),
    },
    "GET /api/v1/secrets/{name}": {403: ("missing_role",), 404: ("secret_not_found",)},
    "DELETE /api/v1/secrets/{name}": {403: ("missing_role",), 404: ("secret_not_found",)},
    "POST /api/v1/credentials/revoke": {403: ("missing_role",), 422: ("invalid_revocation",)},
}

# The codes the code base raises (`api.error_codes.scan`) that belong to no route's table, and
# why. `tests/test_docs.py` fails on a code raised over HTTP that is neither in a route's table
# nor here, and on an entry here that nothing raises any more.
_EDGE = "any route: the HTTP edge answers it before or around the route"
_BACKEND = "any route, while a backend (database, bus) cannot be reached (503)"
_STORE_GUARD = "a store's integrity guard; the control layer checks first, so no answer carries it"
_ENGINE = "the engine's or the output gate's; the gate catches it and records a decision under the fail mode"
_STARTUP = "raised where the server starts (settings, keys, files, drivers, adapters), never on a request"
_MCP = "the MCP gateway answers it as a JSON-RPC error"
NOT_PER_ROUTE: dict[str, str] = {
    **dict.fromkeys(
        (
            "bad_request",
            "conflict",
            "forbidden",
            "not_found",
            "unauthorized",
            "method_not_allowed",
            "unsupported_media_type",
            "route_not_found",
            "internal_error",
        ),
        _EDGE,
    ),
    **dict.fromkeys(("store_unavailable", "bus_unavailable"), _BACKEND),
    **dict.fromkeys(
        (
            "duplicate_approval",
            "duplicate_credential",
            "duplicate_decision",
            "duplicate_identity",
            "duplicate_job",
            "duplicate_nonce",
            "duplicate_session",
            "duplicate_step",
        ),
        _STORE_GUARD,
    ),
    **dict.fromkeys(
        (
            "bad_output_rule",
            "output_not_json",
            "output_too_deep",
            "unknown_detector",
            "policy_evaluation_error",
        ),
        _ENGINE,
    ),
    **dict.fromkeys(
        (
            "bad_key",
            "bad_secrets_key",
            "secret_unreadable",
            "driver_missing",
            "invalid_bus_url",
            "invalid_store_url",
            "invalid_role",
            "invalid_session_bound",
            "policy_file_missing",
            "bad_classifier_pattern",
            "sandbox_unavailable",
            "invalid_ttl",
            "schema_too_new",
        ),
        _STARTUP,
    ),
    **dict.fromkeys(("tool_name_collision", "tool_not_found"), _MCP),
}

_STATUS_TEXT = {
    400: "the body is not JSON",
    401: "no API key, or not a valid one",
    403: "not allowed: a role, a tenant, a containment, or a gate's decision",
    404: "no such object in the caller's tenant",
    409: "the object's state forbids the request",
    413: "the body or one of its fields is too large",
    422: "the request is malformed",
    429: "rate limited; retry after `Retry-After` seconds",
    502: "the upstream service failed",
    503: "a backend (database, bus, kernel) cannot be reached now",
    504: "the upstream service did not answer in time",
}

_AUTH_ERRORS: dict[int, tuple[str, ...]] = {
    401: ("missing_api_key", "invalid_api_key"),
    403: ("identity_contained", "tenant_mismatch"),
}
_BODY_ERRORS: dict[int, tuple[str, ...]] = {
    400: ("invalid_json",),
    413: ("payload_too_large",),
    422: ("invalid_request",),
}
_LIMIT_ERRORS: dict[int, tuple[str, ...]] = {429: ("rate_limited",)}

_ERROR_EXAMPLE = {"error": {"code": "job_not_found", "message": "no job `job_1a22c8a965a3`", "details": {}}}
_EXAMPLES: dict[str, Any] = {
    "Submitted": {
        "job_id": "job_1a22c8adf9abda12d0d798e517a",
        "status": "queued",
        "decision": {
            "decision_id": "dec_1a22c8adf9b48d93b35a202a338",
            "timestamp": "2026-11-30T13:00:28.443Z",
            "result": "allow",
            "decision": "allow",
            "rule_id": "default",
            "reason": "no rule matched; default_decision is allow",
            "stage": "submit",
            "policy_snapshot": "91c263fc21ed5532c11855aa7dd487c179a82e7572257ff90274ce49714fb304",
            "job_hash": "916b7ceea164bdc6cd53d8df78d093cfb00aa30aee10dc6e571d96668d1e1021",
            "remediations": [],
            "cached": False,
            "fail_mode_applied": False,
            "job_id": "job_1a22c8adf9abda12d0d798e517a",
        },
        "derived": {"labels": {"command_class": "none"}, "risk_tags": [], "hits": []},
    },
    "Incident": {
        "id": "inc_1a22c8ae004b9223d7d9dace0af",
        "kind": "identity",
        "target": "idn_1a22c8adf7eb896bb4ef35c1cfe",
        "reason": "leaked key",
        "active": True,
        "created_at": "2026-11-30T13:00:28.548Z",
        "created_by": "idn_1a22c8ac8c798a274c65e5e4d52",
        "lifted_at": None,
        "lifted_by": None,
    },
}


def install_openapi(app: FastAPI, *, limited_without_depends: Iterable[str] = ()) -> None:
    """Replace `app.openapi` by one that completes FastAPI's document (built once, cached).

    `limited_without_depends`: operations (`POST /api/v1/jobs`) served by endpoints that
    authenticate and apply the rate limits themselves, with no dependency declared for it.
    """
    generate = app.openapi
    lean = frozenset(limited_without_depends)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            complete(schema, _facts(app.routes, lean))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _facts(routes: Iterable[Any], lean: frozenset[str]) -> dict[str, tuple[bool, bool]]:
    """Operation -> (authenticated, rate limited), read from each route's dependencies."""
    out: dict[str, tuple[bool, bool]] = {}
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        calls = _calls(route.dependant)
        limited = rate_limited in calls
        authed = limited or authenticate in calls
        for method in route.methods or ():
            key = f"{method} {route.path}"
            if key in lean:
                authed = limited = True
            out[key] = (authed, limited)
    return out


def _calls(dependant: Any) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            found.add(sub.call)
        found |= _calls(sub)
    return found


def complete(schema: dict[str, Any], facts: dict[str, tuple[bool, bool]]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _add_models(schemas, [r.ErrorBody, *(model for _, model in RESPONSES.values())])
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "an identity's API key (`ghk_...`), shown once when it is created",
        },
        "Bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "the same API key as `Authorization: Bearer ghk_...`",
        },
    }
    schema["info"]["description"] = (
        "Gatehouse: every action of an AI agent passes a policy decision before any side effect. "
        "Authenticate with `X-API-Key` (or `Authorization: Bearer`); an identity of tenant `*` "
        "acts in another tenant with `X-Tenant-ID`. Every error is "
        '`{"error": {"code", "message", "details"}}`; `code` is stable and machine-readable. '
        "Listings page (jobs, decisions, approvals, quarantine, identities, incidents): `limit` "
        "(1 to 500) rows per answer and a `next_cursor`; pass it as `cursor` for the next page "
        "until it is null. A cursor is opaque; one the listing cannot read is a 422 "
        "`invalid_cursor`, a limit outside 1..500 a 422 `invalid_limit`."
    )
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            key = f"{method.upper()} {path}"
            authed, limited = facts.get(key, (False, False))
            _complete_operation(key, op, authed=authed, limited=limited)


def _add_models(schemas: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    for model in models:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        for name, sub in body.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        if model.__name__ in _EXAMPLES:
            body["examples"] = [_EXAMPLES[model.__name__]]
        schemas[model.__name__] = body


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _complete_operation(key: str, op: dict[str, Any], *, authed: bool, limited: bool) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's `{"detail": [...]}`, never sent
    if key == "GET /readyz":
        # Not ready is a status, not an error: `{"status": "no_policy" | "kernel_unavailable" |
        # "backend_unavailable" | "sandbox_unavailable", "reason": ...}` for load balancers.
        responses["503"] = {
            "description": "not ready: `status` is no_policy, kernel_unavailable, backend_unavailable "
            "or sandbox_unavailable",
            "content": {"application/json": {"schema": _ref("Health")}},
        }
    if key == "GET /metrics":
        responses["200"] = {
            "description": "Prometheus metrics in the text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    documented = RESPONSES.get(key)
    if documented is not None:
        status, model = documented
        for code in [str(status), *(s for s in responses if s.startswith("2"))]:
            responses.pop(code, None)
        responses[str(status)] = {
            "description": model.__doc__.strip().splitlines()[0] if model.__doc__ else "success",
            "content": {"application/json": {"schema": _ref(model.__name__)}},
        }
        also = _ALSO.get(key)
        if also is not None:
            responses[str(also[0])] = {
                "description": also[1],
                "content": {"application/json": {"schema": _ref(model.__name__)}},
            }
    codes: dict[int, list[str]] = {}

    def add(table: Mapping[int, tuple[str, ...]]) -> None:
        for status, names in table.items():
            codes.setdefault(status, [])
            codes[status] += [n for n in names if n not in codes[status]]

    if authed:
        add(_AUTH_ERRORS)
        op["security"] = [{"ApiKey": []}, {"Bearer": []}]
        params = op.setdefault("parameters", [])
        if not any(p.get("name") == "X-Tenant-ID" for p in params):
            params.append(
                {
                    "name": "X-Tenant-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 63},
                    "description": "the tenant to act in; only a global admin (tenant `*`) may name another",
                }
            )
    else:
        op["security"] = []
    if limited:
        add(_LIMIT_ERRORS)
    if "requestBody" in op:
        add(_BODY_ERRORS)
    if any(p.get("in") in ("query", "path") for p in op.get("parameters", [])):
        add({422: ("invalid_request",)})
    add(ERRORS.get(key, {}))
    for status in sorted(codes):
        names = codes[status]
        responses[str(status)] = {
            "description": f"{_STATUS_TEXT.get(status, 'error')}; `error.code` is one of: "
            + ", ".join(f"`{n}`" for n in names),
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            _ref("ErrorBody"),
                            {"properties": {"error": {"properties": {"code": {"examples": names}}}}},
                        ]
                    },
                    "example": {
                        "error": {
                            "code": names[0],
                            "message": _STATUS_TEXT.get(status, "error"),
                            "details": {},
                        }
                    },
                }
            },
        }
    if "404" in responses and "example" not in responses["404"]["content"]["application/json"]:
        responses["404"]["content"]["application/json"]["example"] = _ERROR_EXAMPLE
