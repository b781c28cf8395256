"""Fault injection: every way a user's files could be lost or a run silently wrong (issue 12).

Each test reproduces one case on small files and asserts what a user must see: exit
status 2, one line on stderr and no traceback, and, where the command was refused, the
folder byte-identical to before (:func:`tree_digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurovamp.cli import main
from neurovamp.pipelines.fit import load_run, read_run_info


# --------------------------------------------------------------------------- helpers
def tree_digest(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with its content hash ("dir" for folders)."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def cli(argv: list[str], capsys) -> tuple[int | str, str]:
    """Run the command line; an escaped exception (a traceback for the user) is reported as "traceback"."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code
    except Exception as exc:  # noqa: BLE001 - what the user would see as a traceback
        return "traceback", f"{type(exc).__name__}: {exc}"
    return rc, capsys.readouterr().err


def assert_refused(result: tuple[int | str, str], *needles: str) -> str:
    """Exit 2 with one line on stderr (no traceback) containing every needle."""
    rc, err = result
    assert rc == 2, f"expected exit 2 with one line, got {rc}: {err}"
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def fit_args(files, out, *extra) -> list[str]:
    return [str(a) for a in [
        "fit", *files, "--out", out, "--event", "odor_onset", "--window", "0", "0.4", "--bin", "0.05",
        "--label", "odor", "--pair-by", "odor", "--latent-dim", "2", "--hidden", "8", "--subwindow", "4",
        "--stride", "4", "--batch-size", "64", "--seed", "1", "--device", "cpu", "--no-progress", *extra,
    ]]


def add_user_files(folder: Path) -> dict[str, str]:
    """A user's own file and sub-folder (with a file) in ``folder``; returns their digests."""
    (folder / "my_notes.txt").write_text("mine, not neurovamp's")
    (folder / "my_analysis").mkdir(exist_ok=True)
    (folder / "my_analysis" / "result.csv").write_text("a,b\n1,2\n")
    return {k: v for k, v in tree_digest(folder).items() if k.startswith("my_")}


def assert_kept(folder: Path, user: dict[str, str]) -> None:
    now = tree_digest(folder)
    assert {k: now.get(k) for k in user} == user, "a user's file or folder was deleted or changed"


@pytest.fixture(scope="module")
def finished_run(nwb_files, tmp_path_factory) -> Path:
    """A complete 2-epoch fit with a checkpoint after every epoch (read only: copy it)."""
    out = tmp_path_factory.mktemp("faults") / "run"
    assert main(fit_args(nwb_files, out, "--epochs", "2", "--checkpoint-every", "1")) == 0
    return out


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


@pytest.fixture
def cheap_evaluation(monkeypatch):
    """``evaluate`` without its statistics: metrics with only a seed and two tiny figures.

    The folder mechanics under test (what is written, replaced and kept) are those of the
    real command; only the numbers and drawings, tested elsewhere, are skipped.
    """
    import neurovamp.analysis.evaluate as evaluate
    import neurovamp.analysis.figures as figures
    from neurovamp._files import atomic_output

    def metrics(model, paired, *, labels, seed=0, folds=5, **kwargs):
        return {"model": model.config.model, "labels": list(labels), "seed": seed,
                "summary": {"balanced_accuracy": {}, "shared_balanced_accuracy": {}, "alignment_r2": None,
                            "bits_per_spike": None}}

    def write_figures(model, paired, metrics, out_dir, *, overwrite=False, **kwargs):
        with atomic_output(out_dir, overwrite=overwrite, directory=True) as tmp:  # as the real one writes
            for name in ("latents", "alignment"):
                (tmp / f"{name}.png").write_bytes(f"{name} seed {metrics['seed']}".encode())
        return {}

    monkeypatch.setattr(evaluate, "evaluate_model", metrics)
    monkeypatch.setattr(figures, "write_figures", write_figures)


# --------------------------------------------------------------------------- 1. refused resumes
def test_case01_refused_resume_of_a_finished_run_changes_nothing(run, nwb_files, capsys):
    shutil.rmtree(run / "checkpoints")
    before = tree_digest(run)
    assert_refused(cli(fit_args(nwb_files, run, "--epochs", "2", "--resume"), capsys), "cannot resume", "complete")
    assert tree_digest(run) == before
    load_run(run, device="cpu")  # the intact model still loads: evaluate/impute work


