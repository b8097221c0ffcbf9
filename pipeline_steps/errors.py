"""Errors a user fixes by changing inputs or the environment: the CLI prints them in one line."""


class StepError(RuntimeError):
    """A step cannot run as configured (missing weights, unreachable hub, ...)."""
