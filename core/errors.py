"""Errors a user can act on. The CLI maps them to exit codes without a traceback."""

from __future__ import annotations


class ClientlensError(Exception):
    """A failure with a message meant for the user (exit 1)."""

    exit_code = 1


class InputError(ClientlensError):
    """Bad usage or bad input: a missing file, a contract violation, a bad spec (exit 2)."""

    exit_code = 2
