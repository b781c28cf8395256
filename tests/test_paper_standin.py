"""The gain stand-in of ``benchmarks/paper_standin.py`` (issue 10) plants what it says it plants."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_standin.py"


@pytest.fixture(scope="module")
def standin():
    spec = importlib.util.spec_from_file_location("paper_standin", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rat(standin, seed=0, n_units=30, n_trials=120):
    return standin.make_gain_rat("Rat", n_units, n_trials, 225, np.random.default_rng(seed), return_rates=True)


def test_gain_rates_baseline_and_window(standin):
    counts, info, rates = _rat(standin)
    hz = rates / standin.BIN_SIZE
    firing = hz.max(axis=(0, 2)) > 0
    assert firing.sum() == 30 - 2  # two silent units
    # outside the first 600 ms after onset every trial's rate is the unit's baseline (times the trial-noise mean)
    noise = np.exp((0.2**2 + 0.1**2) / 2)
    outside = np.r_[0:200, 260:400]
    base = hz[:, firing][:, :, outside] / noise
    assert np.allclose(base, base[:1, :, :1])
    assert base.min() >= 0.5 - 1e-9 and base.max() <= 6.0 + 1e-9
    # inside it, responsive units differ between odors, and only there
    odor = info[:, 3].astype(int)
    inside = hz[:, :, 200:260]
    by_odor = np.stack([inside[odor == o].mean(axis=(0, 2)) for o in (1, 2, 3, 4)])
    responsive = np.ptp(by_odor, axis=0) > 1e-9
    assert 0.4 < responsive[firing].mean() < 0.95
    assert np.allclose(inside[:, ~responsive], inside[:1, ~responsive])
    # counts are Poisson draws around the rates: the mean count matches the mean rate
    assert counts.mean() == pytest.approx(rates.mean(), rel=0.1)
    assert np.all(counts[:, ~firing] == 0)


def test_gain_rats_share_only_the_odor_and_are_seeded(standin):
    a = _rat(standin, seed=1)
    b = _rat(standin, seed=2)
    again = _rat(standin, seed=1)
    assert np.array_equal(a[0], again[0]) and np.array_equal(a[1], again[1])
    with np.errstate(invalid="ignore", divide="ignore"):  # silent units: 0 / 0
        gain_a = np.log(a[2][:, :, 230] / a[2][:, :, 100])
        gain_b = np.log(b[2][:, :, 230] / b[2][:, :, 100])
    # per-odor gain profiles of two rats are unrelated (independent draws)
    oa, ob = a[1][:, 3].astype(int), b[1][:, 3].astype(int)
    ma = np.stack([np.nan_to_num(gain_a[oa == o].mean(axis=0)) for o in (1, 2, 3, 4)])
    mb = np.stack([np.nan_to_num(gain_b[ob == o].mean(axis=0)) for o in (1, 2, 3, 4)])
    assert not np.allclose(ma, mb)


def test_write_standin_gain_layout(standin, tmp_path):
    units = {"Barat": 6, "Mitt": 5}
    trials = {"Barat": 20, "Mitt": 15}
    out = standin.write_standin(tmp_path, units=units, trials=trials, window_starts={"Barat": 225, "Mitt": 250},
                                kind="gain")
    counts = np.load(out / "Mitt" / "mitt_spike_data_binned.npy")
    info = np.load(out / "Mitt" / "mitt_trial_info.npy")
    assert counts.shape == (15, 5, 400) and counts.dtype == np.float64
    assert info.shape == (15, 6) and set(np.unique(info[:, 3])) <= {1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="kind"):
        standin.write_standin(tmp_path, units=units, trials=trials, kind="nope")


@pytest.fixture(scope="module")
def small_paired(standin, tmp_path_factory):
    """A two-rat gain stand-in (Barat's window inside the odor's gain, Mitt's straddling its end), paired as `paper` does."""
    from neurovamp.io.release import convert_release
    from neurovamp.pipelines.paper import PaperConfig, load_paper_data, pair_paper_trials

    root = tmp_path_factory.mktemp("gain")
    units, trials = {"Barat": 8, "Mitt": 7}, {"Barat": 120, "Mitt": 110}
    standin.write_standin(root / "release", units=units, trials=trials, kind="gain", seed=3)
    convert_release(root / "release", root / "nwb", progress=False)
    config = PaperConfig(rats=("Barat", "Mitt"), presets=("neurovamp",), models=("mmvm",), seeds=(0,))
    tree = load_paper_data({r: root / "nwb" / f"{r}.nwb" for r in config.rats}, config)
    return pair_paper_trials(tree, config, 0), standin.gain_truth(3, units=units, trials=trials)


class _Oracle:
    """Stands in for a fitted model: 'imputes' the target's planted odor-conditional counts (or its training flat rate)."""

    def __init__(self, paired, truth, flat=False):
        self.paired, self.truth, self.flat = paired, truth, flat

    def generate(self, modality, source, target):
        import xarray as xr

        from neurovamp.pipelines.paper import PAPER_WINDOW_STARTS

        t = self.paired.animals.index(target)
        target_mod = self.paired.modalities[target]
        counts = np.asarray(self.paired.counts[t], dtype=float)
        n_bins = counts.shape[2]
        if self.flat:
            train = np.asarray(self.paired.trial_split[target]) == "train"
            per_odor = {o: np.broadcast_to(counts[train].mean(axis=(0, 2))[:, None], counts.shape[1:])
                        for o in set(target_mod["odor"].values.tolist())}
        else:
            start = PAPER_WINDOW_STARTS[target]
            rows = np.asarray(target_mod["trial"].values).astype(int)
            odor = np.asarray(target_mod["odor"].values)
            window = np.asarray(self.truth[target])[rows][:, :, start : start + n_bins]
            per_odor = {o: window[odor == o][0] for o in set(odor.tolist())}
        values = np.stack([per_odor[o] for o in np.asarray(modality["odor"].values).tolist()])
        return xr.DataArray(values, dims=("trial", "unit", "time"))


def test_region_scores_of_a_perfect_and_of_a_flat_imputation(standin, small_paired):
    paired, truth = small_paired
    perfect = standin.region_bits_per_spike(standin.odor_means_by_source(_Oracle(paired, truth), paired), paired, truth)
    assert set(perfect["Barat"]) == {"all"}  # Barat's window lies inside the odor's 600 ms
    assert set(perfect["Mitt"]) == {"all", "odor", "after"}
    assert (perfect["Mitt"]["odor"]["bins"], perfect["Mitt"]["after"]["bins"]) == (10, 15)  # bins 250-259 | 260-274
    for rat in perfect:
        for scores in perfect[rat].values():
            assert scores["imputed"] == pytest.approx(scores["truth"])
    assert perfect["Mitt"]["odor"]["truth"] > 0  # the odor's gain is there to be imputed
    flat = standin.region_bits_per_spike(standin.odor_means_by_source(_Oracle(paired, truth, flat=True), paired), paired, truth)
    # the training-trial flat rate over the whole window: 'all' equals the train-flat column there
    for rat in flat:
        assert flat[rat]["all"]["imputed"] == pytest.approx(flat[rat]["all"]["train_flat"])


def test_source_scores_are_the_imputation_from_each_source_alone(standin, small_paired):
    paired, truth = small_paired
    means = standin.odor_means_by_source(_Oracle(paired, truth), paired)
    by_source = standin.source_bits_per_spike(means, paired)
    mixed = standin.region_bits_per_spike(means, paired, truth)
    assert set(by_source) == {"Barat", "Mitt"} and set(by_source["Mitt"]) == {"Barat"}
    # every source 'imputes' the truth here, so each alone scores what the mixture scores
    for rat, scores in by_source.items():
        for value in scores.values():
            assert value == pytest.approx(mixed[rat]["all"]["imputed"])
