"""`python -m curator.cli`."""

from curator.cli import main

main()
