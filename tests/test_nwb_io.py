"""NWB reading and writing: hand-computed bins, round trips and every bad input."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurovamp.data.modality import label_names, make_modality
from neurovamp.errors import DataError, OutputExistsError
from neurovamp.io.nwb import bin_spike_times, counts_to_spike_times, modality_to_nwb, read_nwb, write_nwb

# Three trials at 0, 10 and 20 s; "cue" is a float time column inside each trial,
# "reward" a float label (0.0 lies outside trial 1's interval, so it is not a time).
TRIALS = pd.DataFrame(
    {
        "start_time": [0.0, 10.0, 20.0],
        "stop_time": [1.0, 11.0, 21.0],
        "cue": [0.5, 10.5, 20.25],
        "odor": ["A", "B", "A"],
        "position": [1, 2, 3],
        "correct": [True, False, True],
        "reward": [0.0, 1.5, 0.0],
    }
)
SPIKES = [
    # unit 0: edges 0.0/0.01/10.03/20.04 go right; 0.05 is the window stop; -0.001, 20.06, 15 outside
    np.array([0.0, 0.01, 0.015, 0.05, -0.001, 0.049999, 10.03, 10.02, 20.04, 20.06, 15.0]),
    # unit 1: a double spike at 0.02, a spike at trial 1's start; around the cue: 0.48 (edge), 0.5,
    # 10.519, 20.23 (edge)
    np.array([0.02, 0.02, 10.0, 21.0, 0.48, 0.5, 10.519, 20.23]),
    # unit 2: fires, but never inside a window
    np.array([100.0]),
]
# window (0, 0.05) around start_time, 10 ms bins: counted by hand
EXPECTED_START = np.array(
    [
        [[1, 2, 0, 0, 1], [0, 0, 2, 0, 0], [0, 0, 0, 0, 0]],
        [[0, 0, 1, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
    ]
)
# window (-0.02, 0.02) around cue (0.5, 10.5, 20.25): bins start at 0.48, 10.48, 20.23
EXPECTED_CUE = np.array(
    [
        [[0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]],
        [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
        [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]],
    ]
)


@pytest.fixture(scope="module")
def known_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / "known.nwb"
    write_nwb(
        path,
        subject_id="rat7",
        spike_times=SPIKES,
        trials=TRIALS,
        unit_columns={"location": ["CA1", "CA1", "CA3"], "quality": [0.9, 0.5, 0.7]},
        unit_ids=[10, 11, 12],
        session_description="hand-made test session",
        notes="spike times exact",
        session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc),
    )
    return path


def _pynwb_file(path, *, trials=True, units=True, subject=True, spikes=((0.1,),)):
    """A raw NWB file built with pynwb (for files write_nwb refuses to make)."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject

    nwb = NWBFile(
        session_description="raw",
        identifier="raw",
        session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc),
        subject=Subject(subject_id="raw_rat") if subject else None,
    )
    if trials:
        nwb.add_trial(start_time=0.0, stop_time=1.0)
        nwb.add_trial(start_time=2.0, stop_time=3.0)
    if units:
        for unit_spikes in spikes:
            nwb.add_unit(spike_times=list(unit_spikes))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_read_counts_match_hand_computed_bins(known_file):
    da = read_nwb(known_file, window=(0.0, 0.05), bin_size=0.01)
    np.testing.assert_array_equal(da.values, EXPECTED_START)
    assert da.dtype == np.int32
    np.testing.assert_allclose(da["time"], [0.005, 0.015, 0.025, 0.035, 0.045])
    np.testing.assert_array_equal(da["event_time"], [0.0, 10.0, 20.0])
    np.testing.assert_array_equal(da["unit"], [10, 11, 12])
    assert da.attrs["animal"] == "rat7"
    assert da.attrs["event"] == "start_time"
    assert da.attrs["window_stop"] == pytest.approx(0.05)
    # auto labels: cue (a time inside each trial) and start/stop are not labels
    assert label_names(da) == ["odor", "position", "correct", "reward"]
    assert da["odor"].dtype.kind == "U" and list(da["odor"].values) == ["A", "B", "A"]
    assert da["position"].dtype.kind == "i"
    assert da["correct"].dtype == bool and da["correct"].values.tolist() == [True, False, True]
    assert da["location"].values.tolist() == ["CA1", "CA1", "CA3"]
    np.testing.assert_allclose(da["quality"], [0.9, 0.5, 0.7])


def test_read_negative_window_around_other_event(known_file):
    da = read_nwb(known_file, event="cue", window=(-0.02, 0.02), bin_size=0.01, labels=["odor"])
    np.testing.assert_array_equal(da.values, EXPECTED_CUE)
    np.testing.assert_allclose(da["time"], [-0.015, -0.005, 0.005, 0.015])
    np.testing.assert_array_equal(da["event_time"], [0.5, 10.5, 20.25])
    assert label_names(da) == ["odor"]


