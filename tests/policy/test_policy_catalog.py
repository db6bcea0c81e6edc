"""The adapter catalog: what loads (the documented example verbatim, MCP adapters), what is
refused with its line, what a params check answers, and that the signature covers it."""

from __future__ import annotations

import textwrap
import time

import pytest
import yaml

import gatehouse.policy as gp
from gatehouse.crypto import SigningKey
from gatehouse.errors import PolicyError
from gatehouse.kernel.bundles import BundleRefused, sign_bundle, verify_bundle
from gatehouse.policy.canonical import canonical_data
from gatehouse.policy.catalog import EgressError, parse_egress, parse_rate_limit

# The broker's documented example, exactly as printed (comments and `{...}` included).
EXAMPLE = """\
sets:
  trusted_payees: ["UK12345678901234567890"]
adapters:
  github:
    kind: http                            # http: the broker makes the call itself
    base_url: https://api.github.com
    egress: ["https://api.github.com:443"] # scheme://host[:port]; host may be *.domain; IPs/CIDRs explicit
    credential: {secret: github_token, header: Authorization, format: "Bearer {secret}"}
    rate_limit: 5/10                      # per session, RATE/BURST per second
    actions:
      list_issues:
        method: GET
        path: /repos/{owner}/{repo}/issues   # {name} filled from params, URL-encoded
        params: {type: object, properties: {owner: {type: string}, repo: {type: string}},
                 required: [owner, repo], additionalProperties: false}
        effect: read                      # read | write | destructive
        output: untrusted                 # untrusted (default) | trusted
  billing:
    kind: http
    base_url: https://billing.internal:8443
    egress: ["https://billing.internal:8443"]
    credential: {mint: true, audience: billing, ttl: 10m, header: Authorization, format: "Bearer {token}"}
    actions: {refund: {method: POST, path: /refunds, body: params, effect: write}}
  bank:
    kind: external                        # decided here, executed by the caller
    actions: {send_money: {params: {...}, effect: write}, get_balance: {effect: read, output: trusted}}
"""

MCP = """\
adapters:
  files:
    kind: mcp
    command: [python3, -m, files_server, --root, /srv/docs]
    env: {GITHUB_TOKEN: {secret: github_token}, LOG_LEVEL: info}
    sandbox: {network: egress, read: [/srv/docs], write: [/tmp/files], memory: 512Mi,
              cpu_seconds: 60, processes: 64, wall_seconds: 300}
    egress: ["https://api.github.com"]
    rate_limit: 2/4
    actions:
      delete_file: {effect: destructive}
      read_file: {effect: read, output: untrusted,
                  params: {type: object, properties: {path: {type: string, pattern: "^/srv/docs/"}}}}
  search:
    kind: mcp
    url: https://mcp.search.example.com/mcp
    egress: ["https://*.search.example.com"]
    credential: {mint: true, audience: search, ttl: 5m}
    actions: {query: {output: trusted}}
  local:
    kind: mcp
    command: [./server]
    sandbox: none
"""


def _load(text: str) -> gp.Policy:
    return gp.load(text)


def test_the_documented_example_loads_as_printed() -> None:
    cat = _load(EXAMPLE).catalog
    gh = cat.adapter("github")
    assert gh is not None and gh.kind == "http" and gh.base_url == "https://api.github.com"
    assert [e.text for e in gh.egress] == ["https://api.github.com:443"]
    assert gh.credential is not None and gh.credential.secret == "github_token"
    assert gh.credential.render("s3cr3t") == "Bearer s3cr3t"
    assert gh.rate_limit is not None and (gh.rate_limit.rate, gh.rate_limit.burst) == (5, 10)
    issues = cat.action("github", "list_issues")
    assert issues is not None and issues.method == "GET" and issues.path_params == ("owner", "repo")
    assert issues.effect == "read" and not issues.trusted
    billing = cat.adapter("billing")
    assert billing is not None and billing.credential is not None
    assert (
        billing.credential.mint and billing.credential.ttl == 600 and billing.credential.audience == "billing"
    )
    refund = cat.action("billing", "refund")
    assert refund is not None and refund.body == "params" and refund.output == "untrusted"
    assert cat.lookup("bank", "get_balance").trusted and cat.lookup("bank", "get_balance").effect == "read"
    assert cat.lookup("bank", "send_money").effect == "write"
    # An action a listing adapter lacks is unknown; an unlisted adapter is policy's alone.
    assert cat.lookup("bank", "steal").unknown and not cat.lookup("web", "read").unknown
    assert cat.lookup("web", "read").adapter is None
    # Adapter names ignore case (no way round the schema by spelling), action names do not.
    assert cat.lookup("GitHub", "list_issues").action is issues
    assert cat.lookup("github", "LIST_ISSUES").unknown


