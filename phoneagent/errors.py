"""The one tree of phoneagent errors.

::

    PhoneagentError                (retryable: bool, hint: str)
    ├── ConfigError                settings that cannot work; fix the environment or .env
    ├── StackError                 the local LiveKit stack (install, start, health)
    │   ├── MissingToolError       a program or system library is not installed
    │   ├── BuildError             a Go build failed (its last log lines are in the message)
    │   ├── PortInUseError         a port the stack needs is taken (names the port and the process)
    │   └── ServiceStartError      a service died or missed its health deadline during start
    ├── TelephonyError             a LiveKit server API call failed (retryable when transient; ``code``
    │   │                          is LiveKit's error code, or ``unreachable``/``timeout``)
    │   ├── EgressUnavailable      no egress took a recording request (egress is not running)
    │   ├── LiveKitNotFound        LiveKit has no such room, trunk, rule or egress
    │   └── CallRejected           the phone side answered our INVITE with a final SIP response
    ├── ControlPlaneError          the CLI could not use the control plane's HTTP API (down, wrong key)
    ├── StorageError               recording storage (S3) failed or is unreachable (retryable)
    ├── ExtractionError            the post-call extraction's LLM failed (retryable: 5xx, 408, 429,
    │                              timeouts, network) or answered what the schema refuses
    ├── SharedModelsError          the worker's shared speech models refused a request or are gone
    └── RequestError               a client's request cannot be carried out (the API maps these to 4xx)
        ├── NotFound               no such resource for this tenant (404)
        ├── Conflict               a name is taken, or the resource is still in use (409)
        │   └── LiveKitRefused     LiveKit's own consistency rules refused the request (``code``)
        ├── Forbidden              a form without its CSRF token, or from another origin (403)
        └── InvalidField           a field's value is wrong for this use (422; ``field`` names it)

Every error carries a one-line message and a ``hint`` that tells the user what to do.
"""

from __future__ import annotations


class PhoneagentError(Exception):
    """Base of every error phoneagent raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, hint: str = "", retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(PhoneagentError):
    pass


class SharedModelsError(PhoneagentError):
    retryable = True


class StackError(PhoneagentError):
    pass


class MissingToolError(StackError):
    pass


class BuildError(StackError):
    pass


class PortInUseError(StackError):
    pass


class ServiceStartError(StackError):
    retryable = True


class TelephonyError(PhoneagentError):
    """Made only by ``phoneagent.telephony.client.livekit_errors``, the one place LiveKit's errors are
    read. ``no_response``: no server process took or answered the request (egress not running)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        retryable: bool | None = None,
        code: str = "",
        no_response: bool = False,
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self.code = code
        self.no_response = no_response


class EgressUnavailable(TelephonyError):
    retryable = True


class LiveKitNotFound(TelephonyError):
    pass


class CallRejected(TelephonyError):
    """A final SIP response (486 busy, 603 decline, 5xx, ...) to an outbound INVITE."""

    def __init__(
        self, message: str, *, code: str, sip_status_code: int, sip_status_reason: str | None
    ) -> None:
        super().__init__(message, code=code)
        self.sip_status_code = sip_status_code
        self.sip_status_reason = sip_status_reason


class ControlPlaneError(PhoneagentError):
    pass


class StorageError(PhoneagentError):
    retryable = True


class ExtractionError(PhoneagentError):
    """Made only by ``phoneagent.calls.extraction_llm``, the one place the extraction LLM's answers
    and failures are read."""


class RequestError(PhoneagentError):
    status_code = 400


class NotFound(RequestError):
    status_code = 404


class Forbidden(RequestError):
    status_code = 403


class Conflict(RequestError):
    status_code = 409


class LiveKitRefused(Conflict):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class QueueFull(RequestError):
    """Too much of a tenant's work is waiting already: come back when some of it is done."""

    status_code = 429
    headers = {"Retry-After": "30"}


class InvalidField(RequestError):
    status_code = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
