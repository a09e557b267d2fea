"""FIT-Connect support: a destination's (Zustellpunkt's) receiving adapter and reply path, the
sender's flow, and a Submission API simulator. See docs/fitconnect.md."""

from poststelle.adapters.fitconnect._client import (
    FitConnectClient,
    FitConnectError,
    FitConnectPermanentError,
    FitConnectTransientError,
)
from poststelle.adapters.fitconnect._config import FitConnectConnectionSettings
from poststelle.adapters.fitconnect._crypto import (
    CryptoError,
    KeyPair,
    authentication_tag,
    decrypt,
    encrypt,
    generate_key,
    load_key,
)
from poststelle.adapters.fitconnect._metadata import MetadataRejected, MetadataValidator
from poststelle.adapters.fitconnect._reply import (
    FITCONNECT_REPLY_CHANNEL,
    ReceivedReply,
    ReplyRefused,
    SentReply,
    receive_reply,
    reply_encryption_key,
    send_reply,
)
from poststelle.adapters.fitconnect._routes import RoutedDestination, RouteLookup, routing_api
from poststelle.adapters.fitconnect._sender import (
    OutgoingAttachment,
    SentSubmission,
    build_metadata,
    send_submission,
)
from poststelle.adapters.fitconnect._set import (
    ACCEPT_REPLY,
    ACCEPT_SUBMISSION,
    REJECT_REPLY,
    REJECT_SUBMISSION,
    SUBMIT_REPLY,
    SUBMIT_SUBMISSION,
    AuthenticationTags,
    Problem,
    SecurityEvent,
    read_event,
    security_event,
)

__all__ = [
    "ACCEPT_REPLY",
    "ACCEPT_SUBMISSION",
    "FITCONNECT_REPLY_CHANNEL",
    "REJECT_REPLY",
    "REJECT_SUBMISSION",
    "SUBMIT_REPLY",
    "SUBMIT_SUBMISSION",
    "AuthenticationTags",
    "CryptoError",
    "FitConnectClient",
    "FitConnectConnectionSettings",
    "FitConnectError",
    "FitConnectPermanentError",
    "FitConnectTransientError",
    "KeyPair",
    "MetadataRejected",
    "MetadataValidator",
    "OutgoingAttachment",
    "Problem",
    "ReceivedReply",
    "ReplyRefused",
    "RouteLookup",
    "RoutedDestination",
    "SecurityEvent",
    "SentReply",
    "SentSubmission",
    "authentication_tag",
    "build_metadata",
    "decrypt",
    "encrypt",
    "generate_key",
    "load_key",
    "read_event",
    "receive_reply",
    "reply_encryption_key",
    "routing_api",
    "security_event",
    "send_reply",
    "send_submission",
]
