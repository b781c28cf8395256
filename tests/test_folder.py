"""RunFolder: the folder rules every pipeline command shares (marker, status, resume checks, overwrite)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurovamp.analysis.truth import pooled_correlation, pooled_r2
from neurovamp.errors import ConfigError, OutputError, OutputExistsError
from neurovamp.pipelines.folder import COMPLETE, RUNNING, RunFolder, changed_settings

FROZEN = Path(__file__).parent / "legacy" / "v0.1"


def folder(path: Path) -> RunFolder:
    return RunFolder(path, marker="thing.json", format="neurovamp-thing", version=3, what="thing folder")


def digest(root: Path) -> dict[str, bytes | str]:
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def test_start_record_finish_round_trip(tmp_path):
    f = folder(tmp_path / "out")
    assert f.read() is None and f.status() is None and not f.is_complete()
    info = f.new_info(settings={"a": 1, "b": (1, 2)}, value=np.float32(0.5))
    assert list(info) == ["format", "version", "settings", "value", "status"] and info["status"] == RUNNING
    f.start(info, files=["result.txt"])
    (f.path / "result.txt").write_text("out")
    assert f.read() == {"format": "neurovamp-thing", "version": 3, "settings": {"a": 1, "b": [1, 2]},
                        "value": 0.5, "status": "running"}
    f.finish(info, seconds=1.5)
    assert f.status() == COMPLETE and f.is_complete() and f.read()["seconds"] == 1.5
    # a marker of another format is not this folder's
    (f.path / "thing.json").write_text(json.dumps({"format": "other", "status": "complete"}))
    assert f.read() is None and f.status() is None and f.read_any()["format"] == "other"


def test_clear_removes_only_recorded_files_and_keeps_the_users(tmp_path):
    f = folder(tmp_path / "out")
    f.start(f.new_info(), files=["a.txt", "sub/b.txt"])
    (f.path / "a.txt").write_text("a")
    (f.path / "sub").mkdir()
    (f.path / "sub" / "b.txt").write_text("b")
    (f.path / "sub" / "mine.txt").write_text("mine")
    (f.path / "my_folder").mkdir()
    (f.path / "my_folder" / "x.csv").write_text("1")
    removed = f.clear()
    assert sorted(removed) == ["a.txt", "sub/b.txt", "thing.json"]
    assert sorted(digest(f.path)) == ["my_folder", "my_folder/x.csv", "sub", "sub/mine.txt"]


def test_settings_comparison_names_each_difference_in_one_line(tmp_path):
    assert changed_settings({"a": 1, "b": 2, "c": None}, {"a": 1, "b": 3, "d": 4}, prefix="x.") == ["x.b", "x.d"]
    assert changed_settings({"a": [1, 2]}, {"a": [1, 2]}) == []
    f = folder(tmp_path)
    f.check_same_settings({"a": 1}, {"a": 1}, "{path}: differs ({changed})")  # the same: no error
    with pytest.raises(ConfigError, match=r"^.*: other settings \(epochs, seed\); use the same$") as err:
        f.check_same_settings({"epochs": 2, "seed": 0}, {"epochs": 3, "seed": 1}, "{path}: other settings "
                              "({changed}); use the same", error=ConfigError)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_checks_refuse_before_writing(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(OutputExistsError, match="exists and is not a folder"):
        folder(target).check_is_folder()
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("the user's")
    f = folder(out)
    assert f.holds_other_files()
    before = digest(out)
    with pytest.raises(OutputExistsError, match="report.md, which neurovamp did not write"):
        f.check_no_foreign(["report.md"], what="thing --overwrite")
    assert digest(out) == before
    with pytest.raises(ValueError, match="marker format"):
        f.write({"format": "other"})
    assert digest(out) == before


def test_the_writability_probe_fails_in_one_line(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="cannot write there \\(Permission denied"):
        folder(tmp_path / "out").check_can_write()
    assert not (tmp_path / "out").exists()


def test_a_0_1_paper_folder_cleared_keeps_the_users_files(tmp_path):
    """A paper folder written before manifests: its fixed outputs stand in for the manifest."""
    from neurovamp.pipelines.paper import _legacy_outputs, paper_folder

    run = tmp_path / "paper"
    shutil.copytree(FROZEN / "paper", run)
    ours = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    (run / "fits" / "my_notes.txt").write_text("mine")
    (run / "fits" / "paper" / "mmvm" / "seed0" / "my_plot.png").write_bytes(b"mine")
    (run / "my_analysis").mkdir()
    (run / "my_analysis" / "r.csv").write_text("1")
    removed = paper_folder(run).clear(legacy=_legacy_outputs(run))
    assert set(removed) == ours  # every 0.1 output, nothing else
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == [
        "fits/my_notes.txt", "fits/paper/mmvm/seed0/my_plot.png", "my_analysis/r.csv"]


def test_pooled_scores_by_hand():
    pred, truth = np.array([1.0, 2.0, 4.0, np.nan]), np.array([1.0, 3.0, 5.0, 7.0])
    # finite elements only: truth mean 3, SS_tot = 4 + 0 + 4 = 8, SS_res = 0 + 1 + 1 = 2
    assert pooled_r2(pred, truth) == pytest.approx(1 - 2 / 8)
    assert pooled_correlation(pred, truth) == pytest.approx(np.corrcoef([1, 2, 4], [1, 3, 5])[0, 1])
    assert np.isnan(pooled_r2(np.ones(3), np.ones(3))) and np.isnan(pooled_correlation(np.ones(3), np.arange(3.0)))


def test_a_refused_paper_resume_changes_nothing_on_disk(tmp_path):
    from test_paper import make_release

    from neurovamp.models.config import ModelConfig
    from neurovamp.pipelines.paper import PaperConfig, run_paper

    release = make_release(tmp_path / "release")
    run = tmp_path / "run"
    (run / "fits").mkdir(parents=True)
    (run / "fits" / "my_notes.txt").write_text("mine")
    started = PaperConfig(models=("mmvm",), presets=("paper",), seeds=(0,), epochs=5, folds=2, threads=1)
    info = {"format": "neurovamp-paper-run", "version": 1, "status": "running", "release": str(release),
            "config": started.to_dict(), "model_defaults": ModelConfig().to_dict()}
    (run / "paper.json").write_text(json.dumps(info))
    before = digest(run)
    other = PaperConfig(models=("mmvm",), presets=("paper",), seeds=(0,), epochs=2, folds=2, threads=1)
    with pytest.raises(OutputExistsError, match=r"other settings \(epochs differ\)"):
        run_paper(release, run, other, progress=False)
    assert digest(run) == before
