"""`python -m sftdata` runs the command line."""

from sftdata.cli import main

main()
