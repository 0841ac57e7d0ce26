"""What the absl scripts under experiments/ and tools/ share (not part of the library).

The library never reads flags, prints or exits: scripts pass their own
`FlagValues` here, and `flags_parser` also shows the library's log lines
(the `enhancer_gan` loggers, INFO and above) on stdout as plain lines, as
the scripts have always printed them.

Importing it (before TensorFlow, as every script does) hides TensorFlow's
C++ INFO and WARNING lines unless TF_CPP_MIN_LOG_LEVEL is set: a failing op
prints its node and device names there before the script's own one-line
error (`errors.tensorflow_reason` already keeps what TensorFlow said).
TF_CPP_MIN_LOG_LEVEL=0 shows them again.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LIBRARY_LOGGER = "enhancer_gan"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time of each line."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; always sys.stdout
        pass


def show_library_log() -> logging.Logger:
    """Shows the library's INFO (and louder) log lines on stdout, message only.

    They do not also go to absl's handler on the root logger (no second,
    prefixed copy on stderr). Calling it again changes nothing.
    """
    logger = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def flags_parser(flag_values: flags.FlagValues) -> Callable[[list[str]], list[str]]:
    """absl's flag parsing, but a bad flag is one `error:` line and exit status 2.

    Like a bad value caught by a script's configuration, so a caller sees
    the same kind of failure for every wrong flag. Once the flags parse, the
    library's log lines are shown on stdout (`show_library_log`). Use as
    `app.run(main, flags_parser=flags_parser(FLAGS))`.
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            rest = flag_values(argv)
        except flags.Error as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(2)
        show_library_log()
        return rest

    return parse
