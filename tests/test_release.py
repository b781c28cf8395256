"""Converting the binned five-rat release to NWB, on stand-in release folders."""

from __future__ import annotations

import numpy as np
import pytest

from neurovamp.errors import DataError, OutputExistsError
from neurovamp.io.nwb import read_nwb
from neurovamp.io.release import RELEASE_RATS, convert_release, find_release_rats

READ = dict(event="odor_onset", window=(-2.0, 2.0), bin_size=0.01)


def _make_rat(root, rat, n_trials, n_units, seed, *, extra_info=2, silent_unit=None):
    """Write one rat's stand-in files (float64 like the release); return counts and info."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.05, size=(n_trials, n_units, 400)).astype(np.float64)
    counts[0, 0, 199] = 7  # a burst right before onset
    counts[-1, -1, 399] = 3  # last bin
    if silent_unit is not None:
        counts[:, silent_unit, :] = 0
    info = np.column_stack(
        [
            rng.integers(0, 2, n_trials),  # correct
            rng.integers(0, 2, n_trials),  # in sequence
            np.arange(n_trials) % 5 + 1,  # position
            (np.arange(n_trials) * 2) % 5 + 1,  # odor
            rng.normal(size=(n_trials, extra_info)) * 1000,  # bookkeeping
        ]
    ).astype(np.float64)
    folder = root / rat
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{rat.lower()}_spike_data_binned.npy", counts)
    np.save(folder / f"{rat.lower()}_trial_info.npy", info)
    return counts, info


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    truth = {}
    for i, rat in enumerate(RELEASE_RATS):
        if rat == "SuperChris":  # the real unit count and bin count, few trials
            truth[rat] = _make_rat(root, rat, 6, 46, seed=i, silent_unit=5)
        else:
            truth[rat] = _make_rat(root, rat, 5, 3, seed=i)
    (root / "README.txt").write_text("not a rat")
    return root, truth


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory):
    root, _ = release
    out = tmp_path_factory.mktemp("nwb")
    return convert_release(root, out, progress=False)


def test_find_release_rats(release, tmp_path):
    root, _ = release
    assert find_release_rats(root) == list(RELEASE_RATS)
    assert find_release_rats(tmp_path) == []
    with pytest.raises(DataError, match="absent: release folder not found"):
        find_release_rats(tmp_path / "absent")


def test_round_trip_reproduces_counts_and_labels(release, converted):
    root, truth = release
    assert list(converted) == list(RELEASE_RATS)
    for rat, path in converted.items():
        assert path.name == f"{rat}.nwb"
        counts, info = truth[rat]
        da = read_nwb(path, allow_silent_units=True, **READ)
        np.testing.assert_array_equal(da.values, counts)
        assert da.attrs["animal"] == rat
        assert da.sizes["time"] == 400
        np.testing.assert_allclose(da["time"][[0, 200]], [-1.995, 0.005])
        assert da["odor"].values.tolist() == [" ABCDE"[int(c)] for c in info[:, 3]]
        np.testing.assert_array_equal(da["position"], info[:, 2].astype(int))
        assert da["position"].dtype.kind == "i"
        np.testing.assert_array_equal(da["in_sequence"], info[:, 1] == 1)
        assert da["correct"].dtype == bool
        np.testing.assert_array_equal(da["correct"], info[:, 0] == 1)
        np.testing.assert_array_equal(da["info_4"], info[:, 4])
        np.testing.assert_array_equal(da["info_5"], info[:, 5])
        np.testing.assert_array_equal(da["n_spikes"], counts.sum(axis=(0, 2)))
        np.testing.assert_allclose(da["event_time"], 10.0 * np.arange(len(info)) + 2.0)


def test_notes_and_silent_units(converted):
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(converted["SuperChris"]), "r") as io:
        nwb = io.read()
        assert "only known to within the 10 ms bin" in nwb.notes
        assert "Unit(s) 5 fire no spike" in nwb.notes
        assert nwb.subject.subject_id == "SuperChris"
        assert nwb.trials["stop_time"][0] - nwb.trials["start_time"][0] == pytest.approx(4.0)
    with pytest.raises(DataError, match=r"SuperChris\.nwb: 1 unit\(s\) have no spikes at all \(unit ids 5\)"):
        read_nwb(converted["SuperChris"], **READ)


def test_subset_and_no_overwrite(release, tmp_path):
    root, truth = release
    out = tmp_path / "out"
    written = convert_release(root, out, rats=["Mitt"], progress=False)
    assert list(written) == ["Mitt"] and sorted(p.name for p in out.iterdir()) == ["Mitt.nwb"]
    before = written["Mitt"].read_bytes()
    with pytest.raises(OutputExistsError, match=r"Mitt\.nwb: output already exists"):
        convert_release(root, out, rats=["Barat", "Mitt"], progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["Mitt.nwb"]  # nothing half-done
    assert written["Mitt"].read_bytes() == before
    convert_release(root, out, rats=["Mitt"], overwrite=True, progress=False)
    da = read_nwb(out / "Mitt.nwb", **READ)
    np.testing.assert_array_equal(da.values, truth["Mitt"][0])


def test_missing_folders(release, tmp_path):
    root, _ = release
    with pytest.raises(DataError, match="Nope: rat folder not found"):
        convert_release(root, tmp_path / "o", rats=["Nope"], progress=False)
    with pytest.raises(DataError, match="absent: release folder not found"):
        convert_release(tmp_path / "absent", tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="no rat folders found"):
        convert_release(tmp_path, tmp_path / "o", progress=False)


def _bad_rat(tmp_path, mutate):
    """A one-rat release whose files are altered by ``mutate(counts, info)`` (returning new ones)."""
    root = tmp_path / "rel"
    counts, info = _make_rat(root, "Stella", 4, 2, seed=0)
    counts, info = mutate(counts.copy(), info.copy())
    np.save(root / "Stella" / "stella_spike_data_binned.npy", counts)
    np.save(root / "Stella" / "stella_trial_info.npy", info)
    return root


def _set(array, index, value):
    array[index] = value
    return array


@pytest.mark.parametrize(
    ("mutate", "file", "pattern"),
    [
        (lambda c, i: (c[0], i), "spike_data", r"expected counts of shape \(trials, units, 400\), got \(2, 400\)"),
        (lambda c, i: (c[:, :, :399], i), "spike_data", r"got \(4, 2, 399\)"),
        (lambda c, i: (_set(c, (1, 1, 3), 0.5), i), "spike_data", "must be whole numbers"),
        (lambda c, i: (_set(c, (1, 1, 3), -1), i), "spike_data", "must be non-negative"),
        (lambda c, i: (_set(c, (1, 1, 3), np.nan), i), "spike_data", "1 NaN or inf"),
        (lambda c, i: (c, i[:3]), "trial_info", "3 trials, but stella_spike_data_binned.npy has 4"),
        (lambda c, i: (c, i[:, :3]), "trial_info", r"shape \(trials, >= 4\), got \(4, 3\)"),
        (lambda c, i: (c, _set(i, (2, 3), 6)), "trial_info", r"column 3 \(odor\).*trial\(s\) 2 hold 6"),
        (lambda c, i: (c, _set(i, (0, 3), 0)), "trial_info", r"column 3 \(odor\)"),
        (lambda c, i: (c, _set(i, (1, 0), 2)), "trial_info", r"column 0 \(correct\)"),
    ],
)
def test_bad_release_files(tmp_path, mutate, file, pattern):
    root = _bad_rat(tmp_path, mutate)
    with pytest.raises(DataError, match=pattern) as info:
        convert_release(root, tmp_path / "out", progress=False)
    assert f"stella_{file}" in str(info.value)
    assert not (tmp_path / "out" / "Stella.nwb").exists()


def test_missing_file(tmp_path):
    root = _bad_rat(tmp_path, lambda c, i: (c, i))
    (root / "Stella" / "stella_trial_info.npy").unlink()
    with pytest.raises(DataError, match=r"stella_trial_info\.npy: file not found"):
        convert_release(root, tmp_path / "out", progress=False)
