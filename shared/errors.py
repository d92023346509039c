"""Errors the gateway answers to clients, each with its HTTP status and a stable code."""

from __future__ import annotations


class GatewayError(Exception):
    """A whole-request failure that becomes a JSON error answer."""

    status = 400

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict:
        """The JSON body sent to the client."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(GatewayError):
    status = 400


class Unauthorized(GatewayError):
    status = 401


class Forbidden(GatewayError):
    status = 403


class NotFound(GatewayError):
    status = 404


class MethodNotAllowed(GatewayError):
    status = 405


class RequestTimeout(GatewayError):
    status = 408


class PayloadTooLarge(GatewayError):
    status = 413


class UnsupportedMediaType(GatewayError):
    status = 415


class TooManyRequests(GatewayError):
    status = 429


class Unavailable(GatewayError):
    status = 503


class ConfigError(Exception):
    """The deployment's configuration is missing or wrong; the function must not start."""
