"""The command line as a new user meets it: --version, help texts with an example, option
errors before "the output exists", and run folders whose data can move."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import neurovamp
from neurovamp.cli import build_parser, main
from neurovamp.errors import DataError
from neurovamp.pipelines.fit import load_run, read_run_info

COMMANDS = ("simulate", "convert-release", "info", "fit", "evaluate", "impute", "paper", "demo")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"neurovamp {neurovamp.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_an_example_that_parses(command, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert "example" in text and "repeatable" not in text
    example = [line.strip() for line in text.splitlines() if line.strip().startswith(f"neurovamp {command} ")]
    assert example, text
    # the example, joined across its continuation lines, is accepted by the parser
    lines, argv = text.splitlines(), []
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"neurovamp {command} "))
    for line in lines[start:]:
        argv += line.strip().rstrip("\\").split()
        if not line.rstrip().endswith("\\"):
            break
    args = parser.parse_args(argv[1:])
    assert args.command == command


def test_convert_release_help_names_only_its_own_options(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["convert-release", "--help"])
    text = capsys.readouterr().out
    own = {a for action in parser._subparsers._group_actions[0].choices["convert-release"]._actions
           for a in action.option_strings}
    # an option it mentions is either its own or said to belong to another command
    assert "--allow-silent-units" not in own and "neurovamp fit" in text


def test_impute_checks_its_condition_before_the_output(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    out = tmp_path / "rat3_E.nc"
    out.write_text("mine")
    assert main(["impute", str(run), "--target", "rat3", "--condition", "odor", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--condition 'odor' must look like COL=VALUE" in err and "exists" not in err
    assert out.read_text() == "mine"


def test_fit_checks_its_filters_before_the_output(nwb_files, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["fit", *nwb_files, "--out", str(out), "--filter", "correct"]) == 2
    err = capsys.readouterr().err
    assert "filter 'correct' must look like COLUMN=VALUE" in err and "exists" not in err


def test_impute_split_default_can_be_passed():
    args = build_parser().parse_args(["impute", "RUN", "--target", "rat3", "--condition", "odor=E",
                                      "--out", "x.nc", "--split", "all"])
    assert args.split == "all"
    assert build_parser().parse_args(["impute", "RUN", "--target", "r", "--condition", "a=b",
                                      "--out", "x.nc"]).split == "all"


@pytest.fixture(scope="module")
def project(nwb_files, tmp_path_factory) -> Path:
    """A project folder: data/ with the NWB files and runs/r fitted from them (2 epochs)."""
    root = tmp_path_factory.mktemp("project") / "project"
    (root / "data").mkdir(parents=True)
    for f in nwb_files:
        shutil.copy(f, root / "data" / Path(f).name)
    files = sorted(str(p) for p in (root / "data").glob("*.nwb"))
    assert main(["fit", *files, "--out", str(root / "runs" / "r"), "--event", "odor_onset", "--window", "0", "0.4",
                 "--bin", "0.05", "--label", "odor", "--latent-dim", "2", "--subwindow", "4", "--stride", "2",
                 "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--no-progress"]) == 0
    return root


def test_run_records_data_paths_relative_to_the_run(project):
    stored = json.loads((project / "runs" / "r" / "run.json").read_text())["data"]["paths"]
    assert stored == [f"../../data/{p.name}" for p in sorted((project / "data").glob("*.nwb"))]
    # read back as absolute paths to the files
    info = read_run_info(project / "runs" / "r")
    assert [Path(p) for p in info["data"]["paths"]] == sorted((project / "data").resolve().glob("*.nwb"))


def test_a_project_moved_as_a_whole_still_loads(project, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(project, moved)
    model, paired, info = load_run(moved / "runs" / "r", device="cpu")
    assert all(Path(p).is_relative_to(moved) for p in info["data"]["paths"])
    assert paired.animals == model.animals_


def test_moved_data_are_found_with_data_dir(project, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(project / "runs" / "r", run)  # the run alone moved: ../../data no longer exists
    with pytest.raises(DataError, match="--data-dir"):
        load_run(run, device="cpu")
    with pytest.raises(DataError, match="does not hold"):
        load_run(run, device="cpu", data_dir=tmp_path)
    out = tmp_path / "rat3_E.nc"
    assert main(["impute", str(run), "--target", "rat3", "--condition", "odor=E", "--split", "all",
                 "--data-dir", str(project / "data"), "--out", str(out)]) == 0
    assert out.is_file()
    assert "wrote" in capsys.readouterr().out
