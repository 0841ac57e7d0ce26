"""Error types of the project.

Every problem with user data is raised as a subclass of `EnhancerGanError`
whose message names the file (or flag) and what is wrong with it, so that a
user never has to read a stack trace from deep inside numpy to find out.
"""

from __future__ import annotations

import os


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
