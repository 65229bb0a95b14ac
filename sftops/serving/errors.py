"""The errors the server answers with: OpenAI's JSON error body, never an HTML page.

A malformed request is a :class:`RequestError` (400 ``invalid_request_error`` unless told
otherwise); a prompt that alone fills the model's context is :class:`PromptTooLong` (413
``context_length_exceeded``): it is never silently truncated, since cutting a conversation
changes what is being asked.
"""

from __future__ import annotations

from typing import Any

from sftops.errors import SftopsError


class RequestError(SftopsError):
    """A request the server refuses; ``status`` is the HTTP status, ``code`` the error code."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param

    def payload(self) -> dict[str, Any]:
        return error_payload(self.message, self.error_type, self.code, self.param)


class PromptTooLong(RequestError):
    """The rendered prompt alone fills the model's context (HTTP 413)."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(
            f"the prompt is {prompt_tokens} tokens but the model's context is {context_length} "
            "tokens (the prompt and the answer must fit in it); shorten the conversation",
            status=413,
            code="context_length_exceeded",
            param="messages",
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


def error_payload(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
