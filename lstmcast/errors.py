"""The one domain exception and its exit codes.

The core raises these with a message a user can act on; only the CLI turns
them into an exit code and a single line on stderr.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # anything unexpected: a bug, an OS error, training that diverged
EXIT_INPUT = 2  # bad option or bad input data
EXIT_RUN = 3  # a run directory that cannot be used
EXIT_BUSY = 4  # another lstmcast process is writing the same run directory or output
EXIT_ANOMALY = 5  # detect --fail-on-anomaly flagged at least one point (the output is still written)
EXIT_SIGINT = 130  # stopped by Ctrl-C (128 + SIGINT)
EXIT_SIGTERM = 143  # stopped by SIGTERM (128 + SIGTERM)
EXIT_PIPE = 141  # the reader of stdout closed the pipe (`| head`): ended quietly, as cat does (128 + SIGPIPE)


class LstmcastError(Exception):
    """An error the user can fix; `exit_code` is what the CLI exits with."""

    exit_code: int = EXIT_FAILURE


class InputError(LstmcastError):
    """Bad CSV, bad column, bad option value."""

    exit_code = EXIT_INPUT


class RunDirError(LstmcastError):
    """A run directory that is missing, corrupt, unsafe or from a newer format."""

    exit_code = EXIT_RUN


class Interrupted(LstmcastError):
    """Ctrl-C or SIGTERM stopped a command before it had anything to keep; exit 130 or 143."""

    exit_code = EXIT_SIGINT

    def __init__(self, message: str, exit_code: int = EXIT_SIGINT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BusyError(LstmcastError):
    """The run directory or output is locked by another lstmcast process."""

    exit_code = EXIT_BUSY
