"""`python -m reflow`: the `reflow` console command.

Inside scheduler jobs reflow runs `python -m reflow worker ...` and
`python -m reflow dispatch ...`; going through this module (which the package
never imports itself) keeps those runs free of runpy's double-import warning.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the console command, or the worker or dispatcher of a job."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["worker"]:
        from .worker import main as worker

        return worker(args[1:])
    if args[:1] == ["dispatch"]:
        from .dispatch import main as dispatch

        return dispatch(args[1:])
    from .cli import main as console

    return console(args)


if __name__ == "__main__":
    raise SystemExit(main())