def test_bin_spike_times_unsorted_and_overlapping_windows():
    # unit 0 unsorted; the two trials' windows overlap, so 0.15 counts in both
    times = np.array([0.15, 0.05, 0.12, 0.3])
    ends = np.array([3, 4])
    edges = np.array([[0.0, 0.1, 0.2], [0.1, 0.2, 0.3]])
    counts = bin_spike_times(times, ends, edges)
    np.testing.assert_array_equal(counts, [[[1, 2], [0, 0]], [[2, 0], [0, 0]]])


def test_counts_to_spike_times_spreads_inside_bins():
    counts = np.array([[[0, 3], [1, 0]]])  # one trial, two units, two bins
    spikes = counts_to_spike_times(counts, np.array([5.0]), 0.1)
    np.testing.assert_allclose(spikes[0], [5.1 + 0.1 / 6, 5.15, 5.2 - 0.1 / 6])
    np.testing.assert_allclose(spikes[1], [5.05])


def test_subject_fallback_is_file_stem(tmp_path):
    path = _pynwb_file(tmp_path / "no_subject.nwb", subject=False)
    da = read_nwb(path, window=(0.0, 0.2), bin_size=0.1)
    assert da.attrs["animal"] == "no_subject"
    np.testing.assert_array_equal(da.values[:, 0, :], [[0, 1], [0, 0]])


