"""``python -m pixdrop``: the command line."""

from pixdrop.cli import main

main()
