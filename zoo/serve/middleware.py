"""Pure ASGI middleware (never Starlette's BaseHTTPMiddleware, which hides client disconnects from the
endpoints): the API key and the upload limit, checked before a request reaches its endpoint."""

from __future__ import annotations

import hmac
import json

from zoo.serve.errors import APIError, body


async def _send_error(send, status: int, message: str, param: str | None = None, code: str | None = None,
                      headers: list | None = None) -> None:
    payload = json.dumps(body(status, message, param, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


class Guard:
    """401 for /v1/ requests without `Authorization: Bearer <api_key>` (when a key is set); 413 for a body
    over `max_bytes`, from its Content-Length or, without one, as soon as the bytes read pass the limit."""

    def __init__(self, app, api_key: str | None, max_bytes: int):
        self.app, self.api_key, self.max_bytes = app, api_key, max_bytes

    def _authorized(self, scope) -> bool:
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.api_key)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.api_key and scope["path"].startswith("/v1/") and not self._authorized(scope):
            return await _send_error(send, 401, "a valid API key is required: send Authorization: Bearer <key>",
                                     code="invalid_api_key", headers=[(b"www-authenticate", b"Bearer")])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _send_error(send, 413, self._too_large(int(length)), None, "file_too_large",
                                     headers=[(b"connection", b"close")])
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise APIError(413, self._too_large(received), None, "file_too_large")
            return message

        await self.app(scope, counted_receive, send)

    def _too_large(self, size: int) -> str:
        return (f"the request body is over {self.max_bytes / 2**20:g} MB, the most this server accepts "
                f"(--max-upload-mb); got {size / 2**20:.1f} MB or more")