def test_missing_label_lists_available_columns(known_file):
    with pytest.raises(DataError, match=r"known\.nwb.*no label column 'smell'.*odor, position"):
        read_nwb(known_file, labels=["odor", "smell"])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"bin_size": 0.0}, "bin_size must be a positive"),
        ({"bin_size": -0.01}, "bin_size must be a positive"),
        ({"window": (0.5, 0.5)}, "stop must be greater than start"),
        ({"window": (0.5, 0.1)}, "stop must be greater than start"),
        ({"window": (0.0, 0.055)}, "not a whole number of 0.01 s bins"),
        ({"event": "odor_onset"}, "no event column 'odor_onset'.*start_time, stop_time, cue"),
    ],
)
def test_bad_options(known_file, kwargs, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        read_nwb(known_file, **kwargs)
    assert "known.nwb" in str(info.value)


def test_not_nwb_and_truncated_and_missing(tmp_path, known_file):
    text = tmp_path / "notes.nwb"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match=r"notes\.nwb: not a readable NWB file"):
        read_nwb(text)
    truncated = tmp_path / "cut.nwb"
    truncated.write_bytes(known_file.read_bytes()[: known_file.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.nwb: not a readable NWB file"):
        read_nwb(truncated)
    with pytest.raises(DataError, match=r"absent\.nwb: NWB file not found"):
        read_nwb(tmp_path / "absent.nwb")


def test_missing_tables(tmp_path):
    with pytest.raises(DataError, match=r"no_trials\.nwb: no trials table"):
        read_nwb(_pynwb_file(tmp_path / "no_trials.nwb", trials=False))
    with pytest.raises(DataError, match=r"no_units\.nwb: no units table"):
        read_nwb(_pynwb_file(tmp_path / "no_units.nwb", units=False))


def test_nan_event_times_name_the_trials(tmp_path):
    trials = TRIALS.assign(cue=[0.5, np.nan, np.nan])
    path = write_nwb(
        tmp_path / "nan.nwb", subject_id="r", spike_times=SPIKES, trials=trials, session_description="x"
    )
    with pytest.raises(DataError, match=r"nan\.nwb: .*'cue' has NaN event times for 2 trial\(s\) \(trial ids 1, 2\).*"
                                         r"drop_missing_events"):
        read_nwb(path, event="cue")
    # left out on request, with a warning naming them; the kept trial is binned as without them
    with pytest.warns(UserWarning, match=r"trial ids 1, 2\): left out"):
        kept = read_nwb(path, event="cue", drop_missing_events=True)
    full = read_nwb(write_nwb(tmp_path / "full.nwb", subject_id="r", spike_times=SPIKES,
                              trials=TRIALS.assign(cue=[0.5, 1.0, 1.5]), session_description="x"), event="cue")
    assert kept["trial"].values.tolist() == [0]
    np.testing.assert_array_equal(kept.values, full.isel(trial=[0]).values)
    for name in ("event_time",) + tuple(c for c in kept.coords if c not in ("trial", "unit", "time")):
        assert kept[name].shape[0] == kept.sizes[kept[name].dims[0]]
    with pytest.raises(DataError, match="no trial has an event time"):
        read_nwb(write_nwb(tmp_path / "none.nwb", subject_id="r", spike_times=SPIKES,
                           trials=TRIALS.assign(cue=np.nan), session_description="x"), event="cue",
                 drop_missing_events=True)


def test_silent_unit_named_and_allowed(tmp_path):
    path = _pynwb_file(tmp_path / "silent.nwb", spikes=((0.1, 2.05), ()))
    with pytest.raises(DataError, match=r"silent\.nwb: 1 unit\(s\) have no spikes at all \(unit ids 1\).*allow_silent_units"):
        read_nwb(path, window=(0.0, 0.1), bin_size=0.1)
    da = read_nwb(path, window=(0.0, 0.1), bin_size=0.1, allow_silent_units=True)
    np.testing.assert_array_equal(da.values, [[[0], [0]], [[1], [0]]])


def test_write_nwb_refuses_overwrite_and_keeps_notes(tmp_path):
    from pynwb import NWBHDF5IO

    path = tmp_path / "w.nwb"
    kwargs = dict(subject_id="r", spike_times=SPIKES, trials=TRIALS, session_description="x")
    write_nwb(path, notes="first", **kwargs)
    with pytest.raises(OutputExistsError, match="already exists"):
        write_nwb(path, notes="second", **kwargs)
    write_nwb(path, notes="second", overwrite=True, **kwargs)
    with NWBHDF5IO(str(path), "r") as io:
        assert io.read().notes == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.nwb"]  # no temporary left over


def test_write_nwb_rejects_bad_trials(tmp_path):
    kwargs = dict(subject_id="r", spike_times=SPIKES, session_description="x")
    with pytest.raises(DataError, match=r"bad\.nwb: trials table lacks column\(s\) \['stop_time'\]"):
        write_nwb(tmp_path / "bad.nwb", trials=TRIALS.drop(columns="stop_time"), **kwargs)
    with pytest.raises(DataError, match="column 'odor' has missing values"):
        write_nwb(tmp_path / "bad.nwb", trials=TRIALS.assign(odor=["A", None, "B"]), **kwargs)
    assert not (tmp_path / "bad.nwb").exists()


def _random_modality(rng, *, event="odor_onset", window_start=-0.05):
    n_trials, n_units, n_bins = 7, 4, 10
    counts = rng.poisson(1.2, size=(n_trials, n_units, n_bins))
    counts[0, 0, 0] = 9  # many spikes in one bin
    return make_modality(
        counts,
        animal="ratX",
        bin_size=0.01,
        window_start=window_start,
        trial_ids=np.arange(n_trials) * 2 + 5,
        trial_labels={
            "odor": np.array(list("ABCDEAB")),
            "position": np.arange(n_trials) % 5 + 1,
            "in_sequence": np.arange(n_trials) % 3 > 0,
            "info_4": np.linspace(0.0, 1.0, n_trials) + 100.0,
        },
        event_time=3.0 + 1.5 * np.arange(n_trials),
        unit_ids=[3, 1, 4, 15],
        unit_coords={"location": np.array(["CA1", "CA1", "CA3", "CA1"])},
        event=event,
    )


@pytest.mark.parametrize(("event", "window_start"), [("odor_onset", -0.05), ("start_time", 0.0)])
def test_modality_nwb_round_trip(tmp_path, event, window_start):
    da = _random_modality(np.random.default_rng(0), event=event, window_start=window_start)
    window = (da.attrs["window_start"], da.attrs["window_stop"])
    first = modality_to_nwb(da, tmp_path / "a.nwb")
    back = read_nwb(first, event=event, window=window, bin_size=0.01, labels=label_names(da))
    xr.testing.assert_identical(back.drop_attrs(), da.drop_attrs())
    assert {k: v for k, v in back.attrs.items() if k != "source"} == {
        k: v for k, v in da.attrs.items() if k != "source"
    }
    # NWB -> xarray -> NWB -> xarray, with default (automatic) labels
    again = read_nwb(modality_to_nwb(back, tmp_path / "b.nwb"), event=event, window=window, bin_size=0.01)
    np.testing.assert_array_equal(again.values, da.values)
    assert set(label_names(again)) == set(label_names(da))
    with pytest.raises(OutputExistsError):
        modality_to_nwb(da, first)


def test_modality_to_nwb_rejects_overlap_and_fractions(tmp_path):
    da = _random_modality(np.random.default_rng(1))
    close = da.assign_coords(event_time=("trial", 0.05 * np.arange(da.sizes["trial"])))
    with pytest.raises(DataError, match="trial windows overlap"):
        modality_to_nwb(close, tmp_path / "o.nwb")
    with pytest.raises(DataError, match="whole numbers"):
        modality_to_nwb(da.copy(data=da.values + 0.5), tmp_path / "f.nwb")
    assert not list(tmp_path.iterdir())
