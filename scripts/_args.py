"""Argument types shared by the scripts (each script runs with scripts/ first on sys.path)."""

import argparse


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n
