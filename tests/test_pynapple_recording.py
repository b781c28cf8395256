"""A real recording another lab wrote: pynapple's test recording A2929-200711 (neurosuite).

The file ships in pynapple's source distribution on the Python package index (15 units in
ADn and CA1, ``acquisition/Position`` with series x, y, z, epochs sleep/wake, no trials).
The fixture downloads the distribution once with pip into a cache folder
(``$NEUROVAMP_TEST_CACHE``, default ``~/.cache/neurovamp-test``) and extracts that one
file; without the package index the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from neurovamp.analysis.decode import behavior_samples, decode_behavior
from neurovamp.cli import main
from neurovamp.data.dataset import animals, get_behavior, get_modality
from neurovamp.io.recordings import load_recordings

PYNAPPLE = "pynapple==0.11.4"
SDIST = "pynapple-0.11.4.tar.gz"
MEMBER = "pynapple-0.11.4/tests/nwbfilestest/neurosuite/pynapplenwb/A2929-200711.nwb"
ANIMAL = "A2929-200711"  # the file's subject_id is blank: the file stem names the animal


def _cache() -> Path:
    return Path(os.environ.get("NEUROVAMP_TEST_CACHE", Path.home() / ".cache" / "neurovamp-test"))


@pytest.fixture(scope="module")
def recording() -> Path:
    """Path of A2929-200711.nwb, downloaded and extracted once (skip without the package index)."""
    cache = _cache()
    target = cache / MEMBER
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / SDIST
    if not sdist.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PYNAPPLE,
               "-d", str(cache), "--quiet"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"could not download {PYNAPPLE}'s source distribution from the package index: {exc}")
        if result.returncode != 0 or not sdist.is_file():
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            pytest.skip(f"could not download {PYNAPPLE}'s source distribution from the package index: {last}")
    with tarfile.open(sdist) as archive:
        archive.extract(archive.getmember(MEMBER), cache, filter="data")  # one plain file, no links
    return target


def test_info_lists_the_real_file(recording, capsys):
    assert main(["info", str(recording)]) == 0
    out = capsys.readouterr().out
    assert "epochs: 2 rows; columns start_time, stop_time, tags[]" in out
    assert "position_time_support: 1 rows" in out
    assert "sleep_ripples: 594 rows" in out
    assert "units: 15;" in out and "locations adn 7, ca1 8" in out
    assert "electrodes by location: adn 10, ca1 6" in out
    assert "Position (Position, acquisition/Position): series x, y, z" in out
    assert "no trials table in" in out


def test_windows_behaviour_and_position_decoding(recording, capsys):
    with pytest.warns(UserWarning, match=r"behaviour does not cover 671 of 1200 windows.*left out"):
        tree = load_recordings([recording], trials="epochs", windows=1.0, bin_size=0.5, behavior="Position",
                               drop_uncovered=True)
    assert animals(tree) == [ANIMAL]
    counts = get_modality(tree, ANIMAL)
    position = get_behavior(tree, ANIMAL, "position")
    # the wake epoch (600-1200 s) is tracked from 670.64 s: its whole 1 s windows from 671 s
    assert counts.sizes["unit"] == 15 and counts.sizes["time"] == 2
    assert counts.sizes["trial"] == 529
    assert counts["event_time"].values.min() == 671.0 and counts["event_time"].values.max() == 1199.0
    assert set(counts["interval"].values.tolist()) == {1}  # all in the wake epoch
    assert position.dims == ("trial", "time", "position_dim")
    assert position["position_dim"].values.tolist() == ["x", "y", "z"]
    assert np.isfinite(position.values).all()
    assert counts.sum().item() > 10_000

    features, values, groups = behavior_samples(counts, position)
    x = np.sqrt(features)  # variance-stabilised counts
    floor_plane = values[:, [0, 2]]  # x and z span the arena; y is height
    regression = decode_behavior(x, floor_plane, groups=groups)
    assert regression.r2 > 0.08 and regression.null_r2 <= 0.0
    assert regression.error < regression.null_error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        classes = decode_behavior(x, values[:, 2], bins=4, groups=groups, n_permutations=5)
    assert classes.chance == 0.25
    assert classes.score > 0.45  # measured 0.57 (seed 0)
    assert classes.score > max(classes.permutation_scores) + 0.15
    print(f"position from counts: R2 {regression.r2:.3f} (null {regression.null_r2:.3f}), error "
          f"{regression.error:.4f} vs {regression.null_error:.4f}; 4 bins of z: balanced accuracy "
          f"{classes.score:.3f}, chance {classes.chance}, permutations {classes.empirical_chance:.3f}")


def test_ca1_units_by_location(recording):
    tree = load_recordings([recording], trials="position_time_support", windows=1.0, bin_size=0.5,
                           units={"location": "CA1"}, behavior="Position")
    da = get_modality(tree, ANIMAL)
    assert da.sizes["unit"] == 8 and set(da["location"].values.tolist()) == {"ca1"}
    assert da.sizes["trial"] == 529
