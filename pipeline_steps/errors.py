"""Every error a user fixes by changing inputs, params or the environment, in one place.

The CLI prints a :class:`PipelineError` as one line (the message says what to change) and lets any
other exception keep its traceback: a ``KeyError`` or ``ValueError`` from deep inside a step is a
bug to report, not a user error.  Classes that replaced built-in exceptions keep them as a second
base, so ``except ValueError`` around a parser still catches a bad record.
"""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """Base of the project's own errors."""


class ParamsError(PipelineError, ValueError):
    """params.yaml (or an override) has a wrong key or value; the message names the key path."""


class SiteError(PipelineError, ValueError):
    """The SLURM site settings (profiles/slurm/site.yaml or SBATCH_*) are malformed."""


class InputError(PipelineError, ValueError):
    """An input file or folder exists but is not what the step needs (the message names it)."""


class MissingInput(PipelineError, FileNotFoundError):
    """An input a step reads is not there; the message says which stage writes it."""


class FormatError(InputError):
    """A native data file does not have the expected format: the message names the file and where."""

    def __init__(self, path: str | Path, where: str, message: str):
        self.path, self.where = str(path), where
        super().__init__(f"{path}: {where}: {message}" if where else f"{path}: {message}")


class UnsafeArchive(InputError):
    """An archive member would land outside the extraction folder (absolute path, ``..``, link)."""


class TrainingDiverged(PipelineError, FloatingPointError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class StepError(PipelineError, RuntimeError):
    """A step cannot run as configured (missing weights, unreachable hub, ...)."""


class FetchError(StepError):
    """Published weights could not be fetched; the message says how to place them by hand."""


class SourceUnavailable(StepError):
    """A gated or manual source the user must act on (the message says what to do)."""


class DownloadError(StepError):
    """A download that cannot succeed as configured (the message says why and what to do)."""


class AccessDenied(DownloadError):
    """The server refused the request (401/403): retrying will not help."""


class ChecksumMismatch(DownloadError):
    """A downloaded file's size or sha256 differs from the pinned one."""
