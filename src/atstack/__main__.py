"""``python -m atstack`` runs the command line."""

from atstack.cli import main

if __name__ == "__main__":
    main()
