"""Reading NWB files as other labs write them: other intervals tables, relative event times,
NaN stop times, electrodes-table locations, behaviour series, sessions without trials.

Every file is written here with pynwb, with spikes and behaviour at known times, so the
expected counts and bin values are computed by hand.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from neurovamp.cli import main
from neurovamp.data.dataset import animals, get_behavior, get_modality, load_dataset, save_dataset
from neurovamp.io.recordings import load_recordings
from neurovamp.data.pairing import bin_label, pair_trials
from neurovamp.errors import DataError
from neurovamp.io.nwb import read_nwb, read_nwb_dataset
from neurovamp.io.nwb_info import describe_nwb

#: Trials of the lab files: start times (s) and the pole-in time counted from each start.
STARTS = np.array([300.0, 310.0, 320.0, 330.0])
POLE_IN = np.array([2.0, 2.5, 3.0, 3.5])
CATEGORY = ["face", "house", "face", "house"]


def _lab_file(
    path: Path,
    *,
    subject: str = "m1",
    session_id: str | None = None,
    position_until: float = 400.0,
    quality: bool = True,
) -> Path:
    """A file in the conventions of other labs.

    Trials live in ``intervals/encoding_table`` (``stop_time`` NaN), ``pole_in_time`` is
    relative to ``start_time``; units reference the electrodes table for their location
    (CA1, CA1, ADn) and have no location column; ``acquisition/Position`` holds a
    SpatialSeries ``x`` = 2 * t metres sampled at 100 Hz half a period off the 0.1 s grid,
    from 0 to ``position_until`` s; ``epochs`` holds two epochs (sleep 0-100 s, run 300-340 s).
    """
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject

    nwb = NWBFile(
        session_description="lab-style file", identifier=str(uuid.uuid4()),
        session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc),
        subject=Subject(subject_id=subject, species="Mus musculus", sex="M", age="P90D", description="mouse"),
        session_id=session_id,
    )
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="shank0", description="shank", location="hippocampal formation", device=device)
    for location in ("CA1", "CA1", "ADn"):
        nwb.add_electrode(location=location, group=group)
    if quality:
        nwb.add_unit_column(name="quality", description="sorting quality")
    absolute = STARTS + POLE_IN
    spikes = [
        np.sort(np.concatenate([absolute + 0.05, [10.0, 50.0]])),  # CA1: 50 ms after each pole-in
        np.sort(np.concatenate([absolute + 0.25, [20.0]])),  # CA1: 250 ms after
        np.sort(np.concatenate([STARTS + 0.05, [30.0]])),  # ADn: 50 ms after each trial start
    ]
    for k, times in enumerate(spikes):
        extra = {"quality": "good" if k != 1 else "mua"} if quality else {}
        nwb.add_unit(spike_times=times, electrodes=[k], **extra)
    table = TimeIntervals(name="encoding_table", description="encoding trials")
    table.add_column(name="stimCategory", description="category shown")
    table.add_column(name="pole_in_time", description="pole in, seconds from start_time")
    for start, pole, category in zip(STARTS, POLE_IN, CATEGORY):
        table.add_row(start_time=start, stop_time=np.nan, stimCategory=category, pole_in_time=pole)
    nwb.add_time_intervals(table)
    nwb.add_epoch(start_time=0.0, stop_time=100.0, tags=["sleep"])
    nwb.add_epoch(start_time=300.0, stop_time=340.0, tags=["run"])
    t = (np.arange(int(position_until * 100)) + 0.5) / 100.0
    position = Position(name="Position")
    position.create_spatial_series(
        name="x", data=2.0 * t, timestamps=t, reference_frame="track start", unit="m", description="track position"
    )
    nwb.add_acquisition(position)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory) -> Path:
    return _lab_file(tmp_path_factory.mktemp("lab") / "m1.nwb")


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- info
def test_info_lists_tables_units_electrodes_and_series(lab_file, capsys):
    code, out, err = _run(["info", str(lab_file)], capsys)
    assert code == 0, err
    assert "encoding_table: 4 rows; columns start_time, stop_time, stimCategory, pole_in_time" in out
    assert "epochs: 2 rows; columns start_time, stop_time, tags[]" in out
    assert "units: 3; columns" in out and "locations ADn 1, CA1 2" in out  # from the electrodes table
    assert "electrodes by location: ADn 1, CA1 2" in out
    assert "Position (Position, acquisition/Position): series x" in out
    assert "no trials table in" in out and "--trials TABLE" in out and "--windows SECONDS" in out
    contents = describe_nwb(lab_file)
    assert contents["intervals"]["encoding_table"]["rows"] == 4
    assert contents["subject"] == "m1"


# ----------------------------------------------------------------------------- trials table and relative events
def test_trials_from_another_table_with_relative_events_and_nan_stop(lab_file):
    da = read_nwb(lab_file, trials="encoding_table", event="pole_in_time", event_relative_to="start_time",
                  window=(0.0, 0.3), bin_size=0.1)
    np.testing.assert_allclose(da["event_time"].values, STARTS + POLE_IN)
    assert da["stimCategory"].values.tolist() == CATEGORY
    np.testing.assert_array_equal(da.sel(unit=0).values, np.tile([1, 0, 0], (4, 1)))  # +50 ms
    np.testing.assert_array_equal(da.sel(unit=1).values, np.tile([0, 0, 1], (4, 1)))  # +250 ms
    np.testing.assert_array_equal(da.sel(unit=2).values, np.zeros((4, 3)))  # its spikes precede the event
    assert da.coords["location"].values.tolist() == ["CA1", "CA1", "ADn"]

    start = read_nwb(lab_file, trials="encoding_table", window=(0.0, 0.1), bin_size=0.1)  # start_time, NaN stops
    np.testing.assert_array_equal(start.sel(unit=2).values[:, 0], [1, 1, 1, 1])


def test_relative_looking_event_warns_and_names_the_option(lab_file):
    with pytest.warns(UserWarning, match=r"'pole_in_time' looks relative.*--event-relative-to start_time"):
        da = read_nwb(lab_file, trials="encoding_table", event="pole_in_time", window=(0.0, 0.3), bin_size=0.1)
    np.testing.assert_allclose(da["event_time"].values, POLE_IN)  # read as asked, on the session clock
    assert int(da.values.sum()) == 0


def test_absolute_events_do_not_warn(nwb_files, recwarn):
    read_nwb(nwb_files[0], event="odor_onset", window=(0.0, 0.2), bin_size=0.1)
    assert not [w for w in recwarn.list if "looks relative" in str(w.message)]


def test_trials_and_relative_bad_inputs(lab_file):
    with pytest.raises(DataError, match=r"m1\.nwb: no intervals table 'recognition_table'; intervals tables in the "
                                        r"file: encoding_table \(4 rows\), epochs \(2 rows\)"):
        read_nwb(lab_file, trials="recognition_table")
    with pytest.raises(DataError, match=r"m1\.nwb: no trials table.*encoding_table \(4 rows\).*--trials NAME"):
        read_nwb(lab_file)
    with pytest.raises(DataError, match=r"m1\.nwb: intervals table 'encoding_table' has no column 'trial_start' "
                                        r"for event_relative_to \(CLI: --event-relative-to\); available columns"):
        read_nwb(lab_file, trials="encoding_table", event="pole_in_time", event_relative_to="trial_start")


# ----------------------------------------------------------------------------- unit selection
def test_units_selected_by_electrode_location_and_column(lab_file):
    ca1 = read_nwb(lab_file, trials="encoding_table", units={"location": "ca1"}, window=(0.0, 0.1), bin_size=0.1)
    assert ca1["unit"].values.tolist() == [0, 1]
    assert ca1.coords["location"].values.tolist() == ["CA1", "CA1"]
    good = read_nwb(lab_file, trials="encoding_table", units={"quality": ["good"], "location": ["CA1", "ADn"]},
                    window=(0.0, 0.1), bin_size=0.1)
    assert good["unit"].values.tolist() == [0, 2]
    with pytest.raises(DataError, match=r"m1\.nwb: units location=CA3 matches no unit; location values: ADn, CA1"):
        read_nwb(lab_file, trials="encoding_table", units={"location": "CA3"})
    with pytest.raises(DataError, match=r"units table has no column 'depth'.*columns: quality, location"):
        read_nwb(lab_file, trials="encoding_table", units={"depth": "100"})


# ----------------------------------------------------------------------------- behaviour
def test_behavior_binned_beside_counts(lab_file):
    ds = read_nwb_dataset(lab_file, trials="encoding_table", event="pole_in_time", event_relative_to="start_time",
                          window=(0.0, 0.3), bin_size=0.1, behavior="Position")
    position = ds["position"]
    assert position.dims == ("trial", "time", "position_dim")
    assert position.attrs["unit"] == "m" and position.attrs["series"] == "acquisition/Position"
    assert position["position_dim"].values.tolist() == ["x"]
    centres = (STARTS + POLE_IN)[:, None] + np.array([0.05, 0.15, 0.25])[None, :]
    np.testing.assert_allclose(position.values[..., 0], 2.0 * centres, atol=1e-9)  # mean of 10 samples per bin
    np.testing.assert_allclose(ds["counts"]["position_x"].values, 2.0 * centres.mean(axis=1), atol=1e-9)  # label
    np.testing.assert_array_equal(ds["counts"].sel(unit=0).values, np.tile([1, 0, 0], (4, 1)))

    tree = load_recordings([lab_file], trials="encoding_table", window=(0.0, 0.3), bin_size=0.1, behavior=["Position/x"])
    assert get_behavior(tree, "m1", "x").shape == (4, 3, 1)


def test_behavior_interpolates_slow_series(tmp_path):
    """A series sampled more slowly than the bins: empty bins take the interpolation at their centre."""
    path = _lab_file(tmp_path / "m1.nwb")
    ds = read_nwb_dataset(path, trials="encoding_table", window=(0.0, 0.004), bin_size=0.001, behavior="Position")
    centres = STARTS[:, None] + (np.arange(4) + 0.5)[None, :] * 0.001
    np.testing.assert_allclose(ds["position"].values[..., 0], 2.0 * centres, atol=1e-9)


def test_behavior_bad_inputs_and_uncovered_trials(tmp_path, lab_file):
    with pytest.raises(DataError, match=r"m1\.nwb: no behaviour series 'Speed'; time series and containers in the "
                                        r"file: Position, x"):
        read_nwb_dataset(lab_file, trials="encoding_table", behavior="Speed")
    short = _lab_file(tmp_path / "short.nwb", position_until=325.0)
    with pytest.raises(DataError, match=r"short\.nwb: behaviour does not cover 1 of 4 trials \(trial ids 3; "
                                        r"'Position' \(acquisition/Position\) spans 0.005 to 324.995 s\); "
                                        r"pass drop_uncovered=True \(CLI: --drop-uncovered\)"):
        read_nwb_dataset(short, trials="encoding_table", window=(0.0, 0.3), bin_size=0.1, behavior="Position")
    with pytest.warns(UserWarning, match="left out"):
        ds = read_nwb_dataset(short, trials="encoding_table", window=(0.0, 0.3), bin_size=0.1, behavior="Position",
                              drop_uncovered=True)
    assert ds["trial"].values.tolist() == [0, 1, 2]
    assert np.isfinite(ds["position"].values).all()


def test_behavior_round_trips_through_a_saved_dataset(tmp_path, lab_file):
    tree = load_recordings([lab_file], trials="encoding_table", window=(0.0, 0.3), bin_size=0.1, behavior="Position")
    back = load_dataset(save_dataset(tree, tmp_path / "set.nc"))
    a, b = get_behavior(tree, "m1", "position"), get_behavior(back, "m1", "position")
    np.testing.assert_array_equal(a.values, b.values)
    assert b.attrs["unit"] == "m" and b["position_dim"].values.tolist() == ["x"]
    assert get_modality(back, "m1").identical(get_modality(tree, "m1"))
    with pytest.raises(DataError, match="no behaviour variable 'speed'; variables: position"):
        get_behavior(back, "m1", "speed")
    mixed = load_recordings([tmp_path / "set.nc"], labels=["stimCategory"])  # labels of a saved set, behaviour kept
    assert "position_x" not in mixed["m1"].to_dataset().coords and "position" in mixed["m1"].to_dataset().data_vars


# ----------------------------------------------------------------------------- windows
def test_windows_over_the_session_and_over_intervals(lab_file):
    session = read_nwb(lab_file, windows=10.0, bin_size=5.0)
    first, last = 10.0, 333.75  # first and last spike of any unit
    n = int(np.floor((last - first) / 10.0))  # 32 whole windows, [10, 330)
    assert session.sizes["trial"] == n == 32 and session.attrs["event"] == "window"
    np.testing.assert_allclose(session["event_time"].values, first + 10.0 * np.arange(n))
    assert int(session.values.sum()) == 16 - 3  # all spikes but 330.05, 333.55, 333.75
    epochs = read_nwb_dataset(lab_file, trials="epochs", windows=20.0, bin_size=10.0, behavior="Position")
    np.testing.assert_allclose(epochs["counts"]["event_time"].values, [0, 20, 40, 60, 80, 300, 320])
    assert epochs["counts"]["interval"].values.tolist() == [0, 0, 0, 0, 0, 1, 1]
    np.testing.assert_allclose(epochs["counts"]["position_x"].values,
                               2.0 * (epochs["counts"]["event_time"].values + 10.0), atol=1e-9)
    counts = epochs["counts"].sum(("unit", "time")).values
    assert counts.tolist() == [1, 2, 1, 0, 0, 6, 6]


def test_windows_bad_inputs(lab_file):
    with pytest.raises(DataError, match="windows must be a positive number of seconds"):
        read_nwb(lab_file, windows=0.0)
    with pytest.raises(DataError, match=r"window \(0.0, 1.0\) is not a whole number of 0.3 s bins"):
        read_nwb(lab_file, windows=1.0, bin_size=0.3)
    with pytest.raises(DataError, match=r"intervals of 'epochs' hold no whole window of 500.0 s"):
        read_nwb(lab_file, trials="epochs", windows=500.0, bin_size=100.0)


# ----------------------------------------------------------------------------- pairing by behaviour
def test_pair_by_position_bins_masks_unvisited_bins(tmp_path):
    a = _lab_file(tmp_path / "a.nwb", subject="a")
    b = _lab_file(tmp_path / "b.nwb", subject="b")
    tree = load_recordings([a, b], trials="epochs", windows=20.0, bin_size=10.0, behavior="Position")
    # animal b never visits the far end of the track: keep its sleep windows only
    b_only = tree["b"].to_dataset().isel(trial=[0, 1, 2, 3, 4])
    tree = tree.copy()
    tree["b"] = b_only
    binned = bin_label(tree, "position_x", 4)
    edges = binned["a"]["position_x"].attrs["bin_edges"]
    np.testing.assert_allclose(edges, np.linspace(20.0, 660.0, 5))
    # positions 20, 60, 100, 140, 180 (on the first inner edge: next bin), 620, 660
    assert get_modality(binned, "a")["position_x"].values.tolist() == [0, 0, 0, 0, 1, 3, 3]
    assert get_modality(binned, "b")["position_x"].values.tolist() == [0, 0, 0, 0, 1]
    paired = pair_trials(tree, by="position_x", pair_bins=4, split=(1.0, 0.0, 0.0))
    assert paired.conditions == (0, 1, 3)  # bin 2 was visited by nobody
    pairs = paired.pairs["train"]
    assert (pairs[np.asarray(paired.pair_condition["train"]) == 0] >= 0).all()
    masked = pairs[np.asarray(paired.pair_condition["train"]) == 3]
    assert (masked[:, 1] == -1).all() and (masked[:, 0] >= 0).all()  # b lacks the far bin
    with pytest.raises(DataError, match=r"needs a continuous \(float\) label, but 'interval' holds int64"):
        pair_trials(tree, by="interval", pair_bins=3)


# ----------------------------------------------------------------------------- sessions of one subject
def test_sessions_of_one_subject_are_distinct_animals(tmp_path):
    one = _lab_file(tmp_path / "day1.nwb", subject="m7", session_id="s1")
    two = _lab_file(tmp_path / "day2.nwb", subject="m7", session_id="s2")
    tree = load_recordings([one, two], trials="encoding_table", window=(0.0, 0.1), bin_size=0.1)
    assert animals(tree) == ["m7_s1", "m7_s2"]


# ----------------------------------------------------------------------------- CLI
def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, lab_file, capsys):
    bad = [
        (["--trials", "recognition_table"], "no intervals table 'recognition_table'"),
        (["--trials", "encoding_table", "--behavior", "Speed"], "no behaviour series 'Speed'"),
        (["--trials", "encoding_table", "--units", "location=CA3"], "matches no unit"),
        (["--trials", "encoding_table", "--units", "location"], "--units expects COL=VALUE"),
        (["--trials", "encoding_table", "--event", "pole_in_time", "--event-relative-to", "nope"], "no column 'nope'"),
    ]
    for options, message in bad:
        out_dir = tmp_path / "run"
        code, out, err = _run(["fit", str(lab_file), "--out", str(out_dir), *options], capsys)
        assert code == 2, (options, err)
        assert message in err and "m1.nwb" in err or "--units" in message
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not out_dir.exists()  # nothing written
        code, out, err = _run(["info", str(lab_file), *options], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_pair_bins_on_a_label_that_is_not_continuous(tmp_path, lab_file, capsys):
    out_dir = tmp_path / "run"
    code, out, err = _run(["fit", str(lab_file), "--out", str(out_dir), "--trials", "epochs", "--windows", "20",
                           "--bin", "10", "--pair-by", "interval", "--pair-bins", "3"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--pair-bins) needs a continuous (float) label, but 'interval' holds int64 values" in err
    assert not out_dir.exists()


def test_cli_info_windows_behavior(lab_file, capsys):
    code, out, err = _run(["info", str(lab_file), "--trials", "epochs", "--windows", "20", "--bin", "10",
                           "--behavior", "Position", "--units", "location=CA1"], capsys)
    assert code == 0, err
    assert "units 2, trials 7" in out
    assert "2 bins of 10000 ms from 0 s to 20 s around window" in out
    assert "behaviour position (acquisition/Position): dimensions x; m" in out
    assert "intervals tables:" not in out  # the file's contents only with --contents
    code, out, err = _run(["info", str(lab_file), "--trials", "epochs", "--windows", "20", "--bin", "10",
                           "--contents"], capsys)
    assert code == 0 and "encoding_table: 4 rows" in out and "units 3, trials 7" in out


def test_fit_records_recording_settings_and_rebuilds_the_same_pairs(tmp_path, capsys):
    from neurovamp.pipelines.fit import build_paired, read_run_info

    a = _lab_file(tmp_path / "a.nwb", subject="a")
    b = _lab_file(tmp_path / "b.nwb", subject="b")
    run = tmp_path / "run"
    code, out, err = _run(["fit", str(a), str(b), "--out", str(run), "--trials", "epochs", "--windows", "2",
                           "--bin", "1", "--behavior", "Position", "--units", "location=CA1,ADn",
                           "--pair-by", "position_x", "--pair-bins", "4", "--split", "0.6", "0.2", "0.2",
                           "--epochs", "1", "--no-progress"], capsys)
    assert code == 0, err
    info = read_run_info(run)
    assert info["data"]["recording"] == {"trials": "epochs", "behavior": ["Position"], "windows": 2.0,
                                         "units": {"location": ["CA1", "ADn"]}}
    assert info["pairing"]["pair_bins"] == 4
    paired = build_paired(info)  # what evaluate and impute do
    assert paired.pair_by == "position_x" and paired.conditions == (0, 1, 3)  # no window in bin 2
    tree = load_recordings([a, b], trials="epochs", windows=2.0, bin_size=1.0, behavior="Position")
    again = pair_trials(tree, by="position_x", pair_bins=4, split=(0.6, 0.2, 0.2))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(paired.pairs[split], again.pairs[split])
