"""The one tree of phoneagent errors.

::

    PhoneagentError                (retryable: bool, hint: str)
    ├── ConfigError                settings that cannot work; fix the environment or .env
    ├── StackError                 the local LiveKit stack (install, start, health)
    │   ├── MissingToolError       a program or system library is not installed
    │   ├── BuildError             a Go build failed (its last log lines are in the message)
    │   ├── PortInUseError         a port the stack needs is taken (names the port and the process)
    │   └── ServiceStartError      a service died or missed its health deadline during start
    ├── TelephonyError             a LiveKit server API call failed (retryable when transient)
    │   └── EgressUnavailable      no egress took a recording request (egress is not running)
    ├── ControlPlaneError          the CLI could not use the control plane's HTTP API (down, wrong key)
    ├── StorageError               recording storage (S3) failed or is unreachable (retryable)
    ├── SharedModelsError          the worker's shared speech models refused a request or are gone
    └── RequestError               a client's request cannot be carried out (the API maps these to 4xx)
        ├── NotFound               no such resource for this tenant (404)
        ├── Conflict               a name is taken, or the resource is still in use (409)
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
    pass


class EgressUnavailable(TelephonyError):
    retryable = True


class ControlPlaneError(PhoneagentError):
    pass


class StorageError(PhoneagentError):
    retryable = True


class RequestError(PhoneagentError):
    status_code = 400


class NotFound(RequestError):
    status_code = 404


class Forbidden(RequestError):
    status_code = 403


class Conflict(RequestError):
    status_code = 409


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
