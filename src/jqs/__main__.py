"""`python -m jqs` is the `jqs` command."""

from jqs.cli import main

main()
