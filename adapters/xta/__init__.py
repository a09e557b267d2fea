"""XTA 2.1.1 (XTA-Webservice) support: offline WSDL/XSD loading, a zeep client, a simulator and
the adapter glue the hub uses. See the module docstrings for details."""

from poststelle.adapters.xta._config import XtaConnectionSettings
from poststelle.adapters.xta._errors import (
    FAULT_MESSAGE_ID_ALREADY_USED,
    XtaCancelDenied,
    XtaError,
    XtaInvalidMessageId,
    XtaParameterInvalid,
    XtaPermanentError,
    XtaPermissionDenied,
    XtaServiceUnavailable,
    XtaSyncAsyncMismatch,
    XtaTechnicalProblem,
    XtaTransientError,
)
from poststelle.adapters.xta._model import (
    Attachment,
    FetchedMessage,
    MessageType,
    PartyId,
    ReportRecord,
    ServiceLookup,
    ServiceParameter,
    StatusList,
    TransportReport,
    TransportStatus,
    XtaMessage,
    XtaMetadata,
)
from poststelle.adapters.xta._schemas import PROJECT_WSDL, XtaSchemaLocator, XtaSchemaValidator
from poststelle.adapters.xta.client import SendOutcome, XtaClient

__all__ = [
    "FAULT_MESSAGE_ID_ALREADY_USED",
    "PROJECT_WSDL",
    "Attachment",
    "FetchedMessage",
    "MessageType",
    "PartyId",
    "ReportRecord",
    "SendOutcome",
    "ServiceLookup",
    "ServiceParameter",
    "StatusList",
    "TransportReport",
    "TransportStatus",
    "XtaCancelDenied",
    "XtaClient",
    "XtaConnectionSettings",
    "XtaError",
    "XtaInvalidMessageId",
    "XtaMessage",
    "XtaMetadata",
    "XtaParameterInvalid",
    "XtaPermanentError",
    "XtaPermissionDenied",
    "XtaSchemaLocator",
    "XtaSchemaValidator",
    "XtaServiceUnavailable",
    "XtaSyncAsyncMismatch",
    "XtaTechnicalProblem",
    "XtaTransientError",
]
