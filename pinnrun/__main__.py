"""``python -m pinnrun ...``: the same as the ``pinnrun`` command."""

from pinnrun.cli import main

if __name__ == "__main__":
    main()