def test_mcp_adapters_load_with_command_env_sandbox_and_url() -> None:
    cat = _load(MCP).catalog
    files = cat.adapter("files")
    assert files is not None and files.command == ("python3", "-m", "files_server", "--root", "/srv/docs")
    assert {v.name: (v.value, v.secret) for v in files.env} == {
        "GITHUB_TOKEN": (None, "github_token"),
        "LOG_LEVEL": ("info", None),
    }
    assert files.sandbox is not None and files.sandbox.enabled and files.sandbox.network == "egress"
    assert files.sandbox.memory == 512 * 2**20 and files.sandbox.read == ("/srv/docs",)
    # Tools it does not list are still known (they come from the upstream), with no effect.
    assert not cat.lookup("files", "list_dir").unknown and cat.lookup("files", "list_dir").effect is None
    assert cat.lookup("files", "delete_file").effect == "destructive"
    assert cat.validate_params("files", "read_file", {"path": "/etc/passwd"}) == (
        "`$.path`: does not match `^/srv/docs/`"
    )
    search = cat.adapter("search")
    assert search is not None and search.url == "https://mcp.search.example.com/mcp"
    assert search.credential is not None and search.credential.ttl == 300
    assert cat.lookup("search", "query").trusted
    local = cat.adapter("local")
    assert local is not None and local.sandbox is not None and not local.sandbox.enabled
    # A stdio server without `sandbox:` gets the default one, with no network.
    public = {a["name"]: a for a in cat.to_public()}
    assert public["local"]["sandbox"] == "none"
    assert public["files"]["env"]["GITHUB_TOKEN"] == {"secret": "github_token"}


def test_params_errors_name_the_path_and_never_the_value() -> None:
    text = """\
adapters:
  bank:
    kind: external
    actions:
      pay:
        params:
          type: object
          required: [to, amount]
          properties:
            to: {type: string, pattern: "^[A-Z]{2}[0-9]+$"}
            amount: {type: number, maximum: 100}
            currency: {enum: [EUR, GBP]}
            tags: {type: array, items: {type: string}}
"""
    cat = _load(text).catalog
    secret = "sk_live_SECRETVALUE123"
    cases = {
        "`$.to`: must be of type string, got integer": {"to": 5, "amount": 1},
        "`$.to`: does not match `^[A-Z]{2}[0-9]+$`": {"to": secret, "amount": 1},
        "`$.amount`: must be at most 100": {"to": "DE1", "amount": 1000},
        "`$.currency`: must be one of `EUR`, `GBP`": {"to": "DE1", "amount": 1, "currency": secret},
        "`$.tags[1]`: must be of type string, got integer": {"to": "DE1", "amount": 1, "tags": ["a", 2]},
        "`$`: missing required property `amount`": {"to": "DE1"},
    }
    for message, params in cases.items():
        got = cat.validate_params("bank", "pay", params)
        assert got == message
        assert secret not in (got or "")
    assert cat.validate_params("bank", "pay", {"to": "DE1", "amount": 5}) is None


def test_schema_patterns_run_in_linear_time() -> None:
    # `(a+)+$` backtracks exponentially in Python's `re`: the agent's string must not stall the gate.
    text = """\
adapters:
  t:
    kind: external
    actions:
      a: {params: {type: object, properties: {x: {type: string, pattern: "^(a+)+$"}},
                   patternProperties: {"^(b+)+$": {type: string}}, additionalProperties: false}}
"""
    cat = _load(text).catalog
    started = time.perf_counter()
    assert cat.validate_params("t", "a", {"x": "a" * 5000 + "!"}) == "`$.x`: does not match `^(a+)+$`"
    assert cat.validate_params("t", "a", {"b" * 5000 + "!": "v"}) is not None
    assert time.perf_counter() - started < 1.0


