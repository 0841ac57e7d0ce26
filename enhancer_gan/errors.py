"""Error types of the project.

Every problem with user data is raised as a subclass of `EnhancerGanError`
whose message names the file (or flag) and what is wrong with it, so that a
user never has to read a stack trace from deep inside numpy to find out.
"""

from __future__ import annotations

import os
import re


class EnhancerGanError(Exception):
    """Base class of every error this project raises on purpose."""


class DataError(EnhancerGanError, ValueError):
    """A data file is malformed, truncated, or not what it claims to be.

    Attributes:
      path: the offending file (str), or None when the data did not come from a
        file (for example bytes handed in directly).
      problem: a short description of what is wrong.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        where = self.path if self.path is not None else "<in-memory data>"
        super().__init__(f"{where}: {problem}")


class BinvoxError(DataError):
    """A .binvox file cannot be decoded."""


class MeshError(DataError):
    """A mesh file (.off) cannot be read."""


class ConfigError(EnhancerGanError, ValueError):
    """A configuration value (usually from a flag) is invalid."""


# TensorFlow's own wording around the reason: function and node names with
# the device ({{function_node __wrapped__DecodePng_device_/job:...}}), node
# lists ([[{{node DecodePng}}]]), the op tail ([Op:DecodePng] name: ...), and
# tf.data's "Error in user-defined function passed to MapDataset:1
# transformation with iterator: Iterator::Root::ParallelMapV2:" preamble.
_TF_NOISE = (
    re.compile(r"\{\{[^{}]*\}\}"),
    re.compile(r"\[\[[^\[\]]*\]\]"),
    re.compile(r"\[Op:[^\]]*\].*", re.S),
    re.compile(r"Error in user-defined function passed to \S+ transformation with iterator: \S+:"),
)


def tensorflow_reason(error: BaseException) -> str:
    """What a TensorFlow error says, as one line without op, node or device names.

    For messages naming a file: `DataError(path, f"cannot decode view:
    {tensorflow_reason(e)}")` reads "...png: cannot decode view: Invalid PNG.
    Failed to initialize decoder." (Plain string work; TensorFlow is not
    imported.)

    Args:
      error: a tf.errors.OpError (its `message`), or any exception.

    Returns:
      the reason on one line; the exception's type name if nothing is left.
    """
    text = getattr(error, "message", None)
    text = text if isinstance(text, str) else str(error)
    for pattern in _TF_NOISE:
        text = pattern.sub(" ", text)
    return " ".join(text.split()) or type(error).__name__
