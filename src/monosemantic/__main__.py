"""`python -m monosemantic ...` runs the command line, as the `monosemantic` script does."""
from monosemantic.cli import main

if __name__ == "__main__":
    main()
