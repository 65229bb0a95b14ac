"""Small HTTP clients of the stack's servers (standard library only: the stack's health checks
must not depend on the clients they check). ``auth`` is ``user:password`` for basic auth."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any


def _request(url: str, auth: str | None, **kwargs: Any) -> urllib.request.Request:
    request = urllib.request.Request(url, **kwargs)
    if auth:
        request.add_header("Authorization", f"Basic {base64.b64encode(auth.encode()).decode()}")
    return request


def get(url: str, auth: str | None = None, timeout: float = 3.0) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(_request(url, auth), timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), b""
    except (OSError, ValueError):
        return 0, b""


def healthy(url: str, auth: str | None = None) -> bool:
    return 200 <= get(url, auth)[0] < 300


def call(
    url: str, payload: Any, auth: str | None = None, method: str = "POST", timeout: float = 10.0
) -> Any:
    """The decoded JSON answer of a JSON request (raises on an HTTP error)."""
    request = _request(
        url,
        auth,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def deployment_names(api_url: str, auth: str | None = None) -> set[str]:
    """``flow/deployment`` of every deployment the Prefect API at ``api_url`` knows."""
    flows = {f["id"]: f["name"] for f in call(f"{api_url}/flows/filter", {"limit": 200}, auth)}
    found = call(f"{api_url}/deployments/filter", {"limit": 200}, auth)
    return {f"{flows.get(d['flow_id'], '?')}/{d['name']}" for d in found}
