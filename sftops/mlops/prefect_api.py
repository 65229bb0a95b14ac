"""The Prefect API a run reports to, and its outage as one line naming the server.

The Prefect client already retries a request that fails on the network once it has reached the
server (``PREFECT_CLIENT_MAX_RETRIES``, exponential backoff); what reaches the caller after that
is an ``httpx`` transport error deep in Prefect's engine, or an HTTP 5xx: this turns either
into an :class:`SftopsError` that names the server and says what is kept.
"""

from __future__ import annotations

from sftops.errors import SftopsError

KEPT = (
    "the stages that finished are in the DVC cache and a rerun once the server is back "
    "restores them"
)


def api_url() -> str:
    """``PREFECT_API_URL``, or a note that the run used an ephemeral API."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "(ephemeral Prefect API)")


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or while handling, outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def unreachable(err: BaseException, url: str | None = None) -> SftopsError | None:
    """A one-line error when ``err`` (or what it came from) is the Prefect API failing: no
    connection, a broken one, a timeout, or a 5xx answer. ``None`` for any other error.

    >>> import httpx
    >>> try:
    ...     try:
    ...         raise httpx.ConnectError("All connection attempts failed")
    ...     except httpx.ConnectError as inner:
    ...         raise RuntimeError("state proposal failed") from inner
    ... except RuntimeError as outer:
    ...     print(unreachable(outer, "http://127.0.0.1:4200/api"))  # doctest: +ELLIPSIS
    Prefect server http://127.0.0.1:4200/api unreachable (ConnectError: All connection ...
    >>> unreachable(ValueError("bad row"), "http://x") is None
    True
    """
    import httpx

    for cause in _chain(err):
        if isinstance(cause, httpx.TransportError):
            problem = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        elif isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code >= 500:
            problem = f"HTTP {cause.response.status_code}"
        else:
            continue
        where = url if url is not None else api_url()
        return SftopsError(
            f"Prefect server {where} unreachable ({problem}) after the client's retries; {KEPT}"
        )
    return None
