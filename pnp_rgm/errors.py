"""Typed errors. Every user-facing failure is a ``ValueError`` subclass with a one-line message
that names the offending value and what is valid; the CLI turns them into exit code 2."""

from __future__ import annotations


class PnpRgmError(ValueError):
    """Base class of every error pnp-rgm raises on bad input."""


class TaskError(PnpRgmError):
    """Unknown task/operator name, or bad task parameters."""


class ShapeError(PnpRgmError):
    """An image or tensor shape that does not fit the operator or task."""


class ImageError(PnpRgmError):
    """An image file that cannot be read or written (missing, corrupt, unsupported)."""


class ConfigError(PnpRgmError):
    """A configuration file or value that is invalid (unknown key, wrong type, out of range)."""


class OutputExistsError(PnpRgmError):
    """An output path exists and overwriting was not requested."""


class CheckpointError(PnpRgmError):
    """A checkpoint folder that is missing, incomplete or inconsistent."""


def as_number(what: str, value: object, kind: type = float) -> float | int:
    """``value`` as a ``float`` or a whole ``int`` (settings arrive as strings or YAML scalars from
    the CLI), or a :class:`TaskError` naming ``what`` and the value."""
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        f = float(value)  # type: ignore[arg-type]
        if kind is int and not f.is_integer():
            raise ValueError(value)
    except (TypeError, ValueError):
        raise TaskError(f"{what} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    return int(f) if kind is int else f


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure: numpy's MemoryError, torch's CUDA OOM or its CPU allocator's error
    (which commands report in one line instead of a traceback)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    msg = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)
