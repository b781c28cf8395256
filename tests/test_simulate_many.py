"""Many-animal simulations: ``SimulationConfig.many``, ``simulate(animals=N)``, ``simulate --animals``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurovamp.cli import main
from neurovamp.io.recordings import load_recordings
from neurovamp.data.pairing import pair_trials
from neurovamp.errors import ConfigError
from neurovamp.simulate import MANY_TRIALS, MANY_UNITS, SimulationConfig, simulate_experiment


def test_many_animals_each_have_their_own_units_trials_and_odors():
    cfg = SimulationConfig.many(200, seed=3)
    assert cfg.n_rats == 200 and len(set(cfg.rat_names)) == 200
    assert cfg.rat_names[0] == "rat001" and cfg.rat_names[-1] == "rat200"
    assert list(cfg.rat_names) == sorted(cfg.rat_names)  # zero-padded: files sort in animal order
    lo, hi = MANY_UNITS["small"]
    assert all(lo <= u <= hi for u in cfg.n_units) and len(set(cfg.n_units)) > 10
    lo, hi = MANY_TRIALS["small"]
    assert all(lo <= t <= hi for t in cfg.n_trials)
    # conditions differ between animals: about 40 % miss one or two odors, never the first
    n_missing = [len(cfg.missing.get(name, ())) for name in cfg.rat_names]
    assert n_missing[0] == 0 and set(n_missing) == {0, 1, 2}
    assert 0.25 < np.mean(np.array(n_missing) > 0) < 0.55
    assert all(cfg.odors[0] not in gone for gone in cfg.missing.values())
    assert len({cfg.odors_of(name) for name in cfg.rat_names}) > 5
    # reproducible from the seed, different for another seed; JSON round trip
    assert SimulationConfig.many(200, seed=3) == cfg
    assert SimulationConfig.many(200, seed=4).n_units != cfg.n_units
    assert SimulationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    full = SimulationConfig.many(5, seed=0, small=False)
    assert all(MANY_UNITS["full"][0] <= u <= MANY_UNITS["full"][1] for u in full.n_units)


def test_many_overrides_and_bad_counts():
    cfg = SimulationConfig.many(4, n_units=7, missing={})
    assert cfg.n_units == (7, 7, 7, 7) and cfg.missing == {}
    for bad in (1, 0, 2.5, True, "3"):
        with pytest.raises(ConfigError, match="n_animals must be an integer >= 2"):
            SimulationConfig.many(bad)


def test_many_animals_spike_as_configured():
    cfg = SimulationConfig.many(6, seed=1, n_trials=20)
    sim = simulate_experiment(cfg)
    for name, n_units in zip(cfg.rat_names, cfg.n_units):
        assert sim.counts[name].shape[:2] == (20, n_units)
        assert set(sim.trials[name]["odor"]) <= set(cfg.odors_of(name))


def test_cli_animals_writes_one_file_per_animal_that_pairs(tmp_path, capsys):
    out = tmp_path / "many"
    assert main(["simulate", str(out), "--animals", "4", "--small", "--seed", "2"]) == 0
    assert "wrote simulated experiment" in capsys.readouterr().out
    files = sorted(out.glob("rat*.nwb"))
    cfg = SimulationConfig.many(4, seed=2)
    assert [f.stem for f in files] == list(cfg.rat_names)
    written = SimulationConfig.from_dict(json.loads((out / "simulation.json").read_text()))
    assert written == cfg
    tree = load_recordings(files, event="odor_onset", window=(0.0, 0.5), bin_size=0.05, labels=["odor"])
    paired = pair_trials(tree, by="odor", seed=0)
    assert paired.animals == cfg.rat_names
    assert paired.input_dims == tuple(u * 10 for u in cfg.n_units)
    # an animal that never smelled an odor is masked out of that odor's pairs
    for m, name in enumerate(cfg.rat_names):
        for odor in set(cfg.odors) - set(cfg.odors_of(name)):
            rows = paired.pair_condition["train"] == odor
            assert not (paired.pairs["train"][rows, m] >= 0).any()


def test_cli_animals_rejects_one_animal(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "x"), "--animals", "1"]) == 2
    assert "n_animals must be an integer >= 2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
