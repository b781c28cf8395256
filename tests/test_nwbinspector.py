"""Everything neurovamp writes as NWB passes nwbinspector with no CRITICAL or BEST_PRACTICE_VIOLATION issue."""

from __future__ import annotations

import numpy as np
import pytest

from neurovamp.io.nwb import modality_to_nwb, read_nwb, write_nwb

nwbinspector = pytest.importorskip("nwbinspector", reason="nwbinspector is in the test extra (pip install -e .[test])")

SERIOUS = ("CRITICAL", "BEST_PRACTICE_VIOLATION")


def _serious(path) -> list[str]:
    messages = nwbinspector.inspect_nwbfile(nwbfile_path=str(path))
    return [f"{m.importance.name} {m.check_function_name}: {m.message}" for m in messages
            if m.importance.name in SERIOUS]


def test_simulator_and_modality_to_nwb_files_pass(nwb_files, tmp_path):
    assert _serious(nwb_files[0]) == []
    da = read_nwb(nwb_files[0], event="odor_onset", window=(0.0, 0.5), bin_size=0.01)  # neurovamp's 10 ms bins
    assert _serious(modality_to_nwb(da, tmp_path / "back.nwb")) == []
    # wider bins are coarser spike times, and the inspector says so (resolution > 10 ms)
    coarse = read_nwb(nwb_files[0], event="odor_onset", window=(0.0, 0.5), bin_size=0.1)
    issues = _serious(modality_to_nwb(coarse, tmp_path / "coarse.nwb"))
    assert [i.split(":")[0] for i in issues] == ["BEST_PRACTICE_VIOLATION check_units_resolution_is_valid"]


def test_converted_release_passes(tmp_path):
    from neurovamp.io.release import convert_release

    rng = np.random.default_rng(0)
    folder = tmp_path / "release" / "Mitt"
    folder.mkdir(parents=True)
    np.save(folder / "mitt_spike_data_binned.npy", rng.poisson(0.05, size=(4, 3, 400)).astype(np.float64))
    info = np.column_stack([[1, 0, 1, 1], [1, 1, 0, 1], [1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.save(folder / "mitt_trial_info.npy", info.astype(np.float64))
    written = convert_release(tmp_path / "release", tmp_path / "nwb", rats=["Mitt"], progress=False)
    assert _serious(written["Mitt"]) == []


def test_the_checks_catch_what_was_missing(tmp_path):
    """Without a resolution and subject fields the inspector does object (the test can fail)."""
    import pandas as pd

    trials = pd.DataFrame({"start_time": [0.0], "stop_time": [1.0]})
    path = write_nwb(tmp_path / "bare.nwb", subject_id="r", spike_times=[np.array([0.5])], trials=trials,
                     session_description="t", subject={"species": None, "sex": None, "age": None})
    issues = " ".join(_serious(path))
    assert "check_units_resolution_is_set" in issues and "check_subject_age" in issues
