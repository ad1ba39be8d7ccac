"""Shared fixtures (hand-written)."""
import hashlib
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

@pytest.fixture(scope='session')
def embedded():
    from lora_nb.models import EMBEDDED_MODEL
    return EMBEDDED_MODEL

def tree_digest(folder: Path) -> dict:
    "name -> sha256 of every file under `folder` (to show an error changed nothing)."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob('*')) if p.is_file()}
