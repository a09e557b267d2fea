"""Typed XTA errors: the caller decides by type whether to retry, park or give up."""

from __future__ import annotations

__all__ = [
    "FAULT_MESSAGE_ID_ALREADY_USED",
    "XtaCancelDenied",
    "XtaError",
    "XtaInvalidMessageId",
    "XtaParameterInvalid",
    "XtaPermanentError",
    "XtaPermissionDenied",
    "XtaServiceUnavailable",
    "XtaSyncAsyncMismatch",
    "XtaTechnicalProblem",
    "XtaTransientError",
]

# XTA-WS Fehlernummer 9024 "MessageID ist bereits vergeben": on sendMessage it means the server
# already accepted a message under this id, i.e. an earlier attempt succeeded.
FAULT_MESSAGE_ID_ALREADY_USED = "9024"


class XtaError(Exception):
    """Base of all XTA client errors.

    ``exception`` is the XTA exception element (e.g. ``PermissionDeniedException``) when the server
    sent one, ``code`` its XTA-WS Fehlernummer (e.g. ``9012``).
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        exception: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.exception = exception
        self.code = code

    def __str__(self) -> str:
        parts = [f"{self.operation}: {self.args[0]}"]
        if self.exception:
            parts.append(f"exception={self.exception}")
        if self.code:
            parts.append(f"code={self.code}")
        return " ".join(parts)


class XtaTransientError(XtaError):
    """Worth retrying: connection problems, timeouts, HTTP 5xx, server-side technical faults."""


class XtaPermanentError(XtaError):
    """Retrying will not help: the request or the account is wrong."""


class XtaTechnicalProblem(XtaTransientError):
    """``XTAWSTechnicalProblemException``: the server reports an internal problem."""


class XtaPermissionDenied(XtaPermanentError):
    """``PermissionDeniedException``: account locked, unknown, or not allowed for this reader."""


class XtaInvalidMessageId(XtaPermanentError):
    """``InvalidMessageIDException``: the server does not know the MessageID in this context."""


class XtaParameterInvalid(XtaPermanentError):
    """``ParameterIsNotValidException``: a parameter of the call is wrong (on ``cancelMessage``
    also a MessageID the server does not know: the WSDL declares no other fault for it)."""


class XtaCancelDenied(XtaPermanentError):
    """``CancelDeniedException``: the transport order can no longer be withdrawn (it had no
    ``NotBefore``, or its ``NotBefore`` has been reached)."""


class XtaSyncAsyncMismatch(XtaPermanentError):
    """``SyncAsyncException``: the message went to ``sendMessageSync`` but the reader's service
    is asynchronous only, or the other way round."""


class XtaServiceUnavailable(XtaPermanentError):
    """``lookupService`` said the reader does not offer the service a message is sent under:
    sending it would only produce a red transport report."""