def _doc(body: str) -> str:
    return "adapters:\n" + textwrap.indent(textwrap.dedent(body).lstrip("\n"), "  ")


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


HTTP = """
gh:
  kind: http
  base_url: https://api.github.com
  egress: ["https://api.github.com"]
  actions:
    get: {method: GET, path: /x}
"""

# (name, adapters body, the text of the line at fault, words of the message)
REJECTED = [
    ("unknown kind", "gh: {kind: grpc}\n", "grpc", "bad kind of adapter `gh`"),
    ("no kind", "gh:\n  actions: {}\n", "gh:", "needs `kind`"),
    (
        "bad schema",
        "b:\n  kind: external\n  actions:\n    a:\n      params:\n        type: objec\n",
        "type: objec",
        "not a valid JSON Schema at `/type`",
    ),
    (
        "bad nested schema",
        "b:\n  kind: external\n  actions:\n    a:\n      params:\n        properties:\n"
        "          x: {minLength: -1}\n",
        "minLength",
        "`/properties/x/minLength`",
    ),
    (
        "schema pattern RE2 refuses",
        "b:\n  kind: external\n  actions:\n    a:\n      params:\n        properties:\n"
        "          x: {pattern: '(?=a)'}\n",
        "pattern",
        "RE2 syntax",
    ),
    (
        "unevaluatedProperties with patterns",
        "b:\n  kind: external\n  actions:\n    a:\n      params:\n        patternProperties: {'^x': {}}\n"
        "        unevaluatedProperties: false\n",
        "unevaluatedProperties",
        "cannot be combined with `patternProperties`",
    ),
    (
        "remote $ref",
        "b:\n  kind: external\n  actions:\n    a:\n      params:\n        $ref: https://evil.example/s.json\n",
        "$ref",
        "must point inside the schema",
    ),
    (
        "egress with a path",
        HTTP.replace('egress: ["https://api.github.com"]', 'egress: ["https://api.github.com/v3"]'),
        "egress",
        "no path",
    ),
    (
        "egress without scheme",
        HTTP.replace('egress: ["https://api.github.com"]', 'egress: ["api.github.com"]'),
        "egress",
        "bad egress entry `api.github.com`",
    ),
    (
        "egress bad wildcard",
        HTTP.replace('egress: ["https://api.github.com"]', 'egress: ["https://a*.github.com"]'),
        "egress",
        "is not a host name",
    ),
    (
        "egress bad port",
        HTTP.replace('egress: ["https://api.github.com"]', 'egress: ["https://api.github.com:99999"]'),
        "egress",
        "port must be 1 to 65535",
    ),
    (
        "egress ftp",
        HTTP.replace('egress: ["https://api.github.com"]', 'egress: ["ftp://api.github.com"]'),
        "egress",
        "scheme must be http or https",
    ),
    (
        "egress bad CIDR",
        HTTP.replace('egress: ["https://api.github.com"]', 'egress: ["10.0.0.1/8"]'),
        "egress",
        "bad egress entry `10.0.0.1/8`",
    ),
    (
        "ttl too short",
        HTTP.replace("  actions:", "  credential: {mint: true, ttl: 4m}\n  actions:"),
        "ttl: 4m",
        "5 to 15 minutes",
    ),
    (
        "ttl too long",
        HTTP.replace("  actions:", "  credential: {mint: true, ttl: 16m}\n  actions:"),
        "ttl: 16m",
        "5 to 15 minutes",
    ),
    (
        "ttl on a secret",
        HTTP.replace("  actions:", "  credential: {secret: k, ttl: 10m}\n  actions:"),
        "ttl: 10m",
        "applies to a minted credential",
    ),
    (
        "secret and mint",
        HTTP.replace("  actions:", "  credential: {secret: k, mint: true}\n  actions:"),
        "credential",
        "exactly one of",
    ),
    (
        "format without slot",
        HTTP.replace("  actions:", "  credential: {secret: k, format: Bearer}\n  actions:"),
        "format: Bearer",
        "must hold `{secret}`",
    ),
    (
        "path param undeclared",
        HTTP.replace("path: /x", "path: '/repos/{owner}'"),
        "/repos/{owner}",
        "`{owner}`",
    ),
    (
        "path param not required",
        HTTP.replace(
            "{method: GET, path: /x}",
            "{method: GET, path: '/r/{o}', params: {properties: {o: {type: string}}}}",
        ),
        "path: '/r/{o}'",
        "`required`",
    ),
    (
        "unknown adapter key",
        HTTP.replace("  actions:", "  timeout: 5\n  actions:"),
        "timeout",
        "unknown key `timeout`",
    ),
    (
        "unknown action key",
        HTTP.replace("path: /x}", "path: /x, retries: 3}"),
        "retries",
        "unknown key `retries`",
    ),
    (
        "unknown credential key",
        HTTP.replace("  actions:", "  credential: {secret: k, scope: all}\n  actions:"),
        "scope",
        "unknown key `scope`",
    ),
    ("method not HTTP", HTTP.replace("method: GET", "method: FETCH"), "FETCH", "bad method `FETCH`"),
    (
        "http without base_url",
        HTTP.replace("  base_url: https://api.github.com\n", ""),
        "gh:",
        "needs `base_url`",
    ),
    ("http action without path", HTTP.replace(", path: /x", ""), "method: GET", "needs `path`"),
    (
        "base_url outside egress",
        HTTP.replace("base_url: https://api.github.com", "base_url: https://evil.example.com"),
        "base_url",
        "not under the adapter's `egress`",
    ),
    ("mcp with neither", "m:\n  kind: mcp\n  actions: {}\n", "m:", "exactly one of `command`"),
    (
        "mcp with both",
        "m:\n  kind: mcp\n  command: [x]\n  url: https://a.example.com\n  egress: ['https://a.example.com']\n",
        "m:",
        "exactly one of `command`",
    ),
    (
        "mcp url outside egress",
        "m:\n  kind: mcp\n  url: https://a.example.com:8443/mcp\n  egress: ['https://a.example.com']\n",
        "url:",
        "not under the adapter's `egress`",
    ),
    (
        "env on a url server",
        "m:\n  kind: mcp\n  url: https://a.example.com\n  egress: ['https://a.example.com']\n  env: {A: b}\n",
        "env:",
        "applies to an mcp adapter with `command`",
    ),
    (
        "sandbox on http",
        HTTP.replace("  actions:", "  sandbox: none\n  actions:"),
        "sandbox",
        "unknown key `sandbox`",
    ),
    (
        "bad sandbox memory",
        "m:\n  kind: mcp\n  command: [x]\n  sandbox: {memory: lots}\n",
        "memory",
        "`512Mi`",
    ),
    (
        "sandbox egress without egress",
        "m:\n  kind: mcp\n  command: [x]\n  sandbox: {network: egress}\n",
        "network",
        "needs `egress`",
    ),
    (
        "sandbox shows the root",
        "m:\n  kind: mcp\n  command: [x]\n  sandbox: {read: [/]}\n",
        "read",
        "cannot show `/`",
    ),
    (
        "sandbox path with ..",
        "m:\n  kind: mcp\n  command: [x]\n  sandbox: {write: [/srv/../etc]}\n",
        "write",
        "`..`",
    ),
    (
        "sandbox relative path",
        "m:\n  kind: mcp\n  command: [x]\n  sandbox: {read: [data]}\n",
        "read",
        "absolute host paths",
    ),
    (
        "sandbox bad network",
        "m:\n  kind: mcp\n  command: [x]\n  sandbox: {network: host}\n",
        "network",
        "host",
    ),
    (
        "method on external",
        "b:\n  kind: external\n  actions:\n    a: {method: GET}\n",
        "method",
        "unknown key `method`",
    ),
    ("bad effect", "b:\n  kind: external\n  actions:\n    a: {effect: delete}\n", "delete", "bad effect"),
    ("bad rate limit", "b:\n  kind: external\n  rate_limit: fast\n", "fast", "bad rate limit `fast`"),
    ("names differing by case", "b: {kind: external}\nB: {kind: external}\n", "B:", "listed twice"),
    (
        "env secret malformed",
        "m:\n  kind: mcp\n  command: [x]\n  env: {A: {secret: '../k'}}\n",
        "secret",
        "bad secret name",
    ),
]


