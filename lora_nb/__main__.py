"""`python -m lora_nb` runs the command line (hand-written)."""
from lora_nb.cli import main

if __name__ == "__main__": main()
