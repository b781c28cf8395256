"""neurovamp._jsonfile: one numpy → JSON rule and one format/version check for every file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from neurovamp._jsonfile import check_versioned, json_safe, read_json, read_versioned, write_json, write_versioned
from neurovamp.errors import ConfigError, DataError, OutputExistsError

FROZEN = Path(__file__).parent / "legacy" / "v0.1"

NESTED = {
    "n": np.int64(3), "x": np.float32(0.5), "ok": np.True_, "nan": float("nan"), "inf": np.float64(-np.inf),
    "arr": np.array([[1, 2], [3, 4]], dtype=np.int16), "farr": np.array([1.5, np.nan]), "tuple": (1, "a", None),
    "text": np.str_("A"), 7: "int key", np.True_: "bool key", "path": Path("/data/rat1.nwb"),
    "deep": {"list": [np.uint8(255), (np.float64(2.25),)]},
}


def test_json_safe_converts_numpy_nan_tuples_paths_and_keys_as_written_by_hand():
    out = json_safe(NESTED)
    assert out == {
        "n": 3, "x": 0.5, "ok": True, "nan": None, "inf": None, "arr": [[1, 2], [3, 4]], "farr": [1.5, None],
        "tuple": [1, "a", None], "text": "A", "7": "int key", "True": "bool key", "path": "/data/rat1.nwb",
        "deep": {"list": [255, [2.25]]},
    }
    assert type(out["n"]) is int and type(out["ok"]) is bool and type(out["x"]) is float
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_json_safe_agrees_with_the_metrics_copy_it_is_to_replace():
    from neurovamp.analysis.evaluate import json_safe as metrics_json_safe

    value = {k: v for k, v in NESTED.items() if k != "path"}
    assert json_safe(value, default=str) == metrics_json_safe(value)


def test_json_safe_refuses_other_objects_naming_the_field_unless_given_a_default():
    with pytest.raises(ConfigError, match=r"^settings\.filters\.odor\[1\]: cannot be written as JSON \(a object\)"):
        json_safe({"filters": {"odor": ["A", object()]}}, where="settings")
    assert json_safe({"s": {1, 2}}, default=sorted) == {"s": [1, 2]}
    assert json_safe(complex(1, 2), default=str) == "(1+2j)"


def test_write_versioned_round_trips_atomically_and_never_overwrites_unasked(tmp_path):
    path = tmp_path / "sub" / "thing.json"
    write_versioned(path, {"values": np.arange(3), "score": np.nan}, "neurovamp-thing", 2)
    text = path.read_text()
    assert text.startswith('{\n  "format": "neurovamp-thing",\n  "version": 2,') and text.endswith("}\n")
    assert read_versioned(path, "neurovamp-thing", 2) == {
        "format": "neurovamp-thing", "version": 2, "values": [0, 1, 2], "score": None}
    with pytest.raises(OutputExistsError, match="thing.json: output already exists"):
        write_versioned(path, {}, "neurovamp-thing", 2)
    assert read_versioned(path, "neurovamp-thing", 2)["values"] == [0, 1, 2]  # untouched
    write_versioned(path, {"values": []}, "neurovamp-thing", 2, overwrite=True)
    assert read_json(path)["values"] == []
    assert [p.name for p in path.parent.iterdir()] == ["thing.json"]  # no temporary file left
    with pytest.raises(ValueError, match="format"):
        write_versioned(tmp_path / "x.json", {"format": "other"}, "neurovamp-thing", 2)


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = write_json(tmp_path / "a.json", {"a": 1})
    with pytest.raises(ConfigError, match=r"a\.json\.b: cannot be written as JSON"):
        write_json(path, {"b": object()}, overwrite=True)
    assert read_json(path) == {"a": 1}


@pytest.mark.parametrize(("content", "message"), [
    (None, r"x\.json: not found \(expected a neurovamp run description\)"),
    ("{not json", r"x\.json: not readable JSON \(.*\); expected a neurovamp run description"),
    ("[1, 2]", r"x\.json: not a neurovamp run description \(expected a JSON object with format 'neurovamp-run', got list\)"),
    ('{"version": 1}', r"x\.json: not a neurovamp run description \(field 'format' missing; expected 'neurovamp-run'\)"),
    ('{"format": "neurovamp-model", "version": 1}', r"field 'format' is 'neurovamp-model'; expected 'neurovamp-run'"),
    ('{"format": "neurovamp-run"}', r"without a valid field 'version' \(got None; this neurovamp reads version 1\)"),
    ('{"format": "neurovamp-run", "version": "1"}', r"without a valid field 'version' \(got '1'"),
    ('{"format": "neurovamp-run", "version": 3}', r"version 3 is not supported \(this neurovamp reads version 1; "
                                                  r"the file was written by a newer neurovamp, upgrade it\)$"),
    ('{"format": "neurovamp-run", "version": 0}', r"version 0 is not supported \(this neurovamp reads version 1\)$"),
])
def test_read_versioned_refuses_in_one_line_naming_file_and_field(tmp_path, content, message):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_versioned(path, "neurovamp-run", 1, what="neurovamp run description")
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_several_readable_versions():
    data = {"format": "f", "version": 2}
    assert check_versioned(data, "p", "f", (1, 2)) is data
    with pytest.raises(DataError, match=r"reads version 1, 2; the file was written by a newer"):
        check_versioned({"format": "f", "version": 5}, "p", "f", {2, 1})


@pytest.mark.parametrize(("name", "format"), [
    ("run/run.json", "neurovamp-run"), ("run_interrupted/run.json", "neurovamp-run"),
    ("run/metrics.json", "neurovamp-metrics"), ("model/config.json", "neurovamp-model"),
    ("run/model/config.json", "neurovamp-model"), ("demo/demo.json", "neurovamp-demo"),
    ("paper/paper.json", "neurovamp-paper-run"), ("paper/metrics.json", "neurovamp-paper-metrics"),
])
def test_the_files_neurovamp_0_1_wrote_pass_the_check(name, format):
    data = read_versioned(FROZEN / name, format, 1)
    assert data.get("neurovamp_version", "0.1.0") == "0.1.0"  # demo.json does not record it
    assert all(not isinstance(v, float) or math.isfinite(v) for v in data.values())


def test_a_0_1_checkpoint_passes_the_same_check():
    import torch

    state = torch.load(FROZEN / "run_interrupted" / "checkpoints" / "checkpoint.pt", weights_only=True)
    assert check_versioned(state, "checkpoint.pt", "neurovamp-checkpoint", 1)["epoch"] == 2


def test_allow_nan_keeps_nan_and_inf_and_they_read_back(tmp_path):
    value = {"depth": np.array([1.5, np.nan]), "inf": np.float32(np.inf), "n": np.int8(2)}
    out = json_safe(value, allow_nan=True)
    assert out["depth"][0] == 1.5 and math.isnan(out["depth"][1]) and out["inf"] == math.inf and out["n"] == 2
    path = write_versioned(tmp_path / "config.json", value, "neurovamp-thing", 1, allow_nan=True)
    assert '"depth": [\n    1.5,\n    NaN\n  ]' in path.read_text() and "Infinity" in path.read_text()
    back = read_versioned(path, "neurovamp-thing", 1)
    assert math.isnan(back["depth"][1]) and back["inf"] == math.inf
    assert write_json(tmp_path / "strict.json", value).read_text().count("null") == 2  # the default: NaN -> null
