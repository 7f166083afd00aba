"""The one family of user-facing errors.

Every problem a user can fix (a bad config field, a missing keys file, an unreachable
target URL, a corrupt run folder) is raised as a :class:`HarnessError`. The CLI catches
it in exactly one place, prints ``str(error)`` as one line to stderr and exits with
``error.exit_code``. Nothing else in the harness calls ``sys.exit``.

Example::

    raise BadInput("keys.toml: keys[1].org: missing; every key needs the org it belongs to")
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error meant for a user rather than for a traceback."""

    exit_code = 2


class BadInput(HarnessError):
    """Config, keys file, URL, CLI flag, run folder or server reply is not usable (exit 2)."""

    exit_code = 2

