import sys

from scoring.cli import main

sys.exit(main(prog="python -m scoring"))
