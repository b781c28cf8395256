"""scripts/setup.sh: an old Python stops it before any install; its kernel has its own name.

Each test runs a copy of the script in a scratch "repository" so that nothing here (the
real .venv, the user's Jupyter folders) is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _scratch_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, repo / "scripts" / "setup.sh")
    return repo


def _fake_python(path: Path, version: str) -> Path:
    """An executable that answers every call like a Python of ``version`` printing its version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER") and k not in ("PYTHON", "VENV")}
    env["HOME"] = str(tmp_path / "home")
    env.pop("XDG_DATA_HOME", None)
    env.update(extra)
    return env


def test_an_old_python_stops_within_seconds_with_one_line(tmp_path):
    repo = _scratch_repo(tmp_path)
    old = _fake_python(tmp_path / "bin" / "python3.10", "3.10.13")
    start = time.perf_counter()
    done = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], env=_env(tmp_path, PYTHON=str(old)),
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Python >= 3.11" in lines[0] and "3.10.13" in lines[0] and "PYTHON=" in lines[0]
    assert not (repo / ".venv").exists()  # nothing was created, let alone installed
    assert elapsed < 10


def test_a_missing_python_names_the_variable(tmp_path):
    repo = _scratch_repo(tmp_path)
    done = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")],
                          env=_env(tmp_path, PYTHON="no-such-python3.99"), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "no-such-python3.99" in done.stderr and "PYTHON=" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_kernel_is_registered_as_neurovamp_and_other_kernels_stay(tmp_path):
    pytest.importorskip("ipykernel")
    repo = _scratch_repo(tmp_path)
    env = _env(tmp_path, VENV=sys.prefix)
    user_dir = subprocess.run([sys.executable, "-c", "import jupyter_core.paths as p; print(p.jupyter_data_dir())"],
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
    kernels = Path(user_dir) / "kernels"
    assert kernels.is_relative_to(tmp_path / "home")
    # the user's own default kernel, which an install as "python3" would replace
    mine = kernels / "python3" / "kernel.json"
    mine.parent.mkdir(parents=True)
    mine.write_text(json.dumps({"argv": ["/my/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                "display_name": "My Python 3", "language": "python"}))
    before = mine.read_bytes()

    subprocess.run(["bash", str(repo / "scripts" / "setup.sh"), "--kernel-only"], env=env,
                   capture_output=True, text=True, check=True, timeout=120)

    assert sorted(p.name for p in kernels.iterdir()) == ["neurovamp", "python3"]
    assert mine.read_bytes() == before
    spec = json.loads((kernels / "neurovamp" / "kernel.json").read_text())
    assert Path(spec["argv"][0]).parent == Path(sys.prefix) / "bin"
    assert "neurovamp" in spec["display_name"]


def test_notebooks_ask_for_the_neurovamp_kernel():
    notebooks = sorted((SETUP.parent.parent / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        spec = json.loads(path.read_text())["metadata"]["kernelspec"]
        assert spec["name"] == "neurovamp", path.name


def test_a_venv_of_an_old_python_is_made_again(tmp_path):
    """Every step runs against stand-in interpreters (they answer any call with success), so
    this checks the script's decisions, not pip: the old .venv goes, PYTHON makes a new one."""
    repo = _scratch_repo(tmp_path)
    old = _fake_python(repo / ".venv" / "bin" / "python", "3.10.13")
    (repo / ".venv" / "made-by-3.10").write_text("")
    new = tmp_path / "bin" / "python3.11"
    new.parent.mkdir(parents=True)
    new.write_text('#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; '
                   'touch "$3/made-by-3.11"; exit 0; fi\necho 3.11.7\n')
    new.chmod(0o755)
    done = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")],
                          env=_env(tmp_path, PYTHON=str(new), TORCH_INDEX_URL=""),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "runs Python 3.10.13; making it again" in done.stdout
    assert not (repo / ".venv" / "made-by-3.10").exists() and (repo / ".venv" / "made-by-3.11").exists()
    assert old.read_text().endswith("echo 3.11.7\n")  # .venv/bin/python is now the new interpreter's
