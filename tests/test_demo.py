"""End-to-end test of ``neurovamp demo --quick``: outputs, report numbers, resuming, no overwrite."""

from __future__ import annotations

import io
import json
import shutil
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurovamp.analysis.report import comparison_table
from neurovamp.cli import main
from neurovamp.models.estimator import MultiAnimalModel
from neurovamp.pipelines.fit import load_run, read_run_info

MODELS = ("mmvm", "independent")


def demo_args(out: Path, *extra: str) -> list[str]:
    return ["demo", "--out", str(out), "--quick", "--device", "cpu", "--no-progress", *extra]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """A quick demo interrupted while saving the second model, then resumed."""
    root = tmp_path_factory.mktemp("demo")
    out = root / "demo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROVAMP_DATA", str(root / "cache"))
        original = MultiAnimalModel.save
        interrupted: list[str] = []

        def save_then_interrupt(self, path, **kwargs):
            if self.config.model == "independent" and not interrupted:
                interrupted.append(str(path))
                raise KeyboardInterrupt
            return original(self, path, **kwargs)

        mp.setattr(MultiAnimalModel, "save", save_then_interrupt)
        assert main(demo_args(out)) == 130
        assert interrupted, "the interruption was never triggered"
        state = {
            "demo_status": json.loads((out / "demo.json").read_text())["status"],
            "independent_status": read_run_info(out / "runs" / "independent")["status"],
            "report_after_interrupt": (out / "report.md").exists(),
            "mmvm_weights_mtime": (out / "runs" / "mmvm" / "model" / "weights.pt").stat().st_mtime_ns,
            "mmvm_metrics": (out / "runs" / "mmvm" / "metrics.json").read_text(),
        }
        mp.setattr(MultiAnimalModel, "save", original)
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            assert main(demo_args(out)) == 0
        state["resume_output"] = buffer.getvalue()
    state["out"] = out
    return state


def _cell_numbers(cell: str) -> tuple[float, float | None]:
    """``"0.512 ± 0.043"`` → (0.512, 0.043); ``"**0.5**"`` → (0.5, None)."""
    cell = cell.replace("*", "").strip()
    parts = [float(p) for p in re.findall(r"-?\d+\.\d+|-?\d+", cell)]
    return parts[0], (parts[1] if len(parts) > 1 else None)


