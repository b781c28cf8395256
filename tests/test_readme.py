"""The README's examples run verbatim, in order, as a new user types them on a fresh clone.

Every ```bash and ```python block of README.md is extracted and run in a scratch folder
whose ``.venv/bin/neurovamp`` and ``.venv/bin/python`` are this interpreter (with this
checkout on ``PYTHONPATH``), so the text itself is what runs. The two top commands
(set-up + demo, set-up + tests) are checked apart: the demo command in a slow test, the
set-up by tests/test_setup.py and CI itself.

Small settings: by default the epoch and posterior-draw counts written in the README are
replaced by small ones (each replacement must apply, so the README cannot drift away from
them); ``NEUROVAMP_README_FULL=1`` (or ``NEUROVAMP_SLOW=1``) runs the blocks exactly as written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

#: (text in the README, what quick runs use instead)
QUICK = {
    "python": [("epochs=200", "epochs=3")],
    "bash": [("--epochs 200", "--epochs 3"), ("--samples 200", "--samples 20")],
}


def _full() -> bool:
    return os.environ.get("NEUROVAMP_README_FULL") == "1" or os.environ.get("NEUROVAMP_SLOW") == "1"


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced bash/python block of README.md, in order."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    return [(lang, code) for lang, code in blocks if lang in ("bash", "python")]


def _user_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A scratch working folder with a ``.venv`` that is this interpreter, and its environment."""
    work = tmp_path / "clone"
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, command in (("python", f'exec "{sys.executable}" "$@"'),
                          ("neurovamp", f'exec "{sys.executable}" -m neurovamp "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{command}\n")
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["NEUROVAMP_DATA"] = str(tmp_path / "cache")  # the default data, generated on first use
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", TQDM_DISABLE="1")
    return work, env


def _run(lang: str, code: str, work: Path, env: dict[str, str], index: int) -> None:
    if lang == "python":
        script = work / f"readme_block_{index}.py"
        script.write_text(code)
        argv = [str(work / ".venv" / "bin" / "python"), script.name]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"README {lang} block {index} failed:\n{code}\n--- stderr ---\n{done.stderr[-3000:]}"


def _keys_of(example: dict, actual: dict, where: str = "metrics") -> None:
    """Every key of the README's metrics.json example is in the real file, recursively."""
    for key, value in example.items():
        assert key in actual, f"{where}: README shows {key!r}, metrics.json has {sorted(actual)}"
        if isinstance(value, dict):
            _keys_of(value, actual[key], f"{where}.{key}")


def test_the_readme_has_the_examples_this_test_runs():
    blocks = readme_blocks()
    top = [code for _, code in blocks if "scripts/setup.sh" in code]
    assert [c.strip() for c in top] == [
        "bash scripts/setup.sh && .venv/bin/neurovamp demo --out neurovamp-demo",
        "bash scripts/setup.sh && .venv/bin/python -m pytest -q",
    ]
    examples = [(lang, code) for lang, code in blocks if "scripts/setup.sh" not in code]
    assert [lang for lang, _ in examples][:2] == ["python", "bash"]  # the quick start, then more
    # the commands are the installed script, never a bare `neurovamp` a new shell cannot find
    for _, code in blocks:
        for line in code.splitlines():
            assert not re.match(r"\s*neurovamp\b", line), line


def test_readme_examples_run_verbatim_in_order(tmp_path):
    work, env = _user_folder(tmp_path)
    examples = [(lang, code) for lang, code in readme_blocks() if "scripts/setup.sh" not in code]
    if not _full():  # every quick replacement applies somewhere, once per block at most
        for lang, pairs in QUICK.items():
            for old, _ in pairs:
                counts = [code.count(old) for block_lang, code in examples if block_lang == lang]
                assert max(counts) == 1 and sum(counts) >= 1, f"README {lang} blocks and {old!r}: update QUICK"
    for index, (lang, code) in enumerate(examples):
        if not _full():
            for old, new in QUICK[lang]:
                code = code.replace(old, new)
        _run(lang, code, work, env, index)

    # what the blocks say they write is there, and the Python example kept the CLI's run
    from neurovamp.models.estimator import MultiAnimalModel

    metrics = json.loads((work / "runs" / "mmvm" / "metrics.json").read_text())
    assert metrics["model"] == "mmvm" and metrics["labels"] == ["odor", "position"]
    assert (work / "runs" / "mmvm" / "figures").is_dir() and (work / "rat3_E.nc").is_file()
    # the README's metrics.json keys are real
    text = README.read_text(encoding="utf-8")
    example = json.loads(re.search(r"^```json\n(.*?)^```", text, flags=re.S | re.M).group(1))
    example["animals"] = {"rat1": example["animals"]["rat1"]}
    _keys_of(example, metrics)
    # "the same fit": the command-line run has the Python example's weights
    python_model = MultiAnimalModel.load(work / "runs" / "mmvm-python", device="cpu")
    cli_model = MultiAnimalModel.load(work / "runs" / "mmvm" / "model", device="cpu")
    a, b = python_model.module_.state_dict(), cli_model.module_.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NEUROVAMP_SLOW") != "1", reason="set NEUROVAMP_SLOW=1 to run")
def test_readme_demo_command_runs_verbatim(tmp_path):
    """The first top command without its set-up part (that is CI's own first step)."""
    work, env = _user_folder(tmp_path)
    top = next(code for _, code in readme_blocks() if "demo" in code and "scripts/setup.sh" in code)
    command = top.strip().split("&&", 1)[1].strip()
    _run("bash", command, work, env, 0)
    assert (work / "neurovamp-demo" / "report.md").is_file()
