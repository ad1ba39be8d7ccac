"""`python -m lora_nb` runs the command line (hand-written)."""
import sys
from lora_nb.cli import main

if __name__ == "__main__": sys.exit(main())
