"""Data-parallel training on torch.distributed (CPU, gloo): ``neurovamp fit --nproc 2`` and torchrun.

Each test starts real processes (torch's elastic launcher); start-up dominates, so the
data are tiny and every launch is reused by several checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurovamp.cli import main
from neurovamp.errors import ConfigError
from neurovamp.pipelines.fit import load_run, read_run_info

REPO = Path(__file__).resolve().parents[1]
# every loss term of a DDP fit equals the one-process fit up to float rounding
RTOL = 1e-5


def fit_args(files, out, *extra) -> list[str]:
    return [
        "fit", *files, "--out", str(out), "--event", "odor_onset", "--window", "0", "0.4", "--bin", "0.05",
        "--label", "odor", "--pair-by", "odor", "--latent-dim", "2", "--hidden", "16", "--subwindow", "4",
        "--stride", "2", "--batch-size", "25", "--seed", "1", "--device", "cpu", "--no-progress", *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _losses(run: Path) -> pd.DataFrame:
    history = pd.read_csv(run / "history.csv")
    return history[[c for c in history.columns if c.startswith(("train/", "val/"))]]


@pytest.fixture(scope="module")
def single(nwb_files, tmp_path_factory):
    """The reference: one process, 4 epochs."""
    run = tmp_path_factory.mktemp("single") / "run"
    assert main(fit_args(nwb_files, run, "--epochs", "4")) == 0
    return run


def test_fit_nproc_2_equals_one_process_and_its_run_folder_is_read(nwb_files, single, tmp_path, capsys):
    run = tmp_path / "ddp"
    environment = dict(os.environ)
    assert main(fit_args(nwb_files, run, "--epochs", "4", "--nproc", "2")) == 0
    assert dict(os.environ) == environment  # the launcher leaves the process's environment as it found it
    assert "fitted mmvm on 3 animals" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # one run folder
    info = read_run_info(run)
    assert info["status"] == "complete"
    ref, ddp = _losses(single), _losses(run)
    assert list(ddp.columns) == list(ref.columns) and len(ddp) == 4
    np.testing.assert_allclose(ddp.to_numpy(), ref.to_numpy(), rtol=RTOL)
    assert not np.array_equal(ddp["train/loss"], ddp["train/loss"].iloc[::-1])  # it trained
    model, paired, _ = load_run(run, device="cpu")
    model_ref, _, _ = load_run(single, device="cpu")
    z, z_ref = model.latents(paired, "rat1"), model_ref.latents(paired, "rat1")
    np.testing.assert_allclose(z.values, z_ref.values, rtol=1e-3, atol=1e-4)
    # evaluate and impute read the DDP run folder
    assert main(["evaluate", str(run), "--label", "odor"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["animals"]) == {"rat1", "rat2", "rat3"}
    out = tmp_path / "rat3_A.nc"
    assert main(["impute", str(run), "--target", "rat3", "--condition", "odor=A", "--samples", "5",
                 "--out", str(out)]) == 0
    rates = xr.open_dataset(out)["rates"]
    assert rates.dims == ("unit", "time") and np.isfinite(rates.values).all()


def test_ddp_resumes_after_sigkill(nwb_files, single, tmp_path):
    """Kill a --nproc 2 fit (agent and workers) after its first checkpoints, resume it under DDP."""
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "neurovamp", *fit_args(nwb_files, run, "--epochs", "4", "--checkpoint-every", "1",
                                                          "--nproc", "2")]
    log = tmp_path / "killed.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)
        checkpoint = run / "checkpoints" / "checkpoint.pt"
        deadline = time.monotonic() + 240
        try:
            while not checkpoint.is_file() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            returncode = proc.poll()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert checkpoint.is_file(), (
        f"the run wrote no checkpoint before the deadline (exit code {returncode}):\n{log.read_text()[-3000:]}")
    from neurovamp.models.training import load_checkpoint

    epoch = load_checkpoint(checkpoint)["epoch"]
    assert 1 <= epoch < 4 and read_run_info(run)["status"] == "running"  # killed mid-run
    assert main(fit_args(nwb_files, run, "--epochs", "4", "--checkpoint-every", "1", "--nproc", "2",
                         "--resume")) == 0
    assert read_run_info(run)["status"] == "complete"
    np.testing.assert_allclose(_losses(run).to_numpy(), _losses(single).to_numpy(), rtol=RTOL)


def test_torchrun_launch_command(nwb_files, single, tmp_path):
    """The README's command: torchrun's own parser would take --event for its --event-log-handler."""
    run = tmp_path / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "--",
           "neurovamp", *fit_args(nwb_files, run, "--epochs", "4")]
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("fitted mmvm on 3 animals") == 1  # rank 0 reports
    assert read_run_info(run)["status"] == "complete"
    np.testing.assert_allclose(_losses(run).to_numpy(), _losses(single).to_numpy(), rtol=RTOL)


def test_nproc_is_checked_before_any_process_starts(nwb_files, tmp_path, capsys):
    assert main(fit_args(nwb_files, tmp_path / "a", "--epochs", "1", "--nproc", "0")) == 2
    assert "nproc must be a positive integer" in capsys.readouterr().err
    assert main(fit_args(nwb_files, tmp_path / "b", "--epochs", "1", "--nproc", "2", "--compile")) == 2
    assert "not supported with data-parallel training" in capsys.readouterr().err
    from neurovamp.models.distributed import check_nproc

    with pytest.raises(ConfigError):
        check_nproc(True)
