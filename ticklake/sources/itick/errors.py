"""Typed errors of the iTick client. Messages are actionable and never contain the token."""

from __future__ import annotations


class ITickError(RuntimeError):
    """Base class: anything the iTick source answered that ticklake cannot use."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None, code: object = None):
        super().__init__(message)
        self.endpoint, self.status, self.code = endpoint, status, code


class ITickAuthError(ITickError):
    """The token was missing or rejected (E002 / HTTP 401/403). Not retried."""


class ITickUnknownSymbolError(ITickError):
    """The source does not know the instrument code (E001). Not retried."""


class ITickQuotaError(ITickError):
    """Still rate-limited (HTTP 429 / 'your request is too much') after every retry."""


class ITickRequestError(ITickError):
    """The source rejected the request (bad kType, too many codes, unknown region, or an error code iTick does not
    document). An undocumented code in a 200 answer is asked again within max_retries; the others are not."""


class ITickServerError(ITickError):
    """5xx, timeouts or connection failures that outlived the retries."""


class ITickLocalError(ITickError):
    """The request could not even be sent (e.g. a header value HTTP forbids). Nothing reached the source; not
    retried."""


class ITickProtocolError(ITickError):
    """The answer was not the documented envelope {code, msg, data}."""


class InvalidSymbolError(ITickRequestError, ValueError):
    """An instrument code breaks the data dictionary's symbol rule; refused before any request is sent.

    Also a ValueError: the caller passed a bad argument, nothing was asked of the source."""
