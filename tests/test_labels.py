"""Trial labels (:mod:`neurovamp.data.labels`): parsing COL=VALUE, typing text, matching, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from neurovamp.data.dataset import make_dataset
from neurovamp.data.labels import (
    coerce_label_value,
    coerce_label_values,
    describe_values,
    equals,
    label_kind,
    labels_to_load,
    matches,
    parse_assignments,
    sorted_values,
    value_list,
)
from neurovamp.data.modality import make_modality
from neurovamp.errors import ConfigError, DataError


def test_parse_assignments_merges_columns_and_keeps_order():
    parsed = parse_assignments(["odor=A,B", " correct = true ", "odor=C", "odor=B, A", "odor=D,,"])
    assert parsed == {"odor": ["A", "B", "C", "D"], "correct": ["true"]}
    assert parse_assignments(None) == {} and parse_assignments([]) == {}
    assert parse_assignments(["x=a=b"]) == {"x": ["a=b"]}  # only the first '=' separates


@pytest.mark.parametrize("item", ["odor", "=A", "odor=", "odor= , ", " =A"])
def test_parse_assignments_refuses_malformed_items_with_the_callers_message(item):
    with pytest.raises(ConfigError, match=r"^--condition '.*' must look like COL=VALUE$"):
        parse_assignments(["odor=A", item], message="--condition {item!r} must look like COL=VALUE")


def test_labels_to_load_adds_pairing_and_filter_labels_once():
    assert labels_to_load(None, "odor", ["correct"]) is None
    assert labels_to_load("position", "odor", ["correct", "odor"]) == ["position", "odor", "correct"]
    assert labels_to_load(["odor", "position"], "odor") == ["odor", "position"]
    with pytest.raises(ConfigError, match=r"labels must be trials column names \(text\), got \[3\]"):
        labels_to_load(["odor", 3], "odor")


def test_label_kind_of_typed_and_object_arrays():
    assert label_kind(np.array([True, False])) == "b"
    assert label_kind(np.array([1, 2], dtype=np.int64)) == "i"
    assert label_kind(np.array([1, 2], dtype=np.uint8)) == "u"
    assert label_kind(np.array([0.5])) == "f"
    assert label_kind(np.array(["A"])) == "U"
    assert label_kind(np.array([True, 1], dtype=object)) == "b"
    assert label_kind(np.array([3, "x"], dtype=object)) == "i"
    assert label_kind(np.array([2.5, None], dtype=object)) == "f"
    assert label_kind(np.array(["A", 1], dtype=object)) == "U"


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [("true", "b", True), ("Yes", "b", True), ("0", "b", False), (" n ", "b", False), ("3", "i", 3),
     ("-2", "u", -2), ("2.5", "f", 2.5), ("1e-3", "f", 0.001), ("A", "U", "A"), (" A ", "U", " A "),
     (np.int64(4), "i", 4), (True, "U", True)],
)
def test_coerce_label_value(text, kind, expected):
    value = coerce_label_value(text, kind, "lab")
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [("maybe", "b", "label 'lab' is true/false; cannot read 'maybe' as a boolean"),
     ("2.5", "i", "label 'lab' holds integers; cannot read '2.5' as one"),
     ("ten", "f", "label 'lab' holds numbers; cannot read 'ten' as one")],
)
def test_coerce_label_value_errors_name_label_and_text(text, kind, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        coerce_label_value(text, kind, "lab")
    with pytest.raises(DataError, match=f"^{message}$"):
        coerce_label_value(text, kind, "lab", error=DataError)


def _tree():
    def modality(animal, labels):
        n = len(next(iter(labels.values())))
        return make_modality(np.ones((n, 2, 3), dtype=np.int32), animal=animal, bin_size=0.1, window_start=0.0,
                             trial_labels=labels)

    return make_dataset([
        modality("ratA", {"odor": np.array(["A", "B"]), "correct": np.array([True, False])}),
        modality("ratB", {"odor": np.array(["A", "C"]), "position": np.array([1, 2])}),
    ])


def test_coerce_label_values_types_text_like_the_label_of_the_first_animal_that_has_it():
    tree = _tree()
    assert coerce_label_values(tree, "correct", ["true", "no"]) == [True, False]
    assert coerce_label_values(tree, "position", ["2"]) == [2]
    assert coerce_label_values(tree, "odor", ["C"]) == ["C"]
    with pytest.raises(ConfigError, match="cannot read 'two' as one"):
        coerce_label_values(tree, "position", ["two"])
    with pytest.raises(DataError, match=r"no animal has the trial label 'context'; available labels: "
                                        r"\['correct', 'odor', 'position'\]"):
        coerce_label_values(tree, "context", ["x"])


def test_matching_values_that_cannot_compare_match_nothing():
    odor = np.array(["A", "B", "C", "A"])
    assert matches(odor, ["A", "C"]).tolist() == [True, False, True, True]
    assert matches(odor, "B").tolist() == [False, True, False, False]
    assert matches(odor, [3]).tolist() == [False] * 4  # text against a number: no match, no error
    assert equals(np.array([1, 2, 1]), 1).tolist() == [True, False, True]
    assert equals(np.array([1, 2]), "1").tolist() == [False, False]
    assert matches(np.array([True, False]), np.array([True])).tolist() == [True, False]


def test_matching_without_regard_to_case_compares_text():
    location = np.array(["CA1", "ca3", "DG"], dtype=object)
    assert matches(location, ["ca1", "CA3"], ignore_case=True).tolist() == [True, True, False]
    assert matches(np.array([1, 2]), "1", ignore_case=True).tolist() == [True, False]
    assert matches(location, "ca1").tolist() == [False, False, False]  # exact by default


def test_value_list_sorted_values_and_describe_values():
    assert value_list("A") == ["A"] and value_list(np.int64(3)) == [3] and type(value_list(np.int64(3))[0]) is int
    assert value_list(("A", "B")) == ["A", "B"] and value_list(np.array([[1], [2]])) == [1, 2]
    assert sorted_values(np.array(["C", "A", "C", "B"])) == ["A", "B", "C"]
    assert sorted_values([2, "x", 2]) == [2, "x"]  # not comparable: order of appearance
    assert describe_values(np.array([], dtype=float)) == "none"
    assert describe_values(np.arange(10) % 3) == "0, 1, 2"
    assert describe_values(np.arange(10), limit=3) == "0, 1, 2, ... (10 values)"
