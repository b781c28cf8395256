"""The ``convert-release`` and ``info`` commands, through ``neurovamp.cli.main``."""

from __future__ import annotations

import numpy as np
import pytest

from neurovamp.cli import main


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Two stand-in rats: Mitt (4 trials, odors A A B C) and Stella (3 trials, odors D D E)."""
    root = tmp_path_factory.mktemp("release")
    for rat, odors, n_units in (("Mitt", [1, 1, 2, 3], 3), ("Stella", [4, 4, 5], 2)):
        counts = np.zeros((len(odors), n_units, 400))
        counts[:, :, 200] = 1  # one spike per unit in the first bin after onset
        info = np.column_stack([np.ones(len(odors)), np.ones(len(odors)), np.arange(len(odors)) + 1, odors])
        (root / rat).mkdir()
        np.save(root / rat / f"{rat.lower()}_spike_data_binned.npy", counts)
        np.save(root / rat / f"{rat.lower()}_trial_info.npy", info)
    return root


def _one_line_error(capsys, code, expected):
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert expected in err
    return err


def test_convert_then_info(release, tmp_path, capsys):
    out = tmp_path / "nwb"
    assert main(["convert-release", str(release), str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"Mitt: {out / 'Mitt.nwb'}" in printed and f"Stella: {out / 'Stella.nwb'}" in printed

    code = main(["convert-release", str(release), str(out), "--no-progress"])
    err = _one_line_error(capsys, code, "already exists")
    assert err.startswith("neurovamp convert-release: error:")
    assert main(["convert-release", str(release), str(out), "--rats", "Stella", "--overwrite", "--no-progress"]) == 0
    capsys.readouterr()

    code = main(
        ["info", str(out / "Mitt.nwb"), str(out / "Stella.nwb"), "--event", "odor_onset",
         "--window", "-2", "2", "--bin", "0.01", "--label", "odor", "position"]
    )
    assert code == 0
    text = capsys.readouterr().out
    mitt, stella = text.split("\n\n")
    assert mitt.startswith("Mitt") and "units 3, trials 4, spikes in windows 12" in mitt
    assert "400 bins of 10 ms from -2 s to 2 s around odor_onset" in mitt
    rows = [line.split() for line in mitt.splitlines()[5:]]
    assert rows == [["odor", "A", "2"], ["B", "1"], ["C", "1"], ["position", "1", "1"], ["2", "1"], ["3", "1"], ["4", "1"]]
    assert "units 2, trials 3" in stella
    assert [line.split() for line in stella.splitlines()[5:7]] == [["odor", "D", "2"], ["E", "1"]]


def test_info_label_accumulates(release, tmp_path, capsys):
    out = tmp_path / "nwb"
    assert main(["convert-release", str(release), str(out), "--rats", "Mitt", "--no-progress"]) == 0
    capsys.readouterr()
    nwb = str(out / "Mitt.nwb")
    expected = [["odor", "A", "2"], ["B", "1"], ["C", "1"], ["position", "1", "1"], ["2", "1"], ["3", "1"], ["4", "1"]]
    for labels in (["--label", "odor", "--label", "position"], ["--label", "odor", "position"]):
        assert main(["info", nwb, "--event", "odor_onset", "--window", "-2", "2", *labels]) == 0
        rows = [line.split() for line in capsys.readouterr().out.splitlines()[5:]]
        assert rows == expected, labels  # both columns, not only the last --label's


def test_info_user_errors_are_one_line(release, tmp_path, capsys):
    out = tmp_path / "nwb"
    assert main(["convert-release", str(release), str(out), "--rats", "Mitt", "--no-progress"]) == 0
    capsys.readouterr()
    nwb = str(out / "Mitt.nwb")
    _one_line_error(capsys, main(["info", nwb, "--label", "smell"]), "no label column 'smell'")
    _one_line_error(capsys, main(["info", nwb, "--event", "reward_time"]), "no event column 'reward_time'")
    _one_line_error(capsys, main(["info", nwb, "--window", "0", "0.055"]), "not a whole number")
    _one_line_error(capsys, main(["info", str(tmp_path / "none.nwb")]), "NWB file not found")
    _one_line_error(
        capsys, main(["convert-release", str(tmp_path / "nowhere"), str(out)]), "release folder not found"
    )
