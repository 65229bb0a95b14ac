"""Serving a chat model: an OpenAI-compatible HTTP server (``sftops serve``) and a terminal
chat (``sftops chat``).

- :mod:`~sftops.serving.sources`: where the model comes from (a folder, ``models:/<name>@champion``)
- :mod:`~sftops.serving.engine`: the loaded model answering conversations, whole or streamed
- :mod:`~sftops.serving.batching`: concurrent requests generated as one batch
- :mod:`~sftops.serving.errors`: the JSON errors requests are refused with
- :mod:`~sftops.serving.reload`: the served engine and the poller that swaps in new versions
- :mod:`~sftops.serving.http`: the HTTP API (FastAPI)
- :mod:`~sftops.serving.runner`: ``serve`` (uvicorn, blocking) and ``BackgroundServer``
- :mod:`~sftops.serving.chat`: the terminal chat
"""
