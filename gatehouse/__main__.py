"""`python -m gatehouse`: the same as the `gatehouse` command."""

from __future__ import annotations

from gatehouse.cli import main

if __name__ == "__main__":
    main(prog_name="gatehouse")
