"""lora_nb: fine-tune LoRA adapters interactively in Jupyter."""
__version__ = "0.1.0"
