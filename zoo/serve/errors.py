"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, for every failure the server
answers: its own, FastAPI's validation errors (400, not FastAPI's 422) and Starlette's 404/405."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from shared.errors import ConfigError, InputError, ZooError

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
         405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
         429: "rate_limit_error", 503: "server_error"}


class APIError(Exception):
    """A request the server refuses, with the HTTP status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


class ClientGone(Exception):
    """The client disconnected before its answer was ready; its queued work was dropped."""


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param, "invalid_value")


def body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "server_error"), "param": param,
                      "code": code}}


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(body(err.status, err.message, err.param, err.code), err.status, headers=err.headers)


def from_zoo_error(err: ZooError, param: str | None = None) -> APIError:
    """A zoo error raised by a model on a request's input or options (400), or by the server's own (500)."""
    if isinstance(err, (InputError, ConfigError)):
        return APIError(400, str(err), param, "invalid_value")
    return APIError(500, str(err), param, "model_error")


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    first = err.errors()[0] if err.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(location) or None
    return f"{param or 'request'}: {first.get('msg', 'invalid value')}", param


def install(app: FastAPI) -> None:
    """Every error the app can answer, in OpenAI's shape."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError):
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        message, param = _validation_message(err)
        return JSONResponse(body(400, message, param, "invalid_value"), 400)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException):
        message = err.detail if isinstance(err.detail, str) else "request failed"
        if err.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see GET /v1/models and the OpenAI API"
        return JSONResponse(body(err.status_code, message), err.status_code, headers=err.headers)

    @app.exception_handler(ClientGone)
    @app.exception_handler(ClientDisconnect)  # gone while its upload was being read
    async def _gone(request: Request, err: Exception):
        return Response(status_code=499)  # nobody reads it: nginx's code for "client closed request"

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        return JSONResponse(body(500, f"internal error ({type(err).__name__}); the request was not served"),
                            500)
