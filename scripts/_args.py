"""Argument types shared by the scripts (each script runs with scripts/ first on sys.path)."""

import argparse


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def run(main) -> None:
    """Run a script's ``main`` and exit with its status. A config error (an unknown scenario or
    searcher name, a bad override) ends with its one line and exit code 2, as in ``agenttts``;
    ``AGENTTTS_TRACEBACK=1`` shows the trace."""
    import os
    import sys

    try:
        code = main()
    except Exception as exc:
        from components.errors import user_error

        if os.environ.get("AGENTTTS_TRACEBACK") or not user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    raise SystemExit(code)
