"""Adversarial Lab on the command line: every capability of the pages as a scriptable command with --json.

Exit codes: 0 when the command ran (a failed attack is a result, not an error); 2 with one line on stderr for
bad input or arguments. Run `python cli.py -h` or `python cli.py COMMAND -h`. The commands live in the `commands`
package (one module each; its docstring says how to add one).
"""

from __future__ import annotations

import sys

from commands import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
