"""Typed exceptions: each botai SQLSTATE becomes one class, carrying the
server's message. "No funds", "slot taken" and "duplicate" are never
exceptions: the methods return them, as the original objects did."""

from __future__ import annotations

from typing import Optional


class BotaiError(Exception):
    """A call botai refused or could not make. `sqlstate` is the server's
    code (None when the error arose before the server answered)."""

    sqlstate: Optional[str]

    def __init__(self, message: str, sqlstate: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate


class InvalidArgument(BotaiError):
    """A bad argument (22023, 22P02 and the other 22xxx codes): nothing was written."""


class NullArgument(InvalidArgument):
    """A required argument was None (22004)."""


class OutOfRange(InvalidArgument):
    """A number outside what botai accepts (22003)."""


class NotFound(BotaiError):
    """The named object does not exist (P0002)."""


class ExtensionOutdated(BotaiError):
    """The database's botai objects are an older release than its library
    (55000): run `ALTER EXTENSION botai UPDATE` (`botai db migrate`)."""


class Busy(BotaiError):
    """A lock botai waits for is held too long (55P03, 55006)."""


class ResourceExhausted(BotaiError):
    """Shared memory or another server resource is full (53xxx, 54000)."""


class ReadOnly(BotaiError):
    """The server is a standby (25006): writes go to the primary."""


class PermissionDenied(BotaiError):
    """The role may not call this (42501)."""


class ConnectionLost(BotaiError):
    """The server could not be reached or the connection dropped (08xxx, 57P01)."""


def from_sqlstate(sqlstate: Optional[str], message: str) -> BotaiError:
    """The exception class for a SQLSTATE."""
    code = sqlstate or ""
    if code == "22004":
        cls: type[BotaiError] = NullArgument
    elif code == "22003":
        cls = OutOfRange
    elif code.startswith("22"):
        cls = InvalidArgument
    elif code == "P0002":
        cls = NotFound
    elif code == "55000":
        cls = ExtensionOutdated
    elif code in ("55P03", "55006", "57014"):
        cls = Busy
    elif code.startswith("53") or code == "54000":
        cls = ResourceExhausted
    elif code == "25006":
        cls = ReadOnly
    elif code == "42501":
        cls = PermissionDenied
    elif code.startswith("08") or code in ("57P01", "57P02", "57P03"):
        cls = ConnectionLost
    else:
        cls = BotaiError
    return cls(message, sqlstate)
