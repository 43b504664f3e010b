"""`python -m negforge.cli`: the same command line as the `negforge` script."""

from negforge.cli import app

if __name__ == "__main__":
    app()
