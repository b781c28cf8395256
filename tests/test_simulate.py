"""Tests of the simulator, its ground truth, NWB output, the default dataset and the CLI command."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from neurovamp._outputs import MANIFEST_NAME
from neurovamp.errors import ConfigError, DataError, NeurovampError, OutputExistsError
from neurovamp.simulate import (
    TRIAL_COLUMNS,
    SimulationConfig,
    load_ground_truth,
    simulate,
    simulate_experiment,
    write_simulation,
)


@pytest.fixture(scope="module")
def small():
    return simulate_experiment(SimulationConfig.small(seed=0))


@pytest.fixture(scope="module")
def written(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "small"
    paths = write_simulation(small, out)
    return out, paths


def _tiny(seed: int = 0, **kw) -> SimulationConfig:
    settings = dict(n_rats=2, n_units=3, n_trials=12, seed=seed)
    settings.update(kw)
    return SimulationConfig(**settings)


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_output(small):
    again = simulate_experiment(SimulationConfig.small(seed=0))
    for rat in small.rats:
        pd.testing.assert_frame_equal(small.trials[rat], again.trials[rat])
        assert len(small.spike_times[rat]) == len(again.spike_times[rat])
        for a, b in zip(small.spike_times[rat], again.spike_times[rat]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(small.counts[rat], again.counts[rat])
        np.testing.assert_array_equal(small.ground_truth.rates[rat], again.ground_truth.rates[rat])
        np.testing.assert_array_equal(small.ground_truth.latents[rat], again.ground_truth.latents[rat])


def test_different_seed_gives_different_output(small):
    other = simulate_experiment(SimulationConfig.small(seed=1))
    assert not np.array_equal(small.ground_truth.tuning["rat1"], other.ground_truth.tuning["rat1"])
    assert not np.array_equal(small.ground_truth.odor_early, other.ground_truth.odor_early)
    assert not small.trials["rat1"]["odor"].equals(other.trials["rat1"]["odor"])
    assert not np.array_equal(small.spike_times["rat1"][0][:20], other.spike_times["rat1"][0][:20])


# --------------------------------------------------------------------------- trials


def test_trials_columns_dtypes_and_timing(small):
    cfg = small.config
    for rat in small.rats:
        trials = small.trials[rat]
        assert tuple(trials.columns) == TRIAL_COLUMNS
        assert len(trials) == cfg.n_trials[cfg.rat_names.index(rat)]
        for col in ("start_time", "stop_time", "odor_onset"):
            assert trials[col].dtype == np.float64
        assert trials["position"].dtype == np.int64
        assert trials["in_sequence"].dtype == bool and trials["correct"].dtype == bool
        assert all(isinstance(o, str) for o in trials["odor"])
        assert set(trials["odor"]) <= set("ABCDE") and set(trials["position"]) <= {1, 2, 3, 4, 5}
        np.testing.assert_allclose(trials["odor_onset"] - trials["start_time"], -cfg.window[0], atol=1e-9)
        np.testing.assert_allclose(trials["stop_time"] - trials["start_time"], cfg.window[1] - cfg.window[0])
        # windows in order and not overlapping
        assert np.all(trials["start_time"].to_numpy()[1:] > trials["stop_time"].to_numpy()[:-1])
        # every unit has spikes and spike times are sorted
        for times in small.spike_times[rat]:
            assert times.size > 0 and np.all(np.diff(times) >= 0)


def test_sequence_structure_and_fractions():
    cfg = SimulationConfig(n_rats=2, n_units=2, n_trials=3000, missing={}, seed=3)
    sim = simulate_experiment(cfg)
    trials = pd.concat(sim.trials.values(), ignore_index=True)
    canonical = trials["position"].map(lambda p: cfg.odors[p - 1])
    # in-sequence trials present the odor that belongs at their position, others do not
    assert (trials["odor"] == canonical).equals(trials["in_sequence"])
    # positions cycle 1..5
    first = sim.trials["rat1"]["position"].to_numpy()[:10]
    np.testing.assert_array_equal(first, [1, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    assert trials.loc[trials["position"] == 1, "in_sequence"].all()
    later = trials[trials["position"] > 1]
    frac_out = 1 - later["in_sequence"].mean()
    se = np.sqrt(0.15 * 0.85 / len(later))
    assert abs(frac_out - cfg.out_of_sequence_rate) < 4 * se
    p_in = trials.loc[trials["in_sequence"], "correct"].mean()
    p_out = trials.loc[~trials["in_sequence"], "correct"].mean()
    assert abs(p_in - 0.92) < 0.02
    assert abs(p_out - 0.6) < 0.06
    assert p_out < p_in


def test_missing_odor_never_presented(small):
    assert small.config.missing == {"rat3": ("E",)}
    assert "E" not in set(small.trials["rat3"]["odor"])
    assert "E" not in set(small.ground_truth.trial_odor["rat3"])
    assert small.config.odors_of("rat3") == ("A", "B", "C", "D")
    for rat in ("rat1", "rat2"):
        assert "E" in set(small.trials[rat]["odor"])
    # the default five-rat settings: the last rat never gets E
    assert SimulationConfig().missing == {"rat5": ("E",)}
    # the ground truth still knows what rat3 would do with odor E, and it is odor specific
    gt = small.ground_truth
    rate_e = gt.condition_rate("rat3", "E")
    rate_d = gt.condition_rate("rat3", "D")
    assert rate_e.shape == (18, small.config.n_bins)
    post = small.config.time > 0.1
    assert np.abs(np.log(rate_e[:, post]) - np.log(rate_d[:, post])).max() > 0.2
    pre = small.config.time < 0
    baseline = np.broadcast_to(np.exp(gt.log_baseline["rat3"])[:, None], rate_e[:, pre].shape)
    np.testing.assert_allclose(rate_e[:, pre], baseline, rtol=1e-9)


def test_no_silent_units_even_at_very_low_rates():
    cfg = _tiny(n_units=20, baseline_rate=0.05, baseline_range=(0.05, 0.05), tuning_scale=0.1, missing={})
    sim = simulate_experiment(cfg)
    for rat in sim.rats:
        # expected ~0.9 spikes per unit in all windows: without redraws ~40 % would be silent
        assert np.all(sim.counts[rat].sum(axis=(0, 2)) > 0)
        assert np.mean(sim.ground_truth.rates[rat]) < 0.1
        assert all(times.size > 0 for times in sim.spike_times[rat])


# --------------------------------------------------------------------------- ground truth


def test_rates_are_realistic(small):
    for rat in small.rats:
        rates = small.ground_truth.rates[rat]
        unit_means = rates.mean(axis=(0, 2))
        assert 1.0 <= unit_means.min() and unit_means.max() <= 30.0
        assert 2.0 <= np.median(unit_means) <= 10.0
        assert np.percentile(rates, 99) < 40.0 and np.percentile(rates, 1) > 0.4 and rates.min() > 0.01
        # empirical firing rates from the spike counts agree
        observed = small.counts[rat].mean(axis=(0, 2)) / small.config.bin_size
        assert 1.0 <= np.median(observed) <= 10.0


def test_odor_decodable_from_counts(small):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    post = (small.config.time > 0) & (small.config.time < 1.0)
    for rat in small.rats:
        x = np.log1p(small.counts[rat][:, :, post].sum(axis=2))
        y = small.trials[rat]["odor"].to_numpy()
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        cv = StratifiedKFold(n_splits=4, shuffle=True, random_state=0)
        accuracy = cross_val_score(clf, x, y, cv=cv).mean()
        chance = 1 / len(set(y))
        assert accuracy > 0.6 > 2 * chance, (rat, accuracy)
        # pre-onset activity carries no odor information: near chance
        x_pre = np.log1p(small.counts[rat][:, :, small.config.time < 0].sum(axis=2))
        assert cross_val_score(clf, x_pre, y, cv=cv).mean() < min(chance + 0.25, accuracy - 0.15)


def test_true_rates_agree_with_counts(small):
    dt = small.config.bin_size
    for rat in small.rats:
        rates, counts = small.ground_truth.rates[rat].astype(float), small.counts[rat]
        # per-unit totals: Poisson z-scores
        expected = rates.sum(axis=(0, 2)) * dt
        observed = counts.sum(axis=(0, 2))
        z = (observed - expected) / np.sqrt(expected)
        assert np.abs(z).max() < 5 and abs(z.mean()) < 1.5
        # trial-averaged PSTHs in 150 ms bins, pooled over units: correlated, and calibrated
        n_trials, n_units, n_bins = counts.shape
        psth_true = rates.mean(axis=0).reshape(n_units, n_bins // 15, 15).mean(-1).ravel()
        psth_obs = (counts.mean(axis=0) / dt).reshape(n_units, n_bins // 15, 15).mean(-1).ravel()
        assert np.corrcoef(psth_true, psth_obs)[0, 1] > 0.85
        slope = np.polyfit(psth_true, psth_obs, 1)[0]
        assert 0.9 < slope < 1.1


def test_condition_rate_is_trial_average_of_true_rates():
    cfg = SimulationConfig(n_rats=2, n_units=(6, 8), n_trials=600, missing={}, seed=5)
    sim = simulate_experiment(cfg)
    gt = sim.ground_truth
    for rat in sim.rats:
        trials = sim.trials[rat]
        sel = ((trials["odor"] == "B") & (trials["position"] == 2)).to_numpy()
        assert sel.sum() > 80
        mean_rate = gt.rates[rat][sel].mean(axis=0)
        expected = gt.condition_rate(rat, "B", 2)
        typical = gt.condition_rate(rat, "B", 2, expected=False)
        np.testing.assert_allclose(mean_rate, expected, rtol=0.08)
        assert np.all(expected >= typical * (1 - 1e-12))
        # position defaults to the odor's place in the sequence
        np.testing.assert_array_equal(gt.condition_rate(rat, "B"), expected)


def test_latent_is_shared_across_rats(small):
    gt = small.ground_truth
    mean_a = gt.condition_latent("A", 1)
    assert mean_a.shape == (small.config.n_bins, small.config.latent_dim)
    assert np.allclose(mean_a[small.config.time < 0], 0.0)
    assert np.abs(mean_a).max() > 0.5
    per_rat = []
    for rat in small.rats:
        sel = (small.trials[rat]["odor"] == "A").to_numpy() & (small.trials[rat]["position"] == 1).to_numpy()
        per_rat.append(gt.latents[rat][sel].mean(axis=0))
    for m in per_rat:
        # each rat's trial-averaged latent estimates the one shared condition mean
        assert np.corrcoef(m.ravel(), mean_a.ravel())[0, 1] > 0.95
    assert np.corrcoef(per_rat[0].ravel(), per_rat[2].ravel())[0, 1] > 0.9
    # different odors have different mean trajectories
    means = gt.condition_means()
    assert set(means) == {(o, p) for o in "ABCDE" for p in range(1, 6)}
    assert np.abs(means[("A", 1)] - means[("B", 1)]).max() > 0.3
    # rats differ in their own (private) tuning
    assert gt.tuning["rat1"].shape == (24, 3) and gt.tuning["rat2"].shape == (30, 3)


# --------------------------------------------------------------------------- output


def test_write_and_load_ground_truth(small, written):
    out, paths = written
    assert set(paths["nwb"]) == set(small.rats)
    assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST_NAME) == ["ground_truth.npz", "rat1.nwb", "rat2.nwb", "rat3.nwb",
                                                     "simulation.json"]
    assert SimulationConfig.from_dict(json.loads(paths["config"].read_text())) == small.config
    gt = load_ground_truth(out)
    assert gt.config == small.config
    for rat in small.rats:
        for name in ("tuning", "log_baseline", "gain", "offset", "latents", "rates", "trial_position"):
            np.testing.assert_array_equal(getattr(gt, name)[rat], getattr(small.ground_truth, name)[rat])
        np.testing.assert_array_equal(gt.trial_odor[rat], small.trials[rat]["odor"].to_numpy(dtype=str))
    np.testing.assert_array_equal(gt.condition_rate("rat3", "E"), small.ground_truth.condition_rate("rat3", "E"))
    with pytest.raises(DataError, match="ground truth"):
        load_ground_truth(out / "nowhere")


def test_nwb_round_trip_matches_spike_times(small, written):
    from pynwb import NWBHDF5IO

    from neurovamp.io.nwb import read_nwb

    out, paths = written
    cfg = small.config
    for rat in small.rats:
        da = read_nwb(paths["nwb"][rat], event="odor_onset", window=cfg.window, bin_size=cfg.bin_size)
        assert da.attrs["animal"] == rat
        np.testing.assert_array_equal(da.values, small.counts[rat])
        np.testing.assert_allclose(da["time"].values, cfg.time)
        trials = small.trials[rat]
        np.testing.assert_array_equal(da["odor"].values, trials["odor"].to_numpy(dtype=str))
        np.testing.assert_array_equal(da["position"].values, trials["position"].to_numpy())
        np.testing.assert_array_equal(da["in_sequence"].values, trials["in_sequence"].to_numpy())
        np.testing.assert_array_equal(da["correct"].values, trials["correct"].to_numpy())
        # the counts are the spike times binned around odor onset (independent binning)
        edges = trials["odor_onset"].to_numpy()[:, None] + cfg.window[0] + cfg.bin_size * np.arange(cfg.n_bins + 1)
        unit = 0
        manual = np.stack([np.histogram(small.spike_times[rat][unit], bins=e)[0] for e in edges])
        np.testing.assert_array_equal(da.values[:, unit, :], manual)
        # the in-memory modality is what the reader makes
        np.testing.assert_array_equal(small.to_modality(rat).values, da.values)
    with NWBHDF5IO(str(paths["nwb"]["rat2"]), "r") as io:
        nwb = io.read()
        assert nwb.subject.subject_id == "rat2"
        np.testing.assert_array_equal(nwb.units.get_unit_spike_times(3), small.spike_times["rat2"][3])
        assert list(nwb.trials.colnames) == list(TRIAL_COLUMNS)


def test_write_refuses_to_overwrite(tmp_path):
    sim = simulate_experiment(_tiny())
    out = tmp_path / "sim"
    write_simulation(sim, out)
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_simulation(sim, out)
    other = simulate_experiment(_tiny(seed=1))
    write_simulation(other, out, overwrite=True)
    assert load_ground_truth(out).config.seed == 1
    # never replaces a folder that is not a simulation
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="not a simulation folder"):
        write_simulation(sim, foreign, overwrite=True)
    assert (foreign / "thesis.txt").read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


# --------------------------------------------------------------------------- config


def test_config_json_round_trip_and_validation():
    cfg = SimulationConfig(n_rats=3, missing={"rat2": ["D", "E"]}, seed=7)
    assert cfg.n_units == (92, 79, 104) and cfg.rat_names == ("rat1", "rat2", "rat3")
    text = json.dumps(cfg.to_dict())
    assert SimulationConfig.from_dict(json.loads(text)) == cfg
    assert cfg.odors_of("rat2") == ("A", "B", "C")
    with pytest.raises(ConfigError, match="n_units"):
        SimulationConfig(n_rats=2, n_units=(10, 10, 10))
    with pytest.raises(ConfigError, match="missing"):
        SimulationConfig(n_rats=2, missing={"rat9": ["E"]})
    with pytest.raises(ConfigError, match="missing"):
        SimulationConfig(n_rats=2, missing={"rat1": ["Z"]})
    with pytest.raises(ConfigError, match="window"):
        SimulationConfig(window=(0.1, 1.0))
    with pytest.raises(ConfigError, match="unknown setting"):
        SimulationConfig.from_dict({"n_rat": 3})
    with pytest.raises(ConfigError, match="odor"):
        simulate_experiment(_tiny()).ground_truth.condition_rate("rat1", "Q")
    assert issubclass(ConfigError, NeurovampError)


# --------------------------------------------------------------------------- default dataset and CLI


def test_default_dataset_generated_once_and_repaired(tmp_path, monkeypatch):
    from neurovamp.pipelines.default_data import DEFAULT_NAME, default_config, default_dataset_path, default_nwb_paths

    monkeypatch.setenv("NEUROVAMP_DATA", str(tmp_path / "env-cache"))
    path = default_dataset_path()
    assert path == tmp_path / "env-cache" / DEFAULT_NAME
    files = default_nwb_paths()
    assert [p.name for p in files] == ["rat1.nwb", "rat2.nwb", "rat3.nwb"]
    assert all(p.is_file() for p in files)
    stamp = files[0].stat().st_mtime_ns
    assert default_dataset_path() == path and files[0].stat().st_mtime_ns == stamp  # reused
    gt = load_ground_truth(path)
    assert gt.config == default_config()
    # a half-written folder is regenerated, reproducibly
    files[1].unlink()
    (path / "simulation.json").write_text("{")
    assert default_dataset_path() == path
    gt2 = load_ground_truth(path)
    np.testing.assert_array_equal(gt2.rates["rat2"], gt.rates["rat2"])
    assert files[1].is_file()
    # explicit cache_dir wins over the environment
    assert default_dataset_path(tmp_path / "explicit").parent == tmp_path / "explicit"


def test_cli_simulate_command(tmp_path):
    from neurovamp.cli.simulate_command import register

    parser = argparse.ArgumentParser(prog="neurovamp")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli-sim"
    args = parser.parse_args(["simulate", str(out), "--seed", "3", "--small"])
    assert args.func(args) == 0
    gt = load_ground_truth(out)
    assert gt.config == SimulationConfig.small(seed=3)
    with pytest.raises(OutputExistsError):
        args.func(parser.parse_args(["simulate", str(out), "--small"]))
    args = parser.parse_args(["simulate", str(out), "--small", "--seed", "4", "--overwrite"])
    assert args.func(args) == 0 and load_ground_truth(out).config.seed == 4
    assert simulate(tmp_path / "api", small=True, seed=3).joinpath("rat3.nwb").is_file()
