"""The consoles the commands print to.

On a terminal Rich fits tables to its width. Piped (a cron mail, `grep`, a file) Rich
would assume 80 columns and cut long cells with "…", so an operator grepping
`targets list` for a URL would not find it: there the width is unlimited and tables
keep their natural width.
"""

from __future__ import annotations

import sys

from rich.console import Console

#: Wide enough for any table row, narrow enough to keep Rich's layout cheap.
PIPED_WIDTH = 1000


def console(*, stderr: bool = False, highlight: bool = True) -> Console:
    """A console for the command's output (or its errors): emoji off, since Rich would
    turn "file:100:" into 💯 in an error line."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(stderr=stderr, soft_wrap=True, emoji=False, highlight=highlight, width=width)
