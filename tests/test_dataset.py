"""The multi-animal set: building, saving/loading NetCDF and loading recordings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurovamp.data.dataset import (
    animals,
    get_modality,
    load_dataset,
    make_dataset,
    save_dataset,
)
from neurovamp.data.modality import make_modality
from neurovamp.errors import DataError, OutputExistsError
from neurovamp.io.nwb import write_nwb
from neurovamp.io.recordings import load_recordings


def _modality(animal, n_units, *, seed=0, bin_size=0.01, window_start=0.0, n_bins=5):
    rng = np.random.default_rng(seed)
    n_trials = 4
    return make_modality(
        rng.poisson(2.0, size=(n_trials, n_units, n_bins)).astype(np.int32),
        animal=animal,
        bin_size=bin_size,
        window_start=window_start,
        trial_labels={
            "odor": np.array(["A", "B", "A", "C"]),
            "correct": np.array([True, False, True, True]),
            "position": np.array([1, 2, 1, 3]),
        },
        event_time=np.arange(n_trials) * 10.0,
        unit_coords={"location": np.array(["CA1"] * n_units)},
        event="odor_onset",
        source=f"{animal}.nwb",
    )


def _nwb(path, animal, spikes):
    """An NWB file with two trials at 0 s and 10 s (odors A, B) and the given units."""
    trials = pd.DataFrame(
        {"start_time": [0.0, 10.0], "stop_time": [1.0, 11.0], "odor": ["A", "B"], "correct": [True, False]}
    )
    return write_nwb(path, subject_id=animal, spike_times=spikes, trials=trials, session_description="t")


def test_make_dataset_nodes_and_modalities():
    mods = [_modality("zed", 3, seed=1), _modality("amy", 2, seed=2)]
    tree = make_dataset(mods)
    assert animals(tree) == ["zed", "amy"]  # insertion order, not sorted
    for da in mods:
        xr.testing.assert_identical(get_modality(tree, da.attrs["animal"]), da)
    assert set(tree["amy"].to_dataset().data_vars) == {"counts"}
    with pytest.raises(DataError, match="no animal 'bob' in the dataset; animals: zed, amy"):
        get_modality(tree, "bob")


def test_make_dataset_rejects_duplicates_and_mismatched_bins():
    with pytest.raises(DataError, match="duplicate animal id 'amy' in amy.nwb and amy.nwb"):
        make_dataset([_modality("amy", 2), _modality("amy", 3)])
    with pytest.raises(DataError, match="mismatched bins.*amy.*0.01 s.*bob.*0.02 s"):
        make_dataset([_modality("amy", 2), _modality("bob", 2, bin_size=0.02)])
    with pytest.raises(DataError, match="mismatched bins"):
        make_dataset([_modality("amy", 2), _modality("bob", 2, window_start=-0.05)])
    with pytest.raises(DataError, match="at least one animal"):
        make_dataset([])


def test_save_load_round_trip(tmp_path):
    mods = [_modality("zed", 3, seed=1), _modality("amy", 2, seed=2)]
    path = save_dataset(make_dataset(mods), tmp_path / "set.nc")
    tree = load_dataset(path)
    assert animals(tree) == ["zed", "amy"]
    for da in mods:
        back = get_modality(tree, da.attrs["animal"])
        xr.testing.assert_identical(back, da)
        assert back["odor"].dtype.kind == "U"
        assert back["location"].dtype.kind == "U"
        assert back["correct"].dtype == bool
        assert back["position"].dtype.kind == "i"
        assert back.attrs == da.attrs
        assert type(back.attrs["bin_size"]) is float
    with pytest.raises(OutputExistsError):
        save_dataset(tree, path)
    save_dataset(tree, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.nc"]


def test_load_dataset_rejects_foreign_files(tmp_path):
    plain = tmp_path / "plain.nc"
    xr.Dataset({"x": ("a", [1, 2])}).to_netcdf(plain, engine="h5netcdf")
    with pytest.raises(DataError, match=r"plain\.nc: not a neurovamp dataset"):
        load_dataset(plain)
    junk = tmp_path / "junk.nc"
    junk.write_text("hello")
    with pytest.raises(DataError, match=r"junk\.nc: not a readable NetCDF dataset"):
        load_dataset(junk)
    with pytest.raises(DataError, match=r"none\.nc: dataset file not found"):
        load_dataset(tmp_path / "none.nc")


def test_load_recordings_from_nwb_and_saved_sets(tmp_path):
    a = _nwb(tmp_path / "a.nwb", "amy", [np.array([0.05, 0.12, 10.3]), np.array([0.45, 0.5, 10.0])])
    b = _nwb(tmp_path / "b.nwb", "bob", [np.array([0.0, 10.49])])
    tree = load_recordings([a, b], window=(0.0, 0.5), bin_size=0.1)
    assert animals(tree) == ["amy", "bob"]
    # hand-computed: bins of 0.1 s from each trial start
    np.testing.assert_array_equal(
        get_modality(tree, "amy").values,
        [[[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], [[0, 0, 0, 1, 0], [1, 0, 0, 0, 0]]],
    )
    np.testing.assert_array_equal(get_modality(tree, "bob").values, [[[1, 0, 0, 0, 0]], [[0, 0, 0, 0, 1]]])

    saved = save_dataset(load_recordings(a, window=(0.0, 0.5), bin_size=0.1), tmp_path / "amy.nc")
    mixed = load_recordings([saved, b], window=(0.0, 0.5), bin_size=0.1, labels=["odor"])
    assert animals(mixed) == ["amy", "bob"]
    np.testing.assert_array_equal(get_modality(mixed, "amy").values, get_modality(tree, "amy").values)
    assert "correct" not in get_modality(mixed, "amy").coords
    with pytest.raises(DataError, match=r"amy\.nc: animal 'amy' has no label\(s\) \['smell'\]"):
        load_recordings([saved], labels=["smell"])
    with pytest.raises(DataError, match="mismatched bins"):
        load_recordings([saved, b], window=(0.0, 0.4), bin_size=0.1)
    with pytest.raises(DataError, match="duplicate animal id 'amy'"):
        load_recordings([saved, a], window=(0.0, 0.5), bin_size=0.1)


def test_load_recordings_sessions_of_one_subject_are_distinct_animals(tmp_path):
    a = _nwb(tmp_path / "a.nwb", "amy", [np.array([0.1])])
    a2 = _nwb(tmp_path / "a2.nwb", "amy", [np.array([0.2])])
    tree = load_recordings([a, a2], window=(0.0, 0.5), bin_size=0.1)
    assert animals(tree) == ["amy_a", "amy_a2"]  # subject_session (file stem: no session_id)
    np.testing.assert_array_equal(get_modality(tree, "amy_a").values[0, 0], [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(get_modality(tree, "amy_a2").values[0, 0], [0, 0, 1, 0, 0])
    with pytest.raises(DataError, match=r"duplicate animal id 'amy' in .*a\.nwb and .*a\.nwb"):
        load_recordings([a, a])  # the same session twice
    with pytest.raises(DataError, match="no recordings given"):
        load_recordings([])