@pytest.mark.parametrize(("name", "body", "where", "words"), REJECTED, ids=[r[0] for r in REJECTED])
def test_a_bad_catalog_is_refused_with_its_line(name: str, body: str, where: str, words: str) -> None:
    text = _doc(body)
    with pytest.raises(PolicyError) as info:
        gp.load(text)
    assert words in info.value.message, info.value.message
    assert info.value.line == _line(text, where), (info.value.message, text)


def test_egress_entries() -> None:
    e = parse_egress("https://api.github.com")
    assert e.allows("https", "api.github.com", 443) and e.allows("HTTPS", "API.github.com", None)
    assert not e.allows("https", "api.github.com", 8443) and not e.allows("http", "api.github.com", 80)
    assert not e.allows("https", "api.github.com.evil.com", 443)
    w = parse_egress("https://*.example.com:8443")
    assert w.wildcard and w.allows("https", "a.b.example.com", 8443)
    assert not w.allows("https", "example.com", 8443) and not w.allows("https", "badexample.com", 8443)
    net = parse_egress("10.1.0.0/16")
    assert net.scheme is None and net.allows("http", "10.1.2.3", 8080) and not net.allows("http", "10.2.0.1")
    assert not net.allows("http", "ten.example.com")
    import ipaddress

    assert net.covers(ipaddress.ip_address("10.1.9.9")) and not net.covers(ipaddress.ip_address("127.0.0.1"))
    v6 = parse_egress("https://[::1]:8443")
    assert v6.allows("https", "[::1]", 8443) and v6.allows("https", "::1", 8443)
    assert parse_egress("fd00::/8").allows("https", "fd00::1")
    for bad in (
        "https://user@h.example.com",
        "https://h.example.com/",
        "https://h.example.com?x",
        "*.example.com",
        "https://*.com",
        "https://::1",
        "https://h_x.example.com",
        "",
    ):
        with pytest.raises(EgressError):
            parse_egress(bad)


