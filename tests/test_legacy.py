"""Files written by neurovamp 0.1 keep working: they load, evaluate, impute and resume.

The frozen examples in ``tests/legacy/v0.1/`` were written once by neurovamp 0.1 (see
``tests/legacy/make_v0_1.py`` and ``v0.1/manifest.json``); they are never regenerated.
Every test works on a copy in ``tmp_path``, so the committed files are never modified.

The run folders record absolute data paths (``run.json`` → ``data.paths``) that pointed
to a temporary folder when they were made. The tests re-point them the way a user who
moved their data can today: by editing ``data.paths`` in ``run.json``
(:func:`repoint`).

Numbers the 0.1 code computed are stored beside the files and compared with what the
current code computes from them: latents and generated counts of the saved model, the
run's latents, the imputed rates, the decoding and alignment scores, and the history of
the uninterrupted run that the resumed one must reproduce. If a *deliberate* change of a
definition breaks one of these comparisons, change the comparison here (with the reason),
never the frozen files.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurovamp.cli import main
from neurovamp.data.dataset import animals, get_modality, load_dataset
from neurovamp.io.recordings import load_recordings
from neurovamp.errors import DataError
from neurovamp.models.estimator import MultiAnimalModel
from neurovamp.models.training import load_checkpoint
from neurovamp.pipelines.fit import load_run, read_run_info

FROZEN = Path(__file__).parent / "legacy" / "v0.1"
MANIFEST = json.loads((FROZEN / "manifest.json").read_text())
# float32 model outputs: equal up to rounding of a different BLAS/CPU
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture
def legacy(tmp_path) -> Path:
    """A private copy of the frozen 0.1 files."""
    return Path(shutil.copytree(FROZEN, tmp_path / "v0.1"))


def data_paths(root: Path) -> list[str]:
    return [str(root / p) for p in MANIFEST["data"]]


def repoint(run_dir: Path, root: Path) -> None:
    """Point ``run.json``'s data paths at the copied NWB files (as a user who moved them would)."""
    info = json.loads((run_dir / "run.json").read_text())
    assert [Path(p).name for p in info["data"]["paths"]] == [Path(p).name for p in MANIFEST["data"]]
    info["data"]["paths"] = data_paths(root)
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")


