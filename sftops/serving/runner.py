"""Running the HTTP API: :func:`serve` (``sftops serve``: load, bind, poll for new versions,
serve until interrupted) and :class:`BackgroundServer` (the same in a thread, for tests and
notebooks). Both bind ``127.0.0.1`` unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time

from sftops.config import GenerationParams
from sftops.errors import SftopsError
from sftops.serving.http import DEFAULT_MAX_BODY_BYTES, create_app
from sftops.serving.reload import (
    DEFAULT_MAX_BATCH,
    DEFAULT_POLL_SECONDS,
    EngineLoader,
    ModelServer,
)
from sftops.serving.sources import ModelSource

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
"""Loopback only: exposing the server is an explicit ``--host 0.0.0.0``."""
DEFAULT_PORT = 8000


def bind_socket(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening TCP socket (port 0 = any free port); SftopsError if it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SftopsError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """Run a :class:`ModelServer` over HTTP in a background thread (tests, notebooks).

    ``with BackgroundServer(model_server) as running: httpx.get(running.url + "/health")``.
    Binds ``host`` (default 127.0.0.1) and ``port`` (default 0: a free port, see ``port``).
    """

    def __init__(
        self,
        model_server: ModelServer,
        host: str = DEFAULT_HOST,
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        import uvicorn

        self.model_server = model_server
        self.socket = bind_socket(host, port)
        self.host, self.port = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            create_app(model_server, max_body_bytes),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SftopsError("the HTTP server did not start")
            time.sleep(0.02)
        self.model_server.start_polling()
        return self

    def stop(self) -> None:
        self.model_server.stop_polling()
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)
        self.socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    source: ModelSource,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    *,
    params: GenerationParams | None = None,
    loader: EngineLoader | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Load the model from ``source`` and serve it until interrupted (blocking).

    Binds ``host:port`` (127.0.0.1 by default: loopback only), polls the source's version
    every ``poll_seconds`` (<= 0: never) and swaps in a new version when it moves; up to
    ``max_batch`` concurrent requests share one ``generate`` (1: one at a time); request bodies
    over ``max_body_bytes`` are refused with 413.
    """
    import uvicorn

    if "torch" not in sys.modules:  # read by OpenMP when torch loads, so only before that
        # libgomp's idle workers spin; a server's generation threads mostly wait, and on a busy
        # CPU the spinning starves the thread doing the work (generation measured 5-20x slower
        # on 2 shared cores). OMP_WAIT_POLICY=ACTIVE in the environment still wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sock = bind_socket(host, port)  # fail on a taken port before spending time loading
    model_server: ModelServer | None = None
    try:
        model_server = ModelServer(
            source,
            poll_seconds=poll_seconds,
            params=params or GenerationParams(),
            loader=loader,
            max_batch=max_batch,
        )
        model_server.start_polling()
        log.info(
            "serving %s (%s) on http://%s:%d",
            source.describe(),
            model_server.engine.version_label,
            host,
            sock.getsockname()[1],
        )
        app = create_app(model_server, max_body_bytes)
        config = uvicorn.Config(app, log_level="info", lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if model_server is not None:
            model_server.stop_polling()
        sock.close()