def test_rate_limits() -> None:
    assert (parse_rate_limit("5/10").rate, parse_rate_limit("5/10").burst) == (5.0, 10)
    assert parse_rate_limit("0.5/1").rate == 0.5 and parse_rate_limit(3).burst == 3
    for bad in ("0/1", "5/0", "x", "-1/2", True):
        with pytest.raises(ValueError):
            parse_rate_limit(bad)


def test_canonical_form_writes_the_catalog_and_loads_the_same() -> None:
    for text in (EXAMPLE, MCP):
        p = _load(text)
        again = _load(yaml.safe_dump(canonical_data(p.bundle), sort_keys=False))
        assert again.catalog == p.catalog
        assert "adapters" in canonical_data(p.bundle)


def test_public_view_holds_secret_names_only() -> None:
    public = _load(EXAMPLE).catalog.to_public()
    gh = next(a for a in public if a["name"] == "github")
    assert gh["credential"] == {
        "secret": "github_token",
        "header": "Authorization",
        "format": "Bearer {secret}",
    }
    assert gh["rate_limit"] == "5/10" and gh["actions"]["list_issues"]["effect"] == "read"


def test_the_catalog_is_in_the_snapshot_and_under_the_signature() -> None:
    p = _load(EXAMPLE)
    wider = EXAMPLE.replace('egress: ["https://api.github.com:443"]', 'egress: ["https://*.github.com:443"]')
    assert _load(wider).snapshot != p.snapshot
    key = SigningKey.generate()
    now = time.time()
    env = sign_bundle(EXAMPLE, key, name="unnamed", serial=1, now=now)
    trusted = {key.key_id: key.verify_key}
    assert verify_bundle(env["bundle"], env["signature"], trusted, now=now, running_serial=None) == 1
    # Widening one adapter's egress after signing breaks the signature.
    with pytest.raises(BundleRefused) as info:
        verify_bundle(wider, env["signature"], trusted, now=now, running_serial=None)
    assert info.value.reason == "bad_signature"


def test_a_bundle_without_adapters_has_an_empty_catalog() -> None:
    p = _load("rules: []\n")
    assert not p.catalog and p.catalog.lookup("x", "y").adapter is None
    assert _load("adapters:\n").catalog.adapters == {}


def test_the_readme_catalog_example_loads() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Adapter catalog.*?```yaml\n(.*?)```", readme, re.S)
    assert block is not None
    cat = _load(block.group(1)).catalog
    assert [a.name for a in cat.adapters.values()] == ["github", "billing", "bank", "files"]
    assert cat.lookup("files", "delete_file").effect == "destructive"
