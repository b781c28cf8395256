"""Tests of neurovamp.data.pairing: splits, strategies, masks, filters, windows, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neurovamp.data.modality import make_modality
from neurovamp.data.pairing import SPLITS, PairedData, pair_trials, select_window
from neurovamp.errors import ConfigError, DataError


def encoded_counts(n_trials: int, n_units: int, n_bins: int, animal_code: int) -> np.ndarray:
    """Counts whose value encodes (animal, trial row, unit, bin): a*1e6 + t*1e4 + u*100 + b."""
    t, u, b = np.meshgrid(np.arange(n_trials), np.arange(n_units), np.arange(n_bins), indexing="ij")
    return animal_code * 1_000_000 + t * 10_000 + u * 100 + b


def modality(animal: str, odors, *, n_units: int = 3, n_bins: int = 25, code: int = 1,
             correct=None, trial_ids=None, window_start: float = 0.0, bin_size: float = 0.01):
    odors = np.asarray(odors)
    n = odors.size
    labels = {
        "odor": odors,
        "position": np.array([ord(o) - ord("A") + 1 for o in odors]),
        "correct": np.ones(n, bool) if correct is None else np.asarray(correct),
    }
    return make_modality(
        encoded_counts(n, n_units, n_bins, code).astype(float), animal=animal, bin_size=bin_size,
        window_start=window_start, trial_labels=labels, trial_ids=trial_ids,
    )


def tree_of(*mods) -> xr.DataTree:
    return xr.DataTree.from_dict({m.attrs["animal"]: m.to_dataset() for m in mods})


@pytest.fixture
def three_rats() -> xr.DataTree:
    """ratA: 20 x A-D; ratB: 12 A, 30 B, 8 C, 16 D, 10 E; ratC: 15 A, 15 B, 15 C, no D/E."""
    a = modality("ratA", np.repeat(list("ABCD"), 20), n_units=3, code=1)
    b = modality("ratB", np.repeat(list("ABCDE"), [12, 30, 8, 16, 10]), n_units=4, code=2)
    c = modality("ratC", np.tile(list("ABC"), 15), n_units=2, code=3)
    return tree_of(a, b, c)


@pytest.mark.parametrize("strategy", ["truncate", "resample"])
def test_no_leakage_between_splits(three_rats, strategy):
    paired = pair_trials(three_rats, strategy=strategy, seed=3)
    for m, animal in enumerate(paired.animals):
        split = paired.trial_split[animal]
        assert split.shape == (paired.counts[m].shape[0],)
        assert set(split.tolist()) <= set(SPLITS)  # every trial in exactly one split
        for s in SPLITS:
            rows = paired.pairs[s][:, m]
            assert np.all(split[rows[rows >= 0]] == s)  # pairs of s only use trials of s
        # over the epochs, resample pairs also stay inside their split
        for s in SPLITS:
            rows = paired.epoch_pairs(s, epoch=5)[:, m]
            assert np.all(split[rows[rows >= 0]] == s)


def test_split_is_stratified_by_condition(three_rats):
    paired = pair_trials(three_rats, split=(0.7, 0.15, 0.15), seed=0)
    odor = paired.modalities["ratA"]["odor"].values
    split = paired.trial_split["ratA"]
    for value in "ABCD":  # 20 trials each -> 14 / 3 / 3
        assert [np.sum((odor == value) & (split == s)) for s in SPLITS] == [14, 3, 3]
    odor_b, split_b = paired.modalities["ratB"]["odor"].values, paired.trial_split["ratB"]
    # 30 B -> 21 / 4.5 / 4.5 -> largest remainder: 21 / 5 / 4 ; 8 C -> 5.6/1.2/1.2 -> 6 / 1 / 1
    assert [np.sum((odor_b == "B") & (split_b == s)) for s in SPLITS] == [21, 5, 4]
    assert [np.sum((odor_b == "C") & (split_b == s)) for s in SPLITS] == [6, 1, 1]


def test_small_groups_and_zero_fractions():
    a = modality("ratA", ["A", "B", "B", "C", "C", "C"])
    b = modality("ratB", ["A", "B", "B", "C", "C", "C"], code=2)
    paired = pair_trials(tree_of(a, b), seed=1)
    odor, split = paired.modalities["ratA"]["odor"].values, paired.trial_split["ratA"]
    assert split[odor == "A"].tolist() == ["train"]  # 1 trial -> train
    assert sorted(split[odor == "B"].tolist()) == ["train", "val"]  # 2 -> train + val
    assert sorted(split[odor == "C"].tolist()) == ["test", "train", "val"]  # 3 -> one each
    no_val = pair_trials(tree_of(a, b), split=(0.8, 0.0, 0.2), seed=1)
    for animal in no_val.animals:
        assert not np.any(no_val.trial_split[animal] == "val")
    assert no_val.pairs["val"].shape == (0, 2) and no_val.n_samples("val") == 0
    only_train = pair_trials(tree_of(a, b), split=(1, 0, 0))
    assert all(np.all(v == "train") for v in only_train.trial_split.values())


def test_seed_reproducible(three_rats):
    one = pair_trials(three_rats, seed=7)
    two = pair_trials(three_rats, seed=7)
    other = pair_trials(three_rats, seed=8)
    for s in SPLITS:
        np.testing.assert_array_equal(one.pairs[s], two.pairs[s])
    for animal in one.animals:
        np.testing.assert_array_equal(one.trial_split[animal], two.trial_split[animal])
    assert any(not np.array_equal(one.trial_split[a], other.trial_split[a]) for a in one.animals)


def test_truncate_counts_are_the_minimum_per_condition(three_rats):
    paired = pair_trials(three_rats, strategy="truncate", conditions=["A", "B", "C", "D"], seed=2)
    assert paired.conditions == ("A", "B", "C", "D")
    for s in SPLITS:
        pairs, cond = paired.pairs[s], paired.pair_condition[s]
        for value in paired.conditions:
            counts = []
            for m, animal in enumerate(paired.animals):
                odor = paired.modalities[animal]["odor"].values
                n = np.sum((odor == value) & (paired.trial_split[animal] == s))
                if n:
                    counts.append(n)
            rows = pairs[cond == value]
            assert rows.shape[0] == min(counts)
            for m, animal in enumerate(paired.animals):
                present = rows[:, m][rows[:, m] >= 0]
                assert len(np.unique(present)) == present.size  # no trial used twice
                # every pair's trial really has the pair's condition
                assert np.all(paired.modalities[animal]["odor"].values[present] == value)


def test_truncate_is_shuffled_before_truncation(three_rats):
    # ratB's 21 train B trials are truncated to ratC's 11: which ones depends on the seed
    kept = [
        set(pair_trials(three_rats, seed=s).pairs["train"][
            pair_trials(three_rats, seed=s).pair_condition["train"] == "B"][:, 1].tolist())
        for s in (0, 1)
    ]
    assert kept[0] != kept[1]


def test_resample_pairs_use_every_trial_and_change_per_epoch(three_rats):
    paired = pair_trials(three_rats, strategy="resample", seed=4)
    pairs0 = paired.epoch_pairs("train", 0)
    np.testing.assert_array_equal(pairs0, paired.pairs["train"])
    cond = paired.pair_condition["train"]
    for value in paired.conditions:
        counts = [np.sum((paired.modalities[a]["odor"].values == value) & (paired.trial_split[a] == "train"))
                  for a in paired.animals]
        assert np.sum(cond == value) == max(counts)  # n_pairs = largest count
    for epoch in (0, 1, 2):
        pairs = paired.epoch_pairs("train", epoch)
        for m, animal in enumerate(paired.animals):
            train_rows = np.flatnonzero(paired.trial_split[animal] == "train")
            used = pairs[:, m][pairs[:, m] >= 0]
            assert set(used.tolist()) == set(train_rows.tolist())  # all trials used every epoch
            # and the condition of every row is kept across draws
            odor = paired.modalities[animal]["odor"].values
            assert np.all(odor[pairs[:, m][pairs[:, m] >= 0]] == cond[pairs[:, m] >= 0])
            # balanced draws with replacement: each trial floor/ceil times
            per_cond = {}
            for value in paired.conditions:
                sel = pairs[cond == value, m]
                if sel.size and sel[0] >= 0:
                    hits = np.bincount(sel, minlength=paired.counts[m].shape[0])[train_rows[odor[train_rows] == value]]
                    per_cond[value] = hits.max() - hits.min()
            assert all(v <= 1 for v in per_cond.values())
    assert not np.array_equal(paired.epoch_pairs("train", 1), paired.epoch_pairs("train", 2))
    np.testing.assert_array_equal(paired.epoch_pairs("train", 3), pair_trials(three_rats, strategy="resample", seed=4).epoch_pairs("train", 3))
    np.testing.assert_array_equal(paired.resample("train", np.random.default_rng(5)),
                                  paired.resample("train", np.random.default_rng(5)))
    # masks do not depend on the draw
    np.testing.assert_array_equal(paired.epoch_pairs("train", 1) >= 0, paired.mask("train"))


def test_fixed_strategies_resample_returns_the_fixed_pairs(three_rats):
    paired = pair_trials(three_rats, strategy="truncate")
    np.testing.assert_array_equal(paired.resample("train", np.random.default_rng(1)), paired.pairs["train"])
    np.testing.assert_array_equal(paired.epoch_pairs("train", 9), paired.pairs["train"])


def test_index_pairing_by_trial_id():
    odors = np.array(list("ABCD" * 10))
    ids = np.arange(100, 140)
    a = modality("ratA", odors, trial_ids=ids, code=1)
    keep_b = np.ones(40, bool)
    keep_b[[0, 5, 17]] = False  # trials 100, 105, 117 not recorded in ratB
    b = modality("ratB", odors[keep_b], trial_ids=ids[keep_b], code=2)
    paired = pair_trials(tree_of(a, b), strategy="index", seed=0)
    seen = []
    for s in SPLITS:
        pairs = paired.pairs[s]
        ids_a = np.where(pairs[:, 0] >= 0, paired.modalities["ratA"]["trial"].values[pairs[:, 0]], -1)
        ids_b = np.where(pairs[:, 1] >= 0, paired.modalities["ratB"]["trial"].values[pairs[:, 1]], -1)
        both = (ids_a >= 0) & (ids_b >= 0)
        np.testing.assert_array_equal(ids_a[both], ids_b[both])  # same trial id in a row
        assert set(ids_a[ids_b < 0].tolist()) <= {100, 105, 117}
        assert np.all(ids_a >= 0)
        np.testing.assert_array_equal(paired.pair_condition[s], odors[ids_a - 100])
        seen += ids_a.tolist()
    assert sorted(seen) == ids.tolist()  # every trial id in exactly one split
    # the same trial id is in the same split for both animals
    split_a = dict(zip(paired.modalities["ratA"]["trial"].values, paired.trial_split["ratA"]))
    split_b = dict(zip(paired.modalities["ratB"]["trial"].values, paired.trial_split["ratB"]))
    assert all(split_a[t] == split_b[t] for t in split_b)
    masked = np.concatenate([~paired.mask(s)[:, 1] for s in SPLITS]).sum()
    assert masked == 3


def test_index_pairing_rejects_inconsistent_labels():
    a = modality("ratA", list("ABAB"))
    b = modality("ratB", list("ABBB"), code=2)
    with pytest.raises(DataError, match="trial id 2 .*ratB"):
        pair_trials(tree_of(a, b), strategy="index")


def test_animal_lacking_a_condition_is_masked(three_rats):
    paired = pair_trials(three_rats, conditions=["A", "B", "C", "D", "E"])
    m_c = paired.animals.index("ratC")
    m_a = paired.animals.index("ratA")
    for s in SPLITS:
        cond = paired.pair_condition[s]
        mask = paired.mask(s)
        assert cond[mask[:, m_c] == False].tolist() == [v for v in cond if v in "DE"]  # noqa: E712
        assert np.all(~mask[cond == "E", m_a])
        assert np.all(mask[np.isin(cond, ["A", "B", "C"])])
        assert np.all(mask.any(axis=1))  # no pair is empty
    text = paired.summary()
    assert "ratC" in text and "ratA" in text and "E " in text


def test_filters_keep_matching_trials():
    correct = np.array([True, False] * 20)
    a = modality("ratA", np.repeat(list("AB"), 20), correct=correct)
    b = modality("ratB", np.repeat(list("AB"), 20), correct=~correct, code=2)
    paired = pair_trials(tree_of(a, b), filters={"correct": True})
    for animal in paired.animals:
        assert paired.modalities[animal]["correct"].values.all()
        assert paired.counts[paired.animals.index(animal)].shape[0] == 20
    # kept rows are the right trials: row values encode the original trial row
    np.testing.assert_array_equal(paired.counts[0][:, 0, 0] - 1_000_000, np.flatnonzero(correct) * 10_000)
    listed = pair_trials(tree_of(a, b), filters={"odor": ["A"], "correct": [True, False]})
    assert listed.conditions == ("A",)
    assert all(c.shape[0] == 20 for c in listed.counts)


def test_filter_errors():
    a = modality("ratA", list("ABAB"))
    b = modality("ratB", list("ABAB"), code=2, correct=[False] * 4)
    tree = tree_of(a, b)
    with pytest.raises(DataError, match=r"'in_sequence'.*'ratA'.*available labels.*odor"):
        pair_trials(tree, filters={"in_sequence": True})
    with pytest.raises(DataError, match="'ratB' has no trials left"):
        pair_trials(tree, filters={"correct": True})


def test_no_trials_left_lists_the_values_the_label_takes():
    a = modality("ratA", list("ABCD"))
    b = modality("ratB", list("CBDB"), code=2, correct=[False, True, False, True])
    tree = tree_of(a, b)
    with pytest.raises(DataError) as info:
        pair_trials(tree, filters={"odor": ["A"]})
    message = str(info.value)
    assert message == "animal 'ratB' has no trials left after filters {'odor': ['A']}; its 'odor' values: B, C, D"
    assert "\n" not in message
    # a filter that empties the animal only together with an earlier one: values among the trials left
    with pytest.raises(DataError, match=r"'ratB' has no trials left.*its 'correct' values among trials "
                                        r"passing the 'odor' filter: False$"):
        pair_trials(tree, filters={"odor": ["C", "D"], "correct": True})
    # many values: a few, sorted, and how many there are
    many = modality("ratC", [chr(ord("A") + k) for k in range(12)], code=3)
    few = r"'ratC'.*its 'position' values: 1, 2, 3, 4, 5, 6, 7, 8, \.\.\. \(12 values\)$"
    with pytest.raises(DataError, match=few):
        pair_trials(tree_of(many), filters={"position": 0})
    with pytest.raises(DataError, match="'ratA' has no trial label 'context'"):
        pair_trials(tree, by="context")


def test_conditions_restrict_and_order(three_rats):
    paired = pair_trials(three_rats, conditions=["D", "A"])
    assert paired.conditions == ("D", "A")
    for s in SPLITS:
        cond = paired.pair_condition[s]
        assert set(cond.tolist()) <= {"A", "D"}
        assert cond.tolist() == sorted(cond.tolist(), key=["D", "A"].index)
    with pytest.raises(DataError, match="condition 'F' of label 'odor' is not present in any animal"):
        pair_trials(three_rats, conditions=["A", "F"])
    with pytest.raises(DataError, match="'ratC' has no trials left.*its 'odor' values: A, B, C$"):
        pair_trials(three_rats, conditions=["D", "E"])
    with pytest.raises(ConfigError, match="duplicates"):
        pair_trials(three_rats, conditions=["A", "A"])
    positions = pair_trials(three_rats, by="position", conditions=[1, 2])
    assert positions.conditions == (1, 2)


def test_sub_windows_and_sizes(three_rats):
    paired = pair_trials(three_rats, window=10, stride=1)
    np.testing.assert_array_equal(paired.window_starts, np.arange(16))  # the paper's 16
    assert paired.input_dims == (30, 40, 20)
    assert paired.n_samples("train") == 16 * paired.pairs["train"].shape[0]
    pair, win = paired.samples("train")
    assert pair[:17].tolist() == [0] * 16 + [1] and win[:17].tolist() == list(range(16)) + [0]
    np.testing.assert_allclose(paired.window_centres[:2], [0.05, 0.06])
    whole = pair_trials(three_rats)
    assert whole.window == 25 and whole.window_starts.tolist() == [0] and whole.input_dims == (75, 100, 50)
    strided = pair_trials(three_rats, window=10, stride=5)
    assert strided.window_starts.tolist() == [0, 5, 10, 15]
    assert isinstance(paired, PairedData) and "ratB" in repr(paired)


def test_counts_are_float32_and_read_only(three_rats):
    paired = pair_trials(three_rats)
    assert all(c.dtype == np.float32 for c in paired.counts)
    with pytest.raises(ValueError):
        paired.counts[0][0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        paired.pairs["train"][0, 0] = 0


def test_configuration_errors(three_rats):
    longer = r"^sub-window of 26 bins \(window=26, CLI --subwindow\) is longer than the 25 bins of each trial$"
    with pytest.raises(ConfigError, match=longer):
        pair_trials(three_rats, window=26)
    with pytest.raises(ConfigError, match=r"window \(the sub-window length, CLI --subwindow\) must be"):
        pair_trials(three_rats, window=0)
    with pytest.raises(ConfigError, match="stride"):
        pair_trials(three_rats, window=10, stride=0)
    with pytest.raises(ConfigError, match=r"sum to 1, got \(0\.7, 0\.2, 0\.2\) \(sum 1\.1\)$"):
        pair_trials(three_rats, split=(0.7, 0.2, 0.2))
    with pytest.raises(ConfigError, match=r"sum to 1, got \(0\.8, 0\.3, 0\.1\) \(sum 1\.2\)$"):
        pair_trials(three_rats, split=np.array([0.8, 0.3, 0.1]))
    with pytest.raises(ConfigError, match="three fractions"):
        pair_trials(three_rats, split=(0.5, 0.5))
    with pytest.raises(ConfigError, match=r">= 0, got \(1\.2, -0\.2, 0\.0\)$"):
        pair_trials(three_rats, split=(1.2, -0.2, 0.0))
    with pytest.raises(ConfigError, match="train fraction"):
        pair_trials(three_rats, split=(0.0, 0.5, 0.5))
    with pytest.raises(ConfigError, match="strategy"):
        pair_trials(three_rats, strategy="nearest")
    with pytest.raises(ConfigError, match="seed"):
        pair_trials(three_rats, seed=-1)
    with pytest.raises(ConfigError, match="split must be one of"):
        pair_trials(three_rats).mask("validation")


def test_mismatched_bins_are_rejected():
    a = modality("ratA", list("ABAB"), n_bins=25)
    with pytest.raises(DataError, match="mismatched bins"):
        pair_trials(tree_of(a, modality("ratB", list("ABAB"), n_bins=30, code=2)))
    with pytest.raises(DataError, match="mismatched bins"):
        pair_trials(tree_of(a, modality("ratB", list("ABAB"), bin_size=0.02, code=2)))
    with pytest.raises(DataError, match="mismatched bins: time coordinates"):
        pair_trials(tree_of(a, modality("ratB", list("ABAB"), window_start=0.25, code=2)))
    with pytest.raises(DataError, match="DataTree"):
        pair_trials(a)


def test_select_window_cuts_and_relabels():
    a = modality("ratA", list("ABCD" * 3), n_bins=40, window_start=-0.1)
    b = modality("ratB", list("ABCD" * 3), n_bins=40, window_start=-0.1, code=2)
    cut = select_window(tree_of(a, b), {"ratA": 5, "ratB": 10}, 25)
    for animal, start in (("ratA", 5), ("ratB", 10)):
        counts = cut[animal]["counts"]
        original = tree_of(a, b)[animal]["counts"]
        np.testing.assert_array_equal(counts.values, original.values[:, :, start:start + 25])
        np.testing.assert_allclose(counts["time"].values, 0.01 * (np.arange(25) + 0.5))
        np.testing.assert_allclose(counts["time_from_event"].values, original["time"].values[start:start + 25])
        assert counts.attrs["window_start"] == 0.0
        assert counts.attrs["window_stop"] == pytest.approx(0.25)
        assert counts.attrs["window_offset"] == pytest.approx(-0.1 + 0.01 * start)
        assert counts.attrs["window_start_bin"] == start
        np.testing.assert_allclose(counts["time_from_event"], counts["time"] + counts.attrs["window_offset"])
    paired = pair_trials(cut, window=10)
    assert paired.n_bins == 25 and paired.n_windows == 16
    # a second cut keeps the time from the event and accumulates the offset
    again = select_window(cut, 3, 10)["ratB"]["counts"]
    np.testing.assert_allclose(again["time_from_event"], b["time"].values[13:23])
    assert again.attrs["window_start_bin"] == 13
    assert again.attrs["window_offset"] == pytest.approx(-0.1 + 0.13)
    # the input tree is unchanged
    assert tree_of(a, b)["ratA"]["counts"].sizes["time"] == 40


def test_select_window_errors():
    tree = tree_of(modality("ratA", list("AB"), n_bins=30), modality("ratB", list("AB"), n_bins=30, code=2))
    with pytest.raises(ConfigError, match="'ratB'.*outside its 30 bins"):
        select_window(tree, {"ratA": 0, "ratB": 10}, 25)
    with pytest.raises(ConfigError, match=r"no start bin for animals \['ratB'\]"):
        select_window(tree, {"ratA": 0}, 10)
    with pytest.raises(ConfigError, match="unknown animals"):
        select_window(tree, {"ratA": 0, "ratB": 0, "ratZ": 0}, 10)
    with pytest.raises(ConfigError, match="length"):
        select_window(tree, 0, 0)
    with pytest.raises(ConfigError, match="outside"):
        select_window(tree, -1, 10)


def test_works_on_a_dataset_from_make_dataset():
    from neurovamp.data.dataset import make_dataset

    a = modality("ratA", list("ABCD" * 5), n_bins=40)
    b = modality("ratB", list("ABCD" * 4), n_bins=40, code=2)
    tree = make_dataset([a, b])
    cut = select_window(tree, {"ratA": 10, "ratB": 15}, 25)
    assert cut.attrs == tree.attrs  # the root is kept
    paired = pair_trials(cut, window=10, conditions=list("ABCD"))
    assert paired.animals == ("ratA", "ratB") and paired.n_windows == 16
    np.testing.assert_array_equal(paired.counts[1][0], b.values[0, :, 15:40])
    with pytest.raises(DataError, match="has no 'counts'"):
        pair_trials(xr.DataTree.from_dict({"ratA": xr.Dataset({"lfp": ("x", [1.0])})}))