@pytest.mark.parametrize("damage", ["garbage", "empty", "hostile"])
def test_case01_corrupt_or_hostile_checkpoint_refused_without_change(run, nwb_files, capsys, damage):
    (run / "checkpoints" / "checkpoint.prev.pt").unlink(missing_ok=True)
    path = run / "checkpoints" / "checkpoint.pt"
    if damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        import pickle

        class Hostile:
            def __reduce__(self):
                return (print, ("this ran",))

        path.write_bytes(pickle.dumps({"format": Hostile()}))
    before = tree_digest(run)
    line = assert_refused(cli(fit_args(nwb_files, run, "--epochs", "3", "--resume"), capsys), "checkpoint.pt")
    assert "weights_only" not in line and "will likely succeed" not in line and "()" not in line
    assert tree_digest(run) == before
    assert read_run_info(run)["status"] == "complete"


def test_case01_corrupt_latest_checkpoint_falls_back_to_the_previous(finished_run, nwb_files, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(fit_args(nwb_files, full, "--epochs", "3", "--checkpoint-every", "1")) == 0
    shutil.copytree(finished_run, part)
    (part / "checkpoints" / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.warns(RuntimeWarning, match="checkpoint.pt: cannot read checkpoint.*using the previous checkpoint"):
        assert main(fit_args(nwb_files, part, "--epochs", "3", "--checkpoint-every", "1", "--resume")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(part / "history.csv"), pd.read_csv(full / "history.csv"))
    a = load_run(full, device="cpu")[0].module_.state_dict()
    b = load_run(part, device="cpu")[0].module_.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


# --------------------------------------------------------------------------- 2. simulate --overwrite
def test_case02_simulate_overwrite_keeps_the_users_files(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", str(out), "--small"]) == 0
    user = add_user_files(out)
    old = (out / "rat1.nwb").read_bytes()
    assert main(["simulate", str(out), "--small", "--seed", "3", "--overwrite"]) == 0
    assert_kept(out, user)
    assert (out / "rat1.nwb").read_bytes() != old and (out / "simulation.json").is_file()
    assert json.loads((out / "simulation.json").read_text())["seed"] == 3


# --------------------------------------------------------------------------- 3. demo --overwrite
def test_case03_demo_overwrite_keeps_the_users_runs_quick(tmp_path, monkeypatch, capsys):
    """The demo's folder handling with its fitting replaced by a stand-in that writes a run folder."""
    import types

    import neurovamp.pipelines.demo as demo
    from neurovamp._outputs import record_outputs

    def stand_in(out_dir, settings, info, start, **kwargs):
        for name in settings.models:
            run_dir = out_dir / "runs" / name
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "run.json").write_text("{}")
            record_outputs(run_dir, ["run.json"])  # what fit_run records
        (out_dir / "report.md").write_text("report")
        return types.SimpleNamespace(fitted=list(settings.models), reused=[], seconds=0.0,
                                     report=out_dir / "report.md")

    monkeypatch.setattr(demo, "_run", stand_in)
    demo_twice_keeps_the_users_runs(tmp_path / "demo", capsys)


def demo_twice_keeps_the_users_runs(out: Path, capsys, *extra: str) -> None:
    """A demo, a user's own run folder and files in it, then ``demo --overwrite``: the user's stay."""
    args = ["demo", "--out", out, "--quick", "--models", "mmvm", "--device", "cpu", "--no-progress", *extra]
    assert cli(args, capsys)[0] == 0
    (out / "runs" / "my_experiment").mkdir()
    (out / "runs" / "my_experiment" / "model.txt").write_text("weeks of work")
    user = add_user_files(out)
    user.update({k: v for k, v in tree_digest(out).items() if k.startswith("runs/my_experiment")})
    assert cli([*args, "--overwrite"], capsys)[0] == 0
    assert_kept(out, user)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NEUROVAMP_SLOW") != "1", reason="set NEUROVAMP_SLOW=1 to run")
def test_case03_demo_overwrite_keeps_the_users_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROVAMP_DATA", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    demo_twice_keeps_the_users_runs(out, capsys, "--epochs", "1")
    assert read_run_info(out / "runs" / "mmvm")["status"] == "complete"


# --------------------------------------------------------------------------- 4. fit/evaluate --overwrite
def test_case04_fit_overwrite_removes_its_outputs_only_and_the_stale_evaluation(run, nwb_files, capsys,
                                                                                 cheap_evaluation):
    assert cli(["evaluate", run, "--device", "cpu"], capsys)[0] == 0
    assert (run / "metrics.json").is_file() and (run / "figures" / "latents.png").is_file()
    user = add_user_files(run)
    (run / "figures" / "my_figure.png").write_bytes(b"my own figure")
    user["figures/my_figure.png"] = tree_digest(run)["figures/my_figure.png"]
    assert cli(fit_args(nwb_files, run, "--epochs", "1", "--overwrite"), capsys)[0] == 0
    assert_kept(run, user)
    # the old model's metrics and figures described a model that no longer exists
    assert not (run / "metrics.json").exists() and not (run / "figures" / "latents.png").exists()
    assert read_run_info(run)["fit"]["epochs_run"] == 1


def test_case04_evaluate_overwrite_keeps_the_users_figures(run, capsys, cheap_evaluation):
    assert cli(["evaluate", run, "--device", "cpu"], capsys)[0] == 0
    (run / "figures" / "my_figure.png").write_bytes(b"my own figure")
    user = add_user_files(run)
    assert cli(["evaluate", run, "--device", "cpu", "--overwrite", "--seed", "2"], capsys)[0] == 0
    assert (run / "figures" / "my_figure.png").read_bytes() == b"my own figure"
    assert_kept(run, user)
    assert (run / "figures" / "latents.png").read_bytes() == b"latents seed 2"
    assert json.loads((run / "metrics.json").read_text())["seed"] == 2


@pytest.mark.parametrize("name", ["run.json", "history.csv", "loss.png"])
def test_case04_fit_overwrite_refuses_to_replace_a_file_it_did_not_write(nwb_files, tmp_path, capsys, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("the user's own file")
    before = tree_digest(out)
    assert_refused(cli(fit_args(nwb_files, out, "--epochs", "1", "--overwrite"), capsys), name, "did not write")
    assert tree_digest(out) == before


def test_overwrite_keeps_extra_files_in_every_command(run, nwb_files, tmp_path, capsys, cheap_evaluation):
    """Acceptance: fit, evaluate, impute (and simulate, demo above) with --overwrite keep a user's files."""
    user = add_user_files(run)
    assert cli(fit_args(nwb_files, run, "--epochs", "1", "--overwrite"), capsys)[0] == 0
    assert_kept(run, user)
    assert cli(["evaluate", run, "--device", "cpu"], capsys)[0] == 0
    assert cli(["evaluate", run, "--device", "cpu", "--overwrite"], capsys)[0] == 0
    assert_kept(run, user)
    out = tmp_path / "imputed"
    out.mkdir()
    mine = add_user_files(out)
    args = ["impute", run, "--target", "rat3", "--condition", "odor=A", "--out", out / "rat3_A.nc", "--device", "cpu"]
    assert cli(args, capsys)[0] == 0
    assert cli([*args, "--overwrite"], capsys)[0] == 0
    assert_kept(out, mine)


def test_paper_overwrite_keeps_the_users_files_in_its_folder_and_subfolders(tmp_path, capsys):
    """``paper --overwrite`` removes only what the paper run wrote (issue 12: it used to delete its sub-folders)."""
    from test_paper import make_release

    release = make_release(tmp_path / "release")
    out = tmp_path / "paper"
    args = ["paper", release, "--out", out, "--models", "mmvm", "--seeds", "0", "--no-defaults", "--epochs", "1",
            "--folds", "2", "--threads", "1", "--no-progress"]
    assert cli(args, capsys)[0] == 0
    user = add_user_files(out)
    for sub in ("fits", "fits/paper/mmvm/seed0", "figures", "nwb"):
        (out / sub / "my_notes.txt").write_text(f"mine, in {sub}")
        (out / sub / "my_analysis").mkdir()
        (out / sub / "my_analysis" / "result.csv").write_text("a,b\n1,2\n")
    user.update({k: v for k, v in tree_digest(out).items() if "my_" in k})
    assert cli([*args, "--overwrite"], capsys)[0] == 0
    assert_kept(out, user)
    assert json.loads((out / "paper.json").read_text())["status"] == "complete"
    assert (out / "fits" / "paper" / "mmvm" / "seed0" / "fit.json").is_file() and (out / "report.md").is_file()


# --------------------------------------------------------------------------- 9. unreadable chunks
def corrupt_a_chunk(path: Path) -> None:
    """Store ``units/spike_times`` gzip-compressed, then damage one compressed chunk."""
    import h5py

    with h5py.File(path, "r+") as f:
        old = f["units/spike_times"]
        data, attrs = old[()], dict(old.attrs)
        del f["units/spike_times"]
        new = f.create_dataset("units/spike_times", data=data, chunks=(256,), compression="gzip")
        for key, value in attrs.items():
            new.attrs[key] = value
        f["units/spike_times_index"].attrs["target"] = new.ref
        info = new.id.get_chunk_info(1)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 8)
        fh.write(b"\xff" * min(64, info.size - 8))


@pytest.mark.parametrize("command", ["info", "fit"])
def test_case09_a_damaged_compressed_chunk_is_one_line(nwb_files, tmp_path, capsys, command):
    bad = tmp_path / "rat1.nwb"
    shutil.copy(nwb_files[0], bad)
    corrupt_a_chunk(bad)
    files = [bad, *nwb_files[1:]]
    argv = (["info", *files, "--event", "odor_onset"] if command == "info"
            else fit_args(files, tmp_path / "run", "--epochs", "1"))
    assert_refused(cli(argv, capsys), str(bad), "cannot be read")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 10. read-only destinations
@pytest.fixture(params=["injected", "chmod"])
def read_only(request, tmp_path, monkeypatch):
    """A folder nothing can be written into (by permissions when not root, else by injected EACCES)."""
    folder = tmp_path / "readonly"
    folder.mkdir()

    def make(folder: Path = folder) -> Path:
        if request.param == "chmod":
            if os.geteuid() == 0:
                pytest.skip("root ignores file permissions")
            folder.chmod(0o555)
            request.addfinalizer(lambda: folder.chmod(0o755))
            return folder
        root = folder.resolve()

        def inside(path) -> bool:
            p = Path(os.fsdecode(path)).resolve()
            return p == root or root in p.parents

        real_open, real_mkdir = os.open, os.mkdir

        def guarded_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real_open(path, flags, *args, **kwargs)

        def guarded_mkdir(path, *args, **kwargs):
            if inside(path):
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", guarded_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)
        return folder

    return make


def test_case10_fit_into_a_read_only_folder(nwb_files, read_only, capsys, monkeypatch):
    import neurovamp.io.recordings as recordings

    folder = read_only()
    loaded = []
    monkeypatch.setattr(recordings, "load_recordings", lambda *a, **k: loaded.append(1) or pytest.fail("loaded data"))
    assert_refused(cli(fit_args(nwb_files, folder / "run", "--epochs", "1"), capsys), "cannot write")
    assert tree_digest(folder) == {}


def test_case10_resume_in_a_read_only_run(run, nwb_files, read_only, capsys):
    before = tree_digest(run)
    read_only(run)
    assert_refused(cli(fit_args(nwb_files, run, "--epochs", "3", "--resume"), capsys), "cannot write")
    assert tree_digest(run) == before


def test_case10_evaluate_checks_before_computing(run, read_only, capsys, monkeypatch, cheap_evaluation):
    import neurovamp.analysis.evaluate as evaluate

    called = []
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a, **k: called.append(1) or pytest.fail("computed"))
    before = tree_digest(run)
    read_only(run)
    assert_refused(cli(["evaluate", run, "--device", "cpu"], capsys), "cannot write")
    assert not called and tree_digest(run) == before


def test_case10_impute_simulate_demo_into_read_only_folders(run, read_only, capsys, tmp_path, monkeypatch):
    folder = read_only()
    args = ["impute", run, "--target", "rat3", "--condition", "odor=A", "--out", folder / "x.nc", "--device", "cpu"]
    assert_refused(cli(args, capsys), "cannot write")
    assert_refused(cli(["simulate", folder / "sim", "--small"], capsys), "cannot write")
    monkeypatch.setenv("NEUROVAMP_DATA", str(tmp_path / "cache"))
    assert_refused(cli(["demo", "--out", folder / "demo", "--quick", "--no-progress"], capsys), "cannot write")
    assert tree_digest(folder) == {}


# --------------------------------------------------------------------------- 12. a folder where a file goes
def test_case12_impute_out_an_existing_folder(run, tmp_path, capsys):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = tree_digest(out)
    args = ["impute", run, "--target", "rat3", "--condition", "odor=A", "--out", out, "--overwrite", "--device", "cpu"]
    assert_refused(cli(args, capsys), str(out), "is a folder")
    assert tree_digest(out) == before


# --------------------------------------------------------------------------- 13. messages
def test_case13_hostile_weights_give_no_torch_advice(run, capsys):
    import pickle

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (run / "model" / "weights.pt").write_bytes(pickle.dumps({"w": Hostile()}))
    line = assert_refused(cli(["evaluate", run, "--device", "cpu"], capsys), "weights.pt", "refuses to unpickle")
    assert "weights_only" not in line and "likely succeed" not in line


def test_case13_empty_checkpoint_names_what_is_wrong(tmp_path):
    from neurovamp.errors import DataError
    from neurovamp.models.training import load_checkpoint

    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_checkpoint(tmp_path)
    assert "the file is empty" in str(info.value) and "()" not in str(info.value)


def test_case13_a_folder_named_like_an_nwb_file(tmp_path, capsys):
    (tmp_path / "x.nwb").mkdir()
    assert_refused(cli(["info", tmp_path / "x.nwb"], capsys), "x.nwb", "is a folder")


@pytest.mark.parametrize("option", [["--model", "unknown"], ["--epochs", "many"]])
def test_case13_a_bad_option_value_is_one_line_without_usage(nwb_files, tmp_path, capsys, option):
    line = assert_refused(cli(fit_args(nwb_files, tmp_path / "run", *option), capsys), option[0])
    assert not line.startswith("usage")
    rc, err = cli(["fit", "--out", tmp_path / "run"], capsys)  # a real usage error keeps its usage block
    assert rc == 2 and err.startswith("usage")


# --------------------------------------------------------------------------- 5-8. inputs that cannot pair
def dataset_file(tmp_path: Path, labels: dict[str, dict[str, list]], *, silent: str | None = None,
                 n_units: int = 5, n_bins: int = 8) -> Path:
    """A saved dataset (.nc) of animals with the given trial labels (Poisson counts)."""
    from neurovamp.data.dataset import make_dataset, save_dataset
    from neurovamp.data.modality import make_modality

    rng = np.random.default_rng(0)
    mods = []
    for animal, columns in labels.items():
        n_trials = len(next(iter(columns.values())))
        counts = rng.poisson(2.0, size=(n_trials, n_units, n_bins))
        if animal == silent:
            counts[:] = 0
        mods.append(make_modality(counts, animal=animal, bin_size=0.05, window_start=0.0,
                                  trial_labels={k: np.asarray(v) for k, v in columns.items()}))
    path = tmp_path / "data.nc"
    save_dataset(make_dataset(mods), path)
    return path


def odors(n: int) -> list[str]:
    return [["A", "B", "C", "D"][i % 4] for i in range(n)]


def dataset_fit(path: Path, out: Path, *extra: str) -> list[str]:
    return [str(a) for a in ["fit", path, "--out", out, "--latent-dim", "2", "--hidden", "8", "--epochs", "1",
                             "--batch-size", "32", "--device", "cpu", "--no-progress", *extra]]


def test_case05_label_type_differs_across_animals(tmp_path, capsys):
    data = dataset_file(tmp_path, {"rat1": {"odor": odors(24)}, "rat2": {"odor": odors(24)},
                                   "rat3": {"odor": [i % 4 + 1 for i in range(24)]}})
    assert_refused(cli(dataset_fit(data, tmp_path / "run"), capsys), "'odor'", "rat3", "different types")
    assert not (tmp_path / "run").exists()


def test_case05_nan_pairing_labels_are_refused(tmp_path, capsys):
    codes = [float(i % 4) for i in range(24)]
    with_nan = codes[:-3] + [np.nan] * 3
    data = dataset_file(tmp_path, {"rat1": {"code": codes}, "rat2": {"code": with_nan}})
    assert_refused(cli(dataset_fit(data, tmp_path / "run", "--pair-by", "code"), capsys), "rat2", "3 of 24", "NaN")
    assert not (tmp_path / "run").exists()


def test_case06_an_animal_without_a_single_spike(tmp_path, capsys):
    data = dataset_file(tmp_path, {"rat1": {"odor": odors(24)}, "rat2": {"odor": odors(24)}}, silent="rat2")
    assert_refused(cli(dataset_fit(data, tmp_path / "run"), capsys), "rat2", "no spike")
    assert not (tmp_path / "run").exists()


def test_case07_pairing_on_a_continuous_column_points_to_binning(tmp_path, capsys):
    rng = np.random.default_rng(1)
    data = dataset_file(tmp_path, {a: {"position": rng.uniform(0, 100, 60).tolist()} for a in ("rat1", "rat2", "rat3")})
    assert_refused(cli(dataset_fit(data, tmp_path / "run", "--pair-by", "position"), capsys),
                   "'position' looks continuous", "--pair-bins")
    assert not (tmp_path / "run").exists()


def test_case08_an_animal_with_one_trial(tmp_path, capsys):
    data = dataset_file(tmp_path, {"rat1": {"odor": odors(24)}, "rat2": {"odor": ["A"]}})
    assert_refused(cli(dataset_fit(data, tmp_path / "run"), capsys), "rat2", "1 trial")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 11. sizes that cannot fit
def test_case11_binning_beyond_the_memory_limit_is_refused_with_the_numbers(nwb_files, capsys, monkeypatch):
    monkeypatch.setenv("NEUROVAMP_MEMORY_LIMIT", "100MB")
    line = assert_refused(cli(["info", *nwb_files, "--event", "odor_onset", "--window", "0", "0.4", "--bin", "1e-5"],
                              capsys), "binning 3 files at 1e-05 s bins", "GiB", "--bin", "NEUROVAMP_MEMORY_LIMIT")
    assert "memory limit of 95.4 MiB" in line


def test_case11_binning_a_whole_session_into_windows_is_sized_by_the_session(nwb_files, capsys, monkeypatch):
    """Under --windows the counts cover the whole session (about 150 s here), not --window per trial:
    1e-5 s bins of ~24 units over 150 s need about 4 GB, though 40 trials x 10 ms would need 10 MB."""
    monkeypatch.setenv("NEUROVAMP_MEMORY_LIMIT", "100MB")
    line = assert_refused(cli(["info", *nwb_files, "--windows", "1", "--window", "0", "0.01", "--bin", "1e-5"],
                              capsys), "binning 3 files at 1e-05 s bins", "GiB", "--bin")
    assert "per trial" not in line


def test_case11_subwindows_beyond_the_memory_limit_are_refused_before_training(nwb_files, tmp_path, capsys,
                                                                                 monkeypatch):
    """1 ms bins bin within the limit (about 14 MB), but 10-bin sub-windows at stride 1 multiply
    the data tenfold (about 100 MB), so the fit is refused with the numbers before any write."""
    monkeypatch.setenv("NEUROVAMP_MEMORY_LIMIT", "50MB")
    out = tmp_path / "run"
    args = fit_args(nwb_files, out, "--epochs", "1")
    for option, value in (("--bin", "0.001"), ("--subwindow", "10"), ("--stride", "1")):
        args[args.index(option) + 1] = value
    line = assert_refused(cli(args, capsys), "training on", "391 sub-windows of 10 bins per pair at stride 1",
                          "memory limit", "--stride", "NEUROVAMP_MEMORY_LIMIT")
    assert "MiB" in line
    assert not out.exists()
    # a coarser stride fits in the same limit
    args[args.index("--stride") + 1] = "4"
    rc, err = cli(args, capsys)
    assert rc == 0, err


@pytest.mark.parametrize("option", [["--hidden", "100000000"], ["--latent-dim", "1000000000"]])
def test_case11_a_model_too_large_is_refused_before_any_write(nwb_files, tmp_path, capsys, option):
    out = tmp_path / "run"
    assert_refused(cli(fit_args(nwb_files, out, "--epochs", "1", *option), capsys), "memory limit", option[0])
    assert not out.exists()


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage", ["huge hidden", "bins without bin_size", "labels=5", "paths=7"])
def test_case11_malformed_run_or_model_description_is_one_line(run, capsys, damage):
    if damage == "huge hidden":
        _edit_json(run / "model" / "config.json", lambda d: d["model_config"].update(hidden=[100000000]))
        needles = ["config.json", "memory limit"]
    elif damage == "bins without bin_size":
        _edit_json(run / "model" / "config.json", lambda d: d["bins"].pop("bin_size"))
        needles = ["config.json", "bin_size"]
    elif damage == "labels=5":
        _edit_json(run / "run.json", lambda d: d["data"].update(labels=5))
        needles = ["run.json", "data.labels", "5"]
    else:
        _edit_json(run / "run.json", lambda d: d["data"].update(paths=7))
        needles = ["run.json", "data.paths"]
    before = tree_digest(run)
    assert_refused(cli(["evaluate", run, "--device", "cpu", "--no-figures"], capsys), *needles)
    assert tree_digest(run) == before


def test_case05_nan_in_a_decoded_label_is_refused_not_scored_none(tmp_path, capsys):
    rng = np.random.default_rng(2)
    position = rng.integers(1, 5, 24).astype(float)
    holed = position.copy()
    holed[[3, 7]] = np.nan
    data = dataset_file(tmp_path, {"rat1": {"odor": odors(24), "position": position.tolist()},
                                   "rat2": {"odor": odors(24), "position": holed.tolist()}})
    run = tmp_path / "run"
    assert cli(dataset_fit(data, run), capsys)[0] == 0
    assert_refused(cli(["evaluate", run, "--label", "position", "--device", "cpu", "--no-figures"], capsys),
                   "rat2", "'position'", "2 of 24")
    assert not (run / "metrics.json").exists()


def test_case10_a_full_disk_while_writing_is_one_line(run, capsys, monkeypatch, cheap_evaluation):
    import errno

    real_replace = os.replace

    def full(src, dst, *args, **kwargs):
        if Path(os.fsdecode(dst)).name == "metrics.json":
            raise OSError(errno.ENOSPC, "No space left on device", os.fsdecode(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    before = tree_digest(run)
    assert_refused(cli(["evaluate", run, "--device", "cpu", "--no-figures"], capsys), "No space left on device")
    assert tree_digest(run) == before  # the temporary file was removed


# --------------------------------------------------------------------------- kill -9 and resume
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NEUROVAMP_SLOW") != "1", reason="set NEUROVAMP_SLOW=1 to run")
def test_sigkill_mid_fit_then_resume_is_bit_identical(nwb_files, tmp_path):
    """The last-two-checkpoints rotation keeps the guarantee: SIGKILL, --resume, the same bits."""
    import signal
    import subprocess
    import sys
    import time

    full, part = tmp_path / "full", tmp_path / "part"
    args = ["--epochs", "8", "--checkpoint-every", "1", "--patience", "0"]
    assert main(fit_args(nwb_files, full, *args)) == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "neurovamp", *fit_args(nwb_files, part, *args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (part / "checkpoints" / "checkpoint.prev.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_run_info(part)["status"] == "running"
    assert main(fit_args(nwb_files, part, *args, "--resume")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(part / "history.csv"), pd.read_csv(full / "history.csv"))
    a = load_run(full, device="cpu")[0].module_.state_dict()
    b = load_run(part, device="cpu")[0].module_.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
