"""`python -m sftdata.cli` runs the command line."""

from sftdata.cli import main

main()
