"""A check the CLI tests share: bad input is refused with exit code 2 and one `error:` line naming the problem.

Its own module with a unique name (like tinynet.py): tests/ is on sys.path under pytest's default import mode.
"""

from __future__ import annotations

import cli


def refused(capsys, argv: list[str], words: str) -> None:  # noqa: ANN001 - pytest's capsys fixture
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert words in err, err