def _report_table(report: str, first_header: str, containing: str = "") -> pd.DataFrame:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |") and containing in line)
    header = [h.strip() for h in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return pd.DataFrame(rows, columns=header).set_index(header[0])


def test_interrupted_demo_resumes_without_refitting_complete_models(demo):
    out = demo["out"]
    assert demo["demo_status"] == "running" and demo["independent_status"] == "interrupted"
    assert not demo["report_after_interrupt"]
    # mmvm was complete before the interruption: reused, not refitted or re-evaluated
    assert (out / "runs" / "mmvm" / "model" / "weights.pt").stat().st_mtime_ns == demo["mmvm_weights_mtime"]
    assert (out / "runs" / "mmvm" / "metrics.json").read_text() == demo["mmvm_metrics"]
    assert "reused mmvm" in demo["resume_output"]
    info = json.loads((out / "demo.json").read_text())
    assert info["status"] == "complete" and info["reused"] == ["mmvm"] and info["fitted"] == ["independent"]
    # the interrupted fit was resumed from its checkpoint: one history, epochs 1..2
    history = pd.read_csv(out / "runs" / "independent" / "history.csv")
    assert list(history["epoch"]) == [1, 2]


def test_run_folders_work_with_the_run_loader(demo):
    out = demo["out"]
    for name in MODELS:
        run = out / "runs" / name
        info = read_run_info(run)
        assert info["status"] == "complete" and info["model"]["model"] == name
        assert info["pairing"]["conditions"] == ["A", "B", "C", "D", "E"]
        for file in ("history.csv", "loss.png", "metrics.json", "figures/latents.png", "figures/alignment.png"):
            assert (run / file).is_file(), f"{name}: {file}"
    model, paired, _ = load_run(out / "runs" / "mmvm", device="cpu")
    assert paired.animals == ("rat1", "rat2", "rat3")
    # rat3 never smelled odor E: masked in every E pair
    for split in ("train", "val", "test"):
        e_pairs = paired.pair_condition[split] == "E"
        assert not paired.mask(split)[e_pairs, 2].any()
    z = model.latents(paired, "rat3", split="test")
    assert z.dims == ("trial", "time", "latent")


def test_report_numbers_match_metrics_json(demo):
    out = demo["out"]
    combined = json.loads((out / "metrics.json").read_text())
    assert list(combined) == list(MODELS)
    for name in MODELS:
        own = {k: v for k, v in combined[name].items() if k not in ("over_seeds", "leave_condition_out",
                                                                     "band_vs_truth")}
        assert own == json.loads((out / "runs" / name / "metrics.json").read_text())
        assert combined[name]["model"] == name
        assert combined[name]["fit"]["epochs_run"] == 2
        gt = combined[name]["ground_truth"]
        assert gt["target"] == "rat3" and gt["by_odor"]["E"]["seen"] is False and gt["by_odor"]["A"]["seen"] is True

    report = (out / "report.md").read_text()
    table = _report_table(report, "model", "| odor decoding |")
    assert list(table.index) == list(MODELS)
    for name in MODELS:
        animals = combined[name]["animals"]
        for label in ("odor", "position"):
            own = [animals[a]["decoding"][label]["balanced_accuracy"] for a in animals]
            mean, sd = _cell_numbers(table.at[name, f"{label} decoding"])
            assert mean == pytest.approx(np.mean(own), abs=6e-4)
            assert sd == pytest.approx(np.std(own, ddof=1), abs=6e-4)
            shared = [animals[a]["shared_decoding"][label]["balanced_accuracy"] for a in animals]
            assert _cell_numbers(table.at[name, f"{label} shared decoding"])[0] == pytest.approx(np.mean(shared),
                                                                                                   abs=6e-4)
        # "coherence" was renamed cross_generation_accuracy (same numbers; the old key is still written)
        for key, title in (("bits_per_spike", "bits/spike"), ("psth_r2", "PSTH R²"),
                           ("cross_generation_accuracy", "cross-animal generation accuracy")):
            values = [animals[a]["imputation"][key] for a in animals]
            assert _cell_numbers(table.at[name, title])[0] == pytest.approx(np.mean(values), abs=6e-4)
        # the generic null beside bits/spike: the per-animal mean, equal to metrics.json's summary
        summary = combined[name]["summary"]
        for key, title in (("generic_bits_per_spike", "generic: bits/spike"),
                           ("bits_per_spike_vs_generic", "bits/spike vs generic"),
                           ("condition_specific_r", "condition-specific r")):
            values = [v for v in (animals[a]["imputation"][key] for a in animals) if v is not None]
            if not values:
                assert table.at[name, title] == "–" and summary[key] is None
                continue
            assert _cell_numbers(table.at[name, title])[0] == pytest.approx(np.mean(values), abs=6e-4)
            assert _cell_numbers(table.at[name, title])[0] == pytest.approx(summary[key], abs=6e-4)
        # the mean off-diagonal alignment equals evaluate_model's own summary
        assert _cell_numbers(table.at[name, "alignment R²"])[0] == pytest.approx(
            combined[name]["summary"]["alignment_r2"], abs=6e-4
        )
        # ... and the map-free alignment beside it equals alignment.identity_mean_r2
        identity = combined[name]["alignment"].get("identity_mean_r2")
        if identity is None:
            assert table.at[name, "alignment R², no map"] == "–"
        else:
            assert _cell_numbers(table.at[name, "alignment R², no map"])[0] == pytest.approx(identity, abs=6e-4)
    # ground-truth table: rat3's unseen odor
    truth = _report_table(report, "model", "odor E R²")
    unseen = combined["mmvm"]["ground_truth"]["by_odor"]["E"]
    assert _cell_numbers(truth.at["mmvm", "odor E R²"])[0] == pytest.approx(unseen["r2"], abs=6e-4)
    assert _cell_numbers(truth.at["mmvm", "condition-specific r"])[0] == pytest.approx(unseen["condition_r"], abs=6e-4)
    assert _cell_numbers(truth.at["mmvm", "bits/spike vs generic"])[0] == pytest.approx(unseen["bps_generic"],
                                                                                         abs=6e-4)
    generic = next(i for i in truth.index if i.startswith("generic"))
    assert _cell_numbers(truth.at[generic, "odor E correlation"])[0] == pytest.approx(
        unseen["generic_correlation"], abs=6e-4)
    # over seeds (quick: one seed) and leave-one-condition-out, side by side with the same numbers
    seeds = _report_table(report, "model", "unseen odor: condition-specific r")
    for name in MODELS:
        over = combined[name]["over_seeds"]
        assert over["seeds"] == [0]
        cell = seeds.at[name, "unseen odor: condition-specific r"]
        assert _cell_numbers(cell)[0] == pytest.approx(over["mean"]["unseen_condition_r"], abs=6e-4)
        assert over["mean"]["unseen_condition_r"] == pytest.approx(
            combined[name]["ground_truth"]["by_odor"]["E"]["condition_r"])
    loco = _report_table(report, "model", "| held-out trials |")
    for name in MODELS:
        fit = combined[name]["leave_condition_out"]["fits"][0]
        assert (fit["animal"], fit["condition"]) == ("rat3", "D")
        assert _cell_numbers(loco.at[name, "bits/spike vs generic"])[0] == pytest.approx(fit["bps_generic"], abs=6e-4)
        assert _cell_numbers(loco.at[name, "condition-specific r"])[0] == pytest.approx(fit["r"], abs=6e-4)
    assert "within the noise" in report or "no noise estimate" in report
    # the band of the unseen odor, its model error from each model's leave-one-condition-out fit, vs the truth
    for name in MODELS:
        band = combined[name]["band_vs_truth"]
        assert band["band"] == "predictive-loco" and band["conditions"] == ["D"] and 0.0 <= band["coverage"] <= 1.0
        assert _cell_numbers(truth.at[name, "95 % band coverage"])[0] == pytest.approx(band["coverage"], abs=6e-4)
        assert f"{name} {band['coverage']:.2f}" in report
    assert "Against the true rate of odor E it covers:" in report

    csv = pd.read_csv(out / "comparison.csv", index_col="model").astype(float)
    expected = comparison_table(combined)
    pd.testing.assert_frame_equal(csv, expected, check_exact=False, rtol=1e-5, check_names=False)

    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (out / link).is_file(), link


def test_complete_demo_is_never_overwritten(demo, tmp_path, capsys):
    out = demo["out"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(demo_args(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(demo_args(out, "--seed", "3")) == 2  # other settings: refused too
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    # a demo made with other default model settings (an older neurovamp) is not reused
    older = tmp_path / "older"
    shutil.copytree(out, older)
    info = json.loads((older / "demo.json").read_text())
    info["status"] = "running"
    info["model_defaults"]["decoder"] = "linear"
    (older / "demo.json").write_text(json.dumps(info))
    assert main(demo_args(older)) == 2
    assert "other default model settings" in capsys.readouterr().err
    # a folder that is not a demo is refused even with --overwrite
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(demo_args(other, "--overwrite")) == 2
    assert (other / "notes.txt").read_text() == "keep me"
