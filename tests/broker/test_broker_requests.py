"""The outbound request built from a catalog action, and the answer scrubbed of credentials
(`gatehouse.broker.requests`); redirects whose `Location` is not an http(s) URL refused by the
transport with `egress_denied`, never another error."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from gatehouse.broker.egress import EgressDenied
from gatehouse.broker.requests import Scrubber, build_request, check_header_value, decode_output, fill_path
from gatehouse.broker.transport import PinnedTransport, fetch
from gatehouse.errors import BadRequest
from gatehouse.policy.catalog import Action, Adapter, parse_egress

EGRESS = (parse_egress("https://api.example.com"),)


def _adapter(**action: object) -> tuple[Adapter, Action]:
    act = Action(name="a", **action)  # type: ignore[arg-type]
    return Adapter(name="svc", kind="http", base_url="https://api.example.com/v1/", egress=EGRESS,
                   actions={"a": act}), act  # fmt: skip


def test_path_params_are_encoded_whole_and_the_rest_goes_to_the_query() -> None:
    adapter, action = _adapter(method="GET", path="/repos/{owner}/{repo}", path_params=("owner", "repo"))
    params = {"owner": "a b?#", "repo": 7, "state": "open", "labels": ["x", "y"], "deep": {"k": 1}, "f": True}
    r = build_request(adapter, action, params, credential=("Authorization", "Bearer s3cret"))
    assert r.url.raw_path.decode() == (
        "/v1/repos/a%20b%3F%23/7?state=open&labels=x&labels=y&deep=%7B%22k%22%3A1%7D&f=true"
    )
    assert r.headers["authorization"] == "Bearer s3cret" and r.method == "GET"


def test_body_params_send_the_params_not_in_the_path_as_json() -> None:
    adapter, action = _adapter(method="POST", path="/items/{id}", path_params=("id",), body="params")
    r = build_request(adapter, action, {"id": "x1", "amount": 3})
    assert r.url.path == "/v1/items/x1" and r.url.query == b""
    assert orjson.loads(r.content) == {"amount": 3} and r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("value", ["..", ".", "a/b", "../etc/passwd", "a\\b", "%2e/x"])
def test_a_path_param_that_walks_the_path_is_refused(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        fill_path("/items/{id}", ("id",), {"id": value})
    assert err.value.code == "path_traversal"


@pytest.mark.parametrize("value", ["a\r\nHost: evil", "a\nb", "a\x00b"])
def test_cr_lf_and_nul_in_a_path_param_are_header_injection(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        fill_path("/items/{id}", ("id",), {"id": value})
    assert err.value.code == "header_injection"


@pytest.mark.parametrize("value", [None, True, {"a": 1}, ["a"], ""])
def test_a_path_param_must_be_a_non_empty_scalar(value: object) -> None:
    with pytest.raises(BadRequest) as err:
        fill_path("/items/{id}", ("id",), {"id": value})
    assert err.value.code == "invalid_path_param"


def test_header_values_are_checked_and_never_quoted() -> None:
    with pytest.raises(BadRequest) as err:
        check_header_value("Authorization", "Bearer tok\r\nX-Evil: 1")
    assert err.value.code == "header_injection" and "tok" not in err.value.message
    with pytest.raises(BadRequest) as err:
        check_header_value("Authorization", "Bearer tök")
    assert err.value.code == "invalid_header_value" and "tök" not in err.value.message
    check_header_value("Authorization", "Bearer abc.def-ghi_=")


def test_the_scrubber_removes_secrets_in_every_form_the_answer_may_hold_them() -> None:
    secret = 'pa"ss\\word-123'
    scrub = Scrubber([secret])
    assert repr(scrub) == "Scrubber(<2 values hidden>)" and secret not in repr(scrub)
    raw = orjson.dumps({"auth": f"Bearer {secret}", secret: 1})
    out = decode_output(httpx.Headers({"content-type": "application/json"}), raw, scrub)
    assert out == {"auth": "Bearer [REDACTED]", "[REDACTED]": 1}
    escaped = "".join(f"\\u{ord(c):04x}" for c in "tok-ABCDEFG")
    out = decode_output(httpx.Headers({"content-type": "application/json"}), f'{{"a": "{escaped}"}}'.encode(),
                        Scrubber(["tok-ABCDEFG"]))  # fmt: skip
    assert out == {"a": "[REDACTED]"}
    text = decode_output(httpx.Headers({"content-type": "text/plain; charset=utf-8"}), b"got tok-ABCDEFG",
                         Scrubber(["tok-ABCDEFG"]))  # fmt: skip
    assert text == "got [REDACTED]"
    binary = decode_output(httpx.Headers({"content-type": "image/png"}), b"\x89PNGtok-ABCDEFG",
                           Scrubber(["tok-ABCDEFG"]))  # fmt: skip
    assert base64.b64decode(binary["base64"]) == b"\x89PNG[REDACTED]"


class _Redirecting(PinnedTransport):
    """Answers every request with a redirect to `location`, counting the sends."""

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location
        self.sent: list[str] = []

    async def send(
        self, request: httpx.Request, dest: object, address: str, *, timeout: object
    ) -> httpx.Response:
        self.sent.append(str(request.url))
        return httpx.Response(302, headers={"location": self.location}, request=request)


class _Resolver:
    async def resolve(self, host: str) -> list[str]:
        return ["93.184.216.34"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://api.example.com/x", "gopher://127.0.0.1:70/x", "javascript:alert(1)",
     "data:text/plain,hi", "mailto:a@b.c", "http://[::1", "http:///nohost", "//evil.example.com/x"],
)  # fmt: skip
async def test_a_redirect_to_anything_but_a_listed_http_url_is_egress_denied(location: str) -> None:
    transport = _Redirecting(location)
    request = httpx.Request("GET", "https://api.example.com/start")
    with pytest.raises(EgressDenied):
        await fetch(request, EGRESS, transport=transport, resolver=_Resolver())
    assert transport.sent == ["https://api.example.com/start"]
