"""``neurovamp paper``: the paper's hippocampal pipeline on a small stand-in of the release.

The stand-in has the release's layout (folders ``Barat/ Buchanan/ Mitt/ Stella/
SuperChris/`` with ``<rat>_spike_data_binned.npy`` (trials, units, 400) and
``<rat>_trial_info.npy``), few units and trials, and odor-specific rates planted only
in each rat's paper window (bins 225-249, or 250-274 for Mitt and Stella).

The full-size stand-in run lives in ``benchmarks/paper_standin.py``; the optional slow
test at the end runs a reduced version of it only when ``NEUROVAMP_SLOW=1`` is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurovamp.cli import main
from neurovamp.errors import ConfigError, OutputExistsError
from neurovamp.models.config import ModelConfig
from neurovamp.pipelines.paper import PAPER_WINDOW_STARTS, PaperConfig, read_paper_metrics

RATS = ("Barat", "Buchanan", "Mitt", "Stella", "SuperChris")
UNITS = {"Barat": 9, "Buchanan": 8, "Mitt": 10, "Stella": 7, "SuperChris": 6}
N_TRIALS = 60
QUICK = ["--epochs", "2", "--folds", "2", "--threads", "1", "--no-progress"]
FAST = ["--models", "mmvm", "independent", "--seeds", "0", "1", "--no-defaults", *QUICK]


def make_release(root: Path, *, seed: int = 0, drop_odor: dict[str, int] | None = None) -> Path:
    """Write a small stand-in release; odor information only inside each rat's paper window."""
    drop_odor = drop_odor or {}
    for k, rat in enumerate(RATS):
        rng = np.random.default_rng([seed, k])
        n_units = UNITS[rat]
        position = np.arange(N_TRIALS) % 5 + 1
        odor = position.copy()
        if rat in drop_odor:  # replace that odor by E
            odor[odor == drop_odor[rat]] = 5
        info = np.column_stack(
            [rng.random(N_TRIALS) > 0.1, np.ones(N_TRIALS), position, odor, rng.normal(size=N_TRIALS)]
        ).astype(np.float64)
        tuning = rng.normal(size=(5, n_units)) * 1.5  # log-rate change per odor and unit
        log_rate = np.full((N_TRIALS, n_units, 400), np.log(0.05))
        start = PAPER_WINDOW_STARTS[rat]
        log_rate[:, :, start : start + 25] += tuning[odor - 1][:, :, None]
        counts = rng.poisson(np.exp(log_rate)).astype(np.float64)
        counts[:, 0, :] = 0  # a silent unit, as in the release
        folder = root / rat
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{rat.lower()}_spike_data_binned.npy", counts)
        np.save(folder / f"{rat.lower()}_trial_info.npy", info)
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def finished_run(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    status = main(["paper", str(release), "--out", str(out), *FAST])
    assert status == 0
    return out


# --------------------------------------------------------------------------- end to end
def test_run_folder_layout(finished_run):
    run = finished_run
    for name in ("paper.json", "metrics.json", "report.md"):
        assert (run / name).is_file()
    assert sorted(p.name for p in (run / "nwb").iterdir()) == [f"{r}.nwb" for r in sorted(RATS)]
    figures = sorted(p.name for p in (run / "figures").iterdir())
    assert figures == ["decoding_paper.png", "latents_paper_independent.png", "latents_paper_mmvm.png"]
    assert json.loads((run / "paper.json").read_text())["status"] == "complete"
    assert not list(run.rglob(".*.tmp"))  # no temporary leftovers


def test_metrics_hold_every_fit_and_the_paper_setup(finished_run):
    metrics = read_paper_metrics(finished_run / "metrics.json")
    assert metrics["n_fits"] == 4 and len(metrics["fits"]) == 4
    keys = {(f["preset"], f["model"], f["seed"]) for f in metrics["fits"]}
    assert keys == {("paper", m, s) for m in ("mmvm", "independent") for s in (0, 1)}
    data = metrics["data"]
    assert data["units"] == UNITS
    assert data["n_subwindows"] == 16 and data["window_starts"] == PAPER_WINDOW_STARTS
    for fit in metrics["fits"]:
        assert fit["model_config"]["latent_dim"] == 2 and fit["model_config"]["likelihood"] == "gaussian"
        assert fit["model_config"]["preset"] == "paper" and fit["model_config"]["decoder"] == "mlp"
        assert fit["fit_seconds"] > 0
        assert set(fit["rats"]) == set(RATS)
        for rat, values in fit["rats"].items():
            for key in ("shared_heldout", "shared_train", "own_heldout", "own_train", "cross_generation_accuracy"):
                assert values[key] is not None and 0.0 <= values[key] <= 1.0, (fit["preset"], rat, key)
            assert values["chance"] == pytest.approx(0.25)
        # odors A-D, each in every split: at least one pair per odor and split
        assert all(n >= 4 for n in fit["pairs"].values())
    # the planted odor code sits only in each rat's paper window: raw counts decode it there
    raw = [f["rats"][rat]["raw_heldout"] for f in metrics["fits"] for rat in RATS]
    assert np.mean(raw) > 0.75


def test_seeds_draw_different_splits(finished_run):
    metrics = read_paper_metrics(finished_run / "metrics.json")
    mmvm = {f["seed"]: f for f in metrics["fits"] if f["preset"] == "paper" and f["model"] == "mmvm"}
    assert mmvm[0]["evaluation"] != mmvm[1]["evaluation"]
    summary = metrics["summary"]["paper"]["mmvm"]
    values = [mmvm[s]["mean"]["own_heldout"] for s in (0, 1)]
    assert summary["mean"]["own_heldout"] == pytest.approx(np.mean(values))
    assert summary["sd"]["own_heldout"] == pytest.approx(np.std(values, ddof=1))


_CELL = re.compile(r"^(-?\d+\.\d+)(?: ± (\d+\.\d+))?$")


def _tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append([c.strip().strip("*") for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _check_cell(cell: str, mean: float | None, sd: float | None) -> None:
    if mean is None:
        assert cell == "–"
        return
    match = _CELL.match(cell)
    assert match, cell
    tol = 0.51 * 10.0 ** -len(match.group(1).split(".")[1])  # half a unit of the last digit shown
    assert float(match.group(1)) == pytest.approx(mean, abs=tol)
    if sd is None:
        assert match.group(2) is None
    else:
        assert float(match.group(2)) == pytest.approx(sd, abs=tol)


def test_report_numbers_agree_with_metrics(finished_run):
    metrics = read_paper_metrics(finished_run / "metrics.json")
    text = (finished_run / "report.md").read_text()
    tables = _tables(text)
    summary = metrics["summary"]
    overview = {t[2][0]: t for t in tables if t[0][0] == "model"}  # first model row -> table
    assert len([t for t in tables if t[0][0] == "model"]) == 1  # one per preset
    overview_keys = ["shared_heldout", "shared_train", "own_heldout", "own_train", "cross_generation_accuracy", "fit_seconds"]
    checked = 0
    for preset, table in zip(("paper",), [t for t in tables if t[0][0] == "model"]):
        for row in table[2:]:
            stats = summary[preset][row[0]]
            for cell, key in zip(row[1:], overview_keys):
                _check_cell(cell, stats["mean"][key], stats["sd"][key])
                checked += 1
    per_rat = [t for t in tables if t[0][0] == "rat"]
    assert len(per_rat) == 2  # one per preset and model, in report order
    keys = ["own_heldout", "own_train", "shared_heldout", "shared_train", "cross_generation_accuracy"]
    order = [("paper", m) for m in ("mmvm", "independent")]
    for (preset, model), table in zip(order, per_rat):
        stats = summary[preset][model]
        assert [row[0] for row in table[2:]] == [*RATS, "mean over rats"]
        for row in table[2:]:
            for cell, key in zip(row[1:], keys):
                if row[0] == "mean over rats":
                    _check_cell(cell, stats["mean"][key], stats["sd"][key])
                else:
                    per = stats["per_rat"][row[0]][key]
                    _check_cell(cell, per["mean"], per["sd"])
                checked += 1
    assert checked == 2 * 6 + 2 * 6 * 5
    # the report says how the original code scored and shows both numbers
    assert "validated on its training" in text and "held-out" in text
    assert "figures/latents_paper_mmvm.png" in text and overview


def test_report_states_both_imputations_per_rat_from_the_fits(finished_run):
    metrics = read_paper_metrics(finished_run / "metrics.json")
    text = (finished_run / "report.md").read_text()
    mmvm = [f for f in metrics["fits"] if f["preset"] == "paper" and f["model"] == "mmvm"]
    for key, opening in (("bits_per_spike", "mmvm's imputation of held-out trials, bits/spike per rat"),
                         ("bits_per_spike_weighted", "The same stacked on the rat's validation trials (the other rats")):
        values = {rat: np.mean([f["rats"][rat][key] for f in mmvm]) for rat in RATS}
        assert all(f["rats"][rat][key] is not None for f in mmvm for rat in RATS), key
        line = next(line for line in text.splitlines() if opening in line)
        for rat, value in values.items():
            assert f"{rat} {value:.3f}" in line, (key, rat)
        assert ("above a flat rate for every rat" in line) == all(v > 0 for v in values.values())


def test_finished_run_is_not_replaced_without_overwrite(finished_run, release, capsys):
    before = (finished_run / "report.md").read_text()
    status = main(["paper", str(release), "--out", str(finished_run), *FAST])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and str(finished_run) in err and "--overwrite" in err
    assert (finished_run / "report.md").read_text() == before


def test_other_settings_are_refused(finished_run, release, capsys):
    status = main(["paper", str(release), "--out", str(finished_run), *FAST, "--epochs", "3"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "epochs" in err and len(err.splitlines()) == 1


def test_unfinished_run_resumes_skipping_done_fits(finished_run, release, tmp_path):
    from neurovamp.pipelines.paper import run_paper

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "report.md").unlink()
    (run / "metrics.json").unlink()
    redo = run / "fits" / "paper" / "independent" / "seed1" / "fit.json"
    before = json.loads(redo.read_text())
    redo.unlink()
    kept = run / "fits" / "paper" / "mmvm" / "seed0" / "fit.json"
    kept_text = kept.read_text()
    os.utime(kept, (1_000_000, 1_000_000))
    config = PaperConfig(models=("mmvm", "independent"), presets=("paper",), seeds=(0, 1), epochs=2, folds=2, threads=1)
    metrics = run_paper(release, run, config, progress=False)
    assert kept.stat().st_mtime == 1_000_000 and kept.read_text() == kept_text  # skipped
    after = json.loads(redo.read_text())  # redone: same numbers (reproducible from the seed)
    assert after["rats"] == before["rats"] and after["evaluation"] == before["evaluation"]
    assert metrics["resumed"] is True and metrics["n_fits"] == 4
    assert (run / "report.md").is_file()


def test_resume_is_refused_when_the_default_model_settings_changed(release, tmp_path):
    from neurovamp.pipelines.paper import run_paper

    config = PaperConfig(models=("mmvm",), presets=("neurovamp",), seeds=(0,), epochs=1, folds=2, threads=1)
    run = tmp_path / "run"
    run.mkdir()
    # an unfinished run started by a version whose defaults had a linear decoder
    info = {"format": "neurovamp-paper-run", "version": 1, "status": "running", "release": str(release),
            "config": config.to_dict(), "model_defaults": {**ModelConfig().to_dict(), "decoder": "linear"}}
    (run / "paper.json").write_text(json.dumps(info))
    with pytest.raises(OutputExistsError, match="default model settings have changed"):
        run_paper(release, run, config, progress=False)


def test_worker_process_fit_matches_in_process_fit(finished_run, tmp_path):
    """What a parallel worker (``--jobs``) runs gives the numbers of the in-process fit."""
    from neurovamp.pipelines import paper

    metrics = read_paper_metrics(finished_run / "metrics.json")
    config = PaperConfig.from_dict(metrics["config"])
    nwb = {rat: str(finished_run / "nwb" / f"{rat}.nwb") for rat in RATS}
    saved = dict(paper._WORKER)
    try:
        paper._init_worker(nwb, config.to_dict(), 1)
        record = paper._worker_fit((1, "paper", "mmvm"), str(tmp_path / "fit"))
        paper._WORKER["limits"].restore_original_limits()
    finally:
        paper._WORKER.clear()
        paper._WORKER.update(saved)
    original = next(f for f in metrics["fits"] if (f["seed"], f["model"]) == (1, "mmvm"))
    assert record["rats"] == original["rats"]
    assert (tmp_path / "fit" / "fit.json").is_file() and (tmp_path / "fit" / "latents.nc").is_file()


def test_overwrite_starts_afresh_with_both_presets(finished_run, release, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "notes.txt").write_text("mine")
    status = main(
        ["paper", str(release), "--out", str(run), "--models", "mmvm", "--seeds", "3", *QUICK, "--overwrite"]
    )
    assert status == 0
    metrics = read_paper_metrics(run / "metrics.json")
    assert metrics["n_fits"] == 2 and list(metrics["summary"]) == ["paper", "neurovamp"]
    configs = {f["preset"]: f["model_config"] for f in metrics["fits"]}
    assert configs["paper"]["latent_dim"] == 2 and configs["paper"]["likelihood"] == "gaussian"
    assert configs["neurovamp"]["latent_dim"] == 8 and configs["neurovamp"]["likelihood"] == "poisson"
    assert not (run / "fits" / "paper" / "independent").exists()  # the old fits are gone
    assert (run / "notes.txt").read_text() == "mine"  # only the run's own outputs are replaced
    assert sorted(p.name for p in (run / "figures").iterdir()) == [
        "decoding_neurovamp.png", "decoding_paper.png", "latents_neurovamp_mmvm.png", "latents_paper_mmvm.png"
    ]
    text = (run / "report.md").read_text()
    assert "## neurovamp preset" in text and "PC1" not in text  # PCA axes live in the figure only
    summary = metrics["summary"]["neurovamp"]["mmvm"]
    assert summary["sd"]["own_heldout"] is None  # one seed: no sd
    assert summary["seeds"] == [3]


# --------------------------------------------------------------------------- bad input
def _error(args: list[str], capsys) -> str:
    status = main(["paper", *args])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("neurovamp paper: error: ")
    return lines[0]


def test_missing_rat_folder(tmp_path, capsys):
    root = make_release(tmp_path / "release")
    shutil.rmtree(root / "Mitt")
    err = _error([str(root), "--out", str(tmp_path / "run"), *FAST], capsys)
    assert str(root / "Mitt") in err and "not found" in err
    assert not (tmp_path / "run").exists()


def test_wrong_shape_file(tmp_path, capsys):
    root = make_release(tmp_path / "release")
    path = root / "Stella" / "stella_spike_data_binned.npy"
    np.save(path, np.load(path)[:, :, :300])
    err = _error([str(root), "--out", str(tmp_path / "run"), *FAST], capsys)
    assert str(path) in err and "(trials, units, 400)" in err


def test_rat_without_a_requested_odor(tmp_path, capsys):
    root = make_release(tmp_path / "release", drop_odor={"Buchanan": 4})
    err = _error([str(root), "--out", str(tmp_path / "run"), *FAST], capsys)
    assert str(root / "Buchanan" / "buchanan_trial_info.npy") in err and "odor D" in err
    # without odor D the same release is fine for the check
    PaperConfig(odors=("A", "B", "C"))


def test_bad_options(tmp_path, release, capsys):
    err = _error([str(release), "--out", str(tmp_path / "r"), "--window-start", "Mitt:250", *FAST], capsys)
    assert "RAT=BIN" in err
    err = _error([str(release), "--out", str(tmp_path / "r"), "--window-start", "Mitt=390", *FAST], capsys)
    assert "Mitt" in err and "400" in err
    err = _error([str(release), "--out", str(tmp_path / "r"), "--rats", "Barat", *FAST], capsys)
    assert "at least two rats" in err
    err = _error([str(release), "--out", str(tmp_path / "r"), "--odors", "A", "F", *FAST], capsys)
    assert "A-E" in err


def test_config_round_trip_and_validation():
    config = PaperConfig(seeds=(3,), presets=("paper",), window_starts={**PAPER_WINDOW_STARTS, "Mitt": 240})
    assert PaperConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="window start"):
        PaperConfig(rats=("Barat", "Newrat"))
    with pytest.raises(ConfigError, match="subwindow"):
        PaperConfig(subwindow=30)
    with pytest.raises(ConfigError, match="split"):
        PaperConfig(split=(0.8, 0.2, 0.0))


# --------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NEUROVAMP_SLOW") != "1", reason="set NEUROVAMP_SLOW=1 to run")
def test_release_sized_standin_mmvm_aligns_rats(tmp_path):
    """Release-sized stand-in, paper preset: MMVM's shared classifier beats independent VAEs'."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "paper_standin", Path(__file__).resolve().parents[1] / "benchmarks" / "paper_standin.py"
    )
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    release = standin.write_standin(tmp_path / "release", seed=0)
    status = main(
        ["paper", str(release), "--out", str(tmp_path / "run"), "--models", "mmvm", "independent",
         "--seeds", "0", "--no-defaults", "--jobs", "2", "--threads", "1", "--no-progress"]
    )
    assert status == 0
    summary = read_paper_metrics(tmp_path / "run" / "metrics.json")["summary"]["paper"]
    assert summary["mmvm"]["mean"]["shared_heldout"] > summary["independent"]["mean"]["shared_heldout"] + 0.1
