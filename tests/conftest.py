"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from neurovamp.simulate import SimulationConfig, simulate_experiment, write_simulation


@pytest.fixture(scope="session")
def nwb_files(tmp_path_factory) -> list[str]:
    """A small simulated experiment (3 rats, 40/44/36 trials) written as NWB files; read only."""
    out = tmp_path_factory.mktemp("sim") / "sim"
    config = SimulationConfig.small(seed=2, n_trials=(40, 44, 36))
    written = write_simulation(simulate_experiment(config), out)
    return [str(p) for p in written["nwb"].values()]
