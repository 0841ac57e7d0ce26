"""What the absl scripts under experiments/ and tools/ share.

The library never reads flags; scripts pass their own `FlagValues` here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import flags


def flags_parser(flag_values: flags.FlagValues) -> Callable[[list[str]], list[str]]:
    """absl's flag parsing, but a bad flag is one `error:` line and exit status 2.

    Like a bad value caught by a script's configuration, so a caller sees
    the same kind of failure for every wrong flag. Use as
    `app.run(main, flags_parser=flags_parser(FLAGS))`.
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            return flag_values(argv)
        except flags.Error as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(2)

    return parse
