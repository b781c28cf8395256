"""Recording and pairing settings as values: defaults written once, checks, JSON round trip, 0.1 files."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from neurovamp.data.pairing import pair_trials
from neurovamp.data.settings import PAIRING_DEFAULTS, PairingSettings
from neurovamp.errors import ConfigError, DataError
from neurovamp.io.nwb import read_nwb, read_nwb_dataset
from neurovamp.io.recordings import load_recordings
from neurovamp.io.settings import RECORDING_DEFAULTS, RecordingSettings

LEGACY = Path(__file__).parent / "legacy" / "v0.1"


def _defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


# --------------------------------------------------------------------------- recording
def test_recording_defaults_are_the_readers_defaults():
    expected = {"event": "start_time", "window": (0.0, 0.5), "bin_size": 0.01, "labels": None,
                "allow_silent_units": False, "drop_missing_events": False, "trials": None,
                "event_relative_to": None, "units": None, "behavior": None, "windows": None,
                "drop_uncovered": False}
    assert RecordingSettings().load_kwargs() == expected and RECORDING_DEFAULTS == RecordingSettings()
    for reader in (read_nwb, read_nwb_dataset, load_recordings):
        defaults = _defaults(reader)
        assert {k: defaults[k] for k in defaults} == {k: expected[k] for k in defaults}, reader.__name__
    assert set(_defaults(load_recordings)) == set(expected)


def test_recording_settings_normalise_their_values():
    s = RecordingSettings(event="odor_onset", window=[0, 1], bin_size=np.float64(0.02), labels="odor",
                          behavior="Position", allow_silent_units=np.True_, units={"location": ("CA1", "CA3")})
    assert s.window == (0.0, 1.0) and type(s.window[0]) is float and s.bin_size == 0.02
    assert s.labels == ("odor",) and s.behavior == ("Position",) and s.allow_silent_units is True
    assert s.units == {"location": ["CA1", "CA3"]}
    assert s.replace(bin_size=0.05).bin_size == 0.05 and s.bin_size == 0.02
    with pytest.raises(AttributeError):
        s.event = "x"  # frozen


@pytest.mark.parametrize(
    ("change", "message"),
    [({"event": 3}, "event must be the name of a trials column, got 3"),
     ({"window": (0.0,)}, r"window must be 2 finite numbers, got \(0.0,\)"),
     ({"window": (0.0, float("nan"))}, "window must be 2 finite numbers"),
     ({"window": "0 1"}, "window must be 2 finite numbers, got '0 1'"),
     ({"bin_size": 0}, "bin_size must be a positive number of seconds, got 0"),
     ({"bin_size": "fast"}, "bin_size must be a finite number, got 'fast'"),
     ({"labels": ["odor", 3]}, r"labels must be trials column names \(text\), got \[3\]"),
     ({"allow_silent_units": "yes"}, "allow_silent_units must be true or false, got 'yes'"),
     ({"trials": 1}, "trials must be null or the name of an intervals table, got 1"),
     ({"units": "CA1"}, "units must be null or a mapping"),
     ({"units": {"location": []}}, "units must map unit column names to value"),
     ({"behavior": [1]}, r"behavior must be null or names of behaviour series, got \[1\]"),
     ({"windows": 0}, "windows must be null or a positive number of seconds, got 0")],
)
def test_recording_settings_refuse_bad_values_naming_the_field(change, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        RecordingSettings(**change)


def test_recording_settings_json_round_trip_writes_only_changed_options_under_recording():
    s = RecordingSettings(event="odor_onset", window=(0.0, 0.4), bin_size=0.05, labels=["odor", "correct"],
                          trials="encoding_table", units={"location": ["CA1"]}, drop_uncovered=True)
    data = s.to_json()
    assert data == {"event": "odor_onset", "window": [0.0, 0.4], "bin_size": 0.05, "labels": ["odor", "correct"],
                    "allow_silent_units": False, "drop_missing_events": False,
                    "recording": {"trials": "encoding_table", "units": {"location": ["CA1"]}, "drop_uncovered": True}}
    assert json.loads(json.dumps(data)) == data
    assert RecordingSettings.from_json(json.loads(json.dumps(data))) == s
    assert RecordingSettings().to_json()["recording"] == {}


@pytest.mark.parametrize("name", ["run", "run_interrupted"])
def test_recording_settings_read_a_frozen_0_1_run_json(name):
    path = LEGACY / name / "run.json"
    data = json.loads(path.read_text())["data"]  # no "recording" key: 0.1 had none
    s = RecordingSettings.from_json(data, source=path)
    assert s == RecordingSettings(event="odor_onset", window=(0.0, 0.4), bin_size=0.05,
                                  labels=("odor", "position", "correct"))
    assert {**s.to_json(), "paths": data["paths"]} == {**data, "recording": {}}


@pytest.mark.parametrize(
    ("change", "message"),
    [({"window": [0.0]}, r"^run.json: data.window must be 2 finite numbers, got \[0.0\]$"),
     ({"bin_size": -1}, "^run.json: data.bin_size must be a positive number of seconds, got -1$"),
     ({"recording": {"windows": "x"}}, "^run.json: data.recording.windows must be a finite number, got 'x'$"),
     ({"recording": {"colour": 1}}, r"^run.json: data.recording has unknown option\(s\) \['colour'\]"),
     ({"recording": []}, "^run.json: data.recording must be a mapping"),
     ({"event": None}, "^run.json: data.event must be the name of a trials column, got None$")],
)
def test_recording_settings_from_bad_json_name_file_and_field(change, message):
    data = {**json.loads((LEGACY / "run" / "run.json").read_text())["data"], **change}
    with pytest.raises(DataError, match=message):
        RecordingSettings.from_json(data, source="run.json")
    del data["bin_size"]
    with pytest.raises(DataError, match="^run.json: data.bin_size is missing"):
        RecordingSettings.from_json(data, source="run.json")


def test_recording_settings_from_options_names_unknown_options():
    s = RecordingSettings.from_options({"trials": "epochs"}, event="odor_onset")
    assert s.trials == "epochs" and s.event == "odor_onset"
    with pytest.raises(ConfigError, match=r"^recording: unknown option\(s\) \['colour'\]; options: \['event'"):
        RecordingSettings.from_options({"colour": "red"})


# --------------------------------------------------------------------------- pairing
def test_pairing_defaults_are_pair_trials_defaults():
    defaults = _defaults(pair_trials)
    assert defaults == PAIRING_DEFAULTS.pair_kwargs()
    assert defaults == {"by": "odor", "strategy": "truncate", "filters": None, "conditions": None,
                        "split": (0.7, 0.15, 0.15), "seed": 0, "window": None, "stride": 1, "pair_bins": None}


def test_pairing_settings_normalise_filters_and_conditions():
    s = PairingSettings(filters={"correct": np.True_, "odor": ("A", "B")}, conditions=np.array(["A", "B"]),
                        split=np.array([0.8, 0.2, 0.0]), seed=np.int64(3), subwindow=4, stride=2)
    assert s.filters == {"correct": [True], "odor": ["A", "B"]} and type(s.filters["correct"][0]) is bool
    assert s.conditions == ("A", "B") and s.split == (0.8, 0.2, 0.0) and s.seed == 3 and type(s.seed) is int
    assert PairingSettings(filters={}).filters is None and PairingSettings(conditions="A").conditions == ("A",)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"by": 1}, "by must be the name of a trial label, got 1"),
     ({"strategy": "nearest"}, "strategy must be one of"),
     ({"filters": ["correct"]}, "filters must be a mapping label -> allowed value"),
     ({"filters": {1: True}}, "filters: label names must be text, got 1"),
     ({"filters": {"correct": [None]}}, r"filters\['correct'\] must be a label value or a list of them"),
     ({"conditions": []}, "conditions must not be empty"),
     ({"conditions": ["A", "A"]}, r"conditions contain duplicates: \['A', 'A'\]"),
     ({"split": (0.5, 0.5)}, "split must be 3 finite numbers: three fractions"),
     ({"split": (0.7, 0.2, 0.2)}, r"split fractions must sum to 1, got \(0.7, 0.2, 0.2\) \(sum 1.1\)$"),
     ({"split": (1.2, -0.2, 0.0)}, "split fractions must be finite and >= 0"),
     ({"split": (0.0, 0.5, 0.5)}, "the train fraction must be > 0, got 0"),
     ({"seed": -1}, "seed must be a non-negative integer, got -1"),
     ({"seed": True}, "seed must be a non-negative integer, got True"),
     ({"subwindow": 0}, r"window \(the sub-window length, CLI --subwindow\) must be a positive integer"),
     ({"subwindow": 4, "stride": 0}, "stride must be a positive integer"),
     ({"stride": 2}, "stride .* needs subwindow"),
     ({"pair_bins": 1}, r"pair_bins \(CLI: --pair-bins\) must be an integer >= 2, got 1")],
)
def test_pairing_settings_refuse_bad_values_naming_the_field(change, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        PairingSettings(**change)


def test_pairing_settings_json_round_trip():
    s = PairingSettings(by="position", strategy="resample", filters={"correct": [True]}, conditions=[1, 2, 3],
                        split=(0.6, 0.2, 0.2), seed=7, subwindow=5, stride=2, pair_bins=None)
    data = s.to_json()
    assert data == {"by": "position", "strategy": "resample", "filters": {"correct": [True]}, "conditions": [1, 2, 3],
                    "split": [0.6, 0.2, 0.2], "seed": 7, "window": 5, "stride": 2, "pair_bins": None}
    assert PairingSettings.from_json(json.loads(json.dumps(data))) == s


@pytest.mark.parametrize("name", ["run", "run_interrupted"])
def test_pairing_settings_read_a_frozen_0_1_run_json(name):
    path = LEGACY / name / "run.json"
    data = json.loads(path.read_text())["pairing"]  # no "pair_bins": 0.1 had none
    s = PairingSettings.from_json(data, source=path)
    assert s == PairingSettings(by="odor", seed=1, subwindow=4, stride=2)
    assert s.to_json() == {**data, "pair_bins": None}


@pytest.mark.parametrize(
    ("change", "message"),
    [({"seed": "1"}, "^run.json: pairing.seed must be a non-negative integer, got '1'$"),
     ({"window": 0}, r"^run.json: pairing.window \(the sub-window length, CLI --subwindow\) must be"),
     ({"split": [0.0, 0.5, 0.5]}, "^run.json: pairing.split: the train fraction must be > 0, got 0$"),
     ({"stride": None}, "^run.json: pairing.stride must be a positive integer"),
     ({"filters": {"odor": []}}, r"^run.json: pairing.filters\['odor'\] must be a label value")],
)
def test_pairing_settings_from_bad_json_name_file_and_field(change, message):
    data = {**json.loads((LEGACY / "run" / "run.json").read_text())["pairing"], **change}
    with pytest.raises(DataError, match=message):
        PairingSettings.from_json(data, source="run.json")
    data.pop("seed")
    with pytest.raises(DataError, match="^run.json: pairing.seed is missing"):
        PairingSettings.from_json(data, source="run.json")
