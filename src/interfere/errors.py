"""The one kind of error a user can fix: a bad rule or pattern, config value, flag, file, checkpoint or
request. Commands print its message on one line and exit 2 (:func:`interfere.cli.exit_on_user_error`);
the explorer answers 400 with it. Every other exception is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(ValueError):
    """A problem the user can fix; its message names the problem and, where there is one, the fix."""