def frozen_arrays(name: str) -> dict[str, np.ndarray]:
    with np.load(FROZEN / name, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def keys_missing(old, new, where: str = "") -> list[str]:
    """Keys of the 0.1 output (recursively through dicts) that the new output lacks."""
    if not isinstance(old, dict):
        return []
    if not isinstance(new, dict):
        return [where or "<top>"]
    missing = []
    for key, value in old.items():
        if key not in new:
            missing.append(f"{where}.{key}".lstrip("."))
        else:
            missing += keys_missing(value, new[key], f"{where}.{key}")
    return missing


def test_the_frozen_files_are_what_0_1_wrote():
    assert MANIFEST["neurovamp_version"] == "0.1.0"
    for name in ("run/run.json", "run_interrupted/run.json", "model/config.json", "run/model/config.json"):
        info = json.loads((FROZEN / name).read_text())
        assert info["neurovamp_version"] == "0.1.0", name
    # the recorded data folder is gone, as after a user moved the data
    assert not Path(MANIFEST["original_data_dir"]).exists()


def test_a_0_1_dataset_netcdf_loads_and_equals_the_nwb_files_read_today(legacy):
    tree = load_dataset(legacy / "dataset.nc")
    assert tree.attrs["format_version"] == 1 and animals(tree) == ["rat1", "rat2"]
    again = load_recordings(data_paths(legacy), **MANIFEST["dataset"])
    assert animals(again) == animals(tree)
    for animal in animals(tree):
        old, new = get_modality(tree, animal), get_modality(again, animal)
        xr.testing.assert_equal(old, new)  # counts, trials, labels, units, bin centres
        assert {k: v for k, v in old.attrs.items() if k != "source"} == {
            k: v for k, v in new.attrs.items() if k != "source"}
    assert get_modality(tree, "rat1").sizes == {"trial": 24, "unit": 6, "time": 8}


def test_a_0_1_saved_model_loads_and_gives_the_latents_and_counts_0_1_gave(legacy):
    model = MultiAnimalModel.load(legacy / "model", device="cpu")
    assert model.animals_ == ("rat1", "rat2") and model.config.latent_dim == MANIFEST["model"]["latent_dim"]
    assert list(model.history_["epoch"]) == [1, 2]
    tree = load_dataset(legacy / "dataset.nc")
    expected = frozen_arrays("model_outputs.npz")
    for animal in animals(tree):
        latents = model.latents(get_modality(tree, animal))
        assert latents.dims == ("trial", "time", "latent")
        np.testing.assert_allclose(latents.values, expected[f"latents/{animal}"], **TOL)
    generated = model.generate(get_modality(tree, "rat1"), "rat1", "rat2")
    assert_same_but_the_sawtooth_fix(generated.values, expected["generate/rat1->rat2"])


def assert_same_but_the_sawtooth_fix(new: np.ndarray, old: np.ndarray) -> None:
    """0.1's generated rates, except where issue 10's sawtooth fix changed them on purpose.

    0.1 decoded only the training sub-window offsets (0, 2, 4 at stride 2), so each bin was
    predicted by sub-window positions of one parity; the fixed code decodes every offset.
    The first and last bin lie in one sub-window either way (offset 0 and the last offset)
    and keep 0.1's value exactly; the interior bins change.
    """
    assert new.shape == old.shape and np.isfinite(new).all()
    np.testing.assert_allclose(new[..., 0], old[..., 0], **TOL)
    np.testing.assert_allclose(new[..., -1], old[..., -1], **TOL)


def test_a_moved_0_1_run_names_its_missing_data_files(legacy):
    with pytest.raises(DataError, match=r"data file\(s\) of the run not found: .*rat1\.nwb"):
        load_run(legacy / "run", device="cpu")


def test_a_0_1_run_loads_with_the_model_and_pairs_it_was_fitted_on(legacy):
    repoint(legacy / "run", legacy)
    model, paired, info = load_run(legacy / "run", device="cpu")
    assert info["status"] == "complete" and info["version"] == 1 and paired.animals == ("rat1", "rat2")
    assert (paired.pair_by, paired.window, paired.stride) == ("odor", 4, 2)
    expected = frozen_arrays("run_outputs.npz")
    for animal in paired.animals:
        np.testing.assert_allclose(model.latents(paired, animal).values, expected[f"latents/{animal}"], **TOL)
    # its checkpoint (format neurovamp-checkpoint v1) reads too: the last of 4 epochs
    assert load_checkpoint(legacy / "run" / "checkpoints")["epoch"] == 4


def test_a_0_1_run_evaluates(legacy, capsys):
    run = legacy / "run"
    repoint(run, legacy)
    old = json.loads((run / "metrics.json").read_text())
    assert (old["format"], old["version"]) == ("neurovamp-metrics", 1)
    assert main(["evaluate", str(run), *MANIFEST["evaluate_args"], "--overwrite"]) == 0
    new = json.loads((run / "metrics.json").read_text())
    assert new["format"] == "neurovamp-metrics" and new["model"] == "mmvm"
    assert keys_missing(old, new) == []
    # decoding and alignment depend on the latents only: the same numbers as 0.1's
    for key in ("balanced_accuracy", "raw_balanced_accuracy", "shared_balanced_accuracy"):
        assert new["summary"][key] == pytest.approx(old["summary"][key], rel=1e-9), key
    assert new["summary"]["alignment_r2"] == pytest.approx(old["summary"]["alignment_r2"], rel=1e-6)
    # imputation scores (definitions still being refined) are present and finite
    for key in ("bits_per_spike", "psth_r2", "coherence"):
        assert math.isfinite(new["summary"][key]), key


def test_a_0_1_run_imputes_the_rates_0_1_imputed(legacy, capsys):
    run = legacy / "run"
    repoint(run, legacy)
    out = legacy / "imputed.nc"
    assert main(["impute", str(run), *MANIFEST["impute_args"], "--out", str(out)]) == 0
    with xr.open_dataset(FROZEN / "impute_rat2_E.nc", engine="h5netcdf") as old, \
            xr.open_dataset(out, engine="h5netcdf") as new:
        assert set(old.data_vars) <= set(new.data_vars)
        assert new["rates"].dims == old["rates"].dims == ("unit", "time")
        assert_same_but_the_sawtooth_fix(new["rates"].values, old["rates"].values)
        np.testing.assert_array_equal(new["time"].values, old["time"].values)
        for key in ("units", "target", "sources", "condition", "split", "combine", "n_trials_total"):
            assert new.attrs[key] == old.attrs[key], key


def test_an_interrupted_0_1_run_resumes_and_ends_as_the_uninterrupted_run(legacy, capsys):
    run = legacy / "run_interrupted"
    info = read_run_info(run)
    assert info["status"] == "interrupted" and not (run / "model").exists()
    stop = MANIFEST["interrupt_at_epoch"]
    checkpoint = load_checkpoint(run / "checkpoints")
    assert checkpoint["epoch"] == stop - 1 and checkpoint["history"]["epoch"] == list(range(1, stop))
    with pytest.raises(DataError, match="incomplete run"):
        load_run(run)

    repoint(run, legacy)
    argv = ["fit", *data_paths(legacy), "--out", str(run), *MANIFEST["fit_args"], "--resume"]
    assert main(argv) == 0
    resumed = read_run_info(run)
    assert resumed["status"] == "complete" and resumed["fit"]["epochs_run"] == 4
    assert resumed["created"] == info["created"]
    # resuming reproduces the uninterrupted 0.1 run with the same settings
    pd.testing.assert_frame_equal(pd.read_csv(run / "history.csv"), pd.read_csv(FROZEN / "run" / "history.csv"),
                                  rtol=1e-5)
    model, paired, _ = load_run(run, device="cpu")
    expected = frozen_arrays("run_outputs.npz")
    for animal in paired.animals:
        np.testing.assert_allclose(model.latents(paired, animal).values, expected[f"latents/{animal}"], **TOL)


# --------------------------------------------------------------------------- demo and paper folders
def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_a_complete_0_1_demo_folder_is_recognised_and_left_alone(legacy, capsys, monkeypatch):
    monkeypatch.setenv("NEUROVAMP_DATA", str(legacy / "cache"))  # never the user's cache
    demo = legacy / "demo"
    info = json.loads((demo / "demo.json").read_text())
    assert (info["format"], info["version"], info["status"]) == ("neurovamp-demo", 1, "complete")
    before = {p.name: p.read_bytes() for p in demo.iterdir()}
    # the same command as 0.1's: the folder is recognised as a demo; since 0.1 the demo
    # gained settings (seeds, leave-one-condition-out), which is said instead of "complete"
    # (an unrecognised folder would say "not a neurovamp demo folder")
    assert main(["demo", "--out", str(demo), *MANIFEST["extra"]["demo_args"]]) == 2
    assert "holds a demo run with different settings (loco, n_seeds); pass --overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in demo.iterdir()} == before


def test_a_0_1_demo_comparison_table_is_rebuilt_from_its_metrics(legacy):
    from neurovamp.analysis.evaluate import read_metrics
    from neurovamp.analysis.report import comparison_table

    metrics = read_metrics(legacy / "demo" / "metrics.json")
    assert {(m["format"], m["version"]) for m in metrics.values()} == {("neurovamp-metrics", 1)}
    table = comparison_table(metrics)
    frozen = pd.read_csv(FROZEN / "demo" / "comparison.csv", index_col=0)
    rebuilt = pd.read_csv(io.StringIO(table.to_csv(float_format="%.6g")), index_col=0)
    pd.testing.assert_frame_equal(rebuilt[frozen.columns], frozen)


def test_a_0_1_paper_run_reads_and_its_report_is_rebuilt_from_its_metrics(legacy):
    from neurovamp.pipelines.paper import read_paper_metrics, write_report

    paper = legacy / "paper"
    metrics = read_paper_metrics(paper / "metrics.json")
    assert (metrics["format"], metrics["version"], metrics["n_fits"]) == ("neurovamp-paper-metrics", 1, 1)
    run = json.loads((paper / "paper.json").read_text())
    assert (run["format"], run["version"], run["status"]) == ("neurovamp-paper-run", 1, "complete")
    fit = json.loads((paper / "fits" / "paper" / "mmvm" / "seed0" / "fit.json").read_text())
    for entry in (fit["mean"], *fit["rats"].values()):  # read with the current name of 0.1's "coherence"
        entry["cross_generation_accuracy"] = entry["coherence"]
    assert fit == metrics["fits"][0]  # metrics.json gathers the fit records
    report = write_report(metrics, legacy / "rebuilt.md")
    # every table (all the numbers) of 0.1's report comes out the same; only the column once
    # called "coherence" now has its current name
    old_rows = [row.replace("| coherence |", "| cross-animal generation accuracy |")
                for row in _table_rows((paper / "report.md").read_text())]
    assert _table_rows(report.read_text()) == old_rows
    assert len(_table_rows(report.read_text())) > 5


def test_the_simulator_still_makes_the_0_1_experiment_from_its_simulation_json(legacy):
    """simulation.json round trips and the same settings give the same spikes (the default
    data set's cache, ``default-v1``, relies on this: a changed simulator needs a new name)."""
    from neurovamp.simulate import SimulationConfig, simulate_experiment, write_simulation

    stored = json.loads((FROZEN / "data" / "simulation.json").read_text())
    config = SimulationConfig.from_dict(stored)
    assert json.loads(json.dumps(config.to_dict())) == stored
    written = write_simulation(simulate_experiment(config), legacy / "again")
    settings = dict(event="odor_onset", window=(-0.2, 0.6), bin_size=0.01, labels=None)
    old = load_recordings(data_paths(legacy), **settings)
    new = load_recordings([str(p) for p in written["nwb"].values()], **settings)
    for animal in animals(old):
        xr.testing.assert_equal(get_modality(new, animal), get_modality(old, animal))
    assert int(get_modality(old, "rat1").sum()) > 0
