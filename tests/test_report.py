"""Markdown helpers and the model comparison table of neurovamp.analysis.report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from neurovamp.analysis.report import (
    MarkdownReport,
    column_title,
    comparison_table,
    format_mean_sd,
    markdown_image,
    markdown_section,
    markdown_table,
)
from neurovamp.errors import DataError, OutputExistsError


def metrics(model: str, odor: list, shared: list, bps: list, r2: list, coherence: list, alignment, seconds=None):
    animals = {}
    for i, name in enumerate(("rat1", "rat2", "rat3")):
        animals[name] = {
            "decoding": {"odor": {"balanced_accuracy": odor[i], "chance": 0.25, "raw_balanced_accuracy": 0.5}},
            "shared_decoding": {"odor": {"balanced_accuracy": shared[i]}},
            "imputation": {"bits_per_spike": bps[i], "psth_r2": r2[i], "coherence": coherence[i]},
        }
    out = {"model": model, "labels": ["odor"], "animals": animals,
           "alignment": {"animals": ["rat1", "rat2", "rat3"], "r2": alignment}}
    if seconds is not None:
        out["fit"] = {"seconds": seconds, "epochs_run": 12}
    return out


ALIGN = [[1.0, 0.9, 0.8], [0.7, 1.0, 0.6], [0.5, None, 1.0]]


def test_comparison_table_means_over_animals():
    table = comparison_table({
        "mmvm": metrics("mmvm", [0.6, 0.8, 1.0], [0.5, 0.6, 0.7], [0.1, 0.2, None], [0.3, 0.3, 0.3],
                        [0.9, 0.7, 0.8], ALIGN, seconds=4.5),
        "independent": metrics("independent", [0.5, 0.5, 0.5], [0.2, 0.3, 0.25], [0.0, -0.1, 0.1],
                               [0.1, 0.2, 0.3], [None, None, None], [[1, 0.1], [0.3, 1]]),
    })
    assert list(table.index) == ["mmvm", "independent"] and table.index.name == "model"
    assert table.at["mmvm", "decoding_odor"] == pytest.approx(0.8)
    assert table.at["mmvm", "decoding_odor_sd"] == pytest.approx(0.2)  # ddof=1
    assert table.at["mmvm", "chance_odor"] == pytest.approx(0.25)
    assert table.at["mmvm", "raw_decoding_odor"] == pytest.approx(0.5)
    assert table.at["mmvm", "shared_decoding_odor"] == pytest.approx(0.6)
    assert table.at["mmvm", "bits_per_spike"] == pytest.approx(0.15)  # None skipped
    # these metrics carry the pre-0.2 key "coherence": read as cross_generation_accuracy
    assert table.at["mmvm", "cross_generation_accuracy"] == pytest.approx(0.8)
    # off-diagonal mean, a null entry skipped: (0.9 + 0.8 + 0.7 + 0.6 + 0.5) / 5
    assert table.at["mmvm", "alignment_r2"] == pytest.approx(0.7)
    assert table.at["independent", "alignment_r2"] == pytest.approx(0.2)
    assert math.isnan(table.at["independent", "cross_generation_accuracy"])
    assert table.at["mmvm", "fit_seconds"] == 4.5 and table.at["mmvm", "epochs_run"] == 12
    assert math.isnan(table.at["independent", "fit_seconds"])
    assert "decoding_odor_sd" not in comparison_table({"m": metrics("m", *[[0.1] * 3] * 5, ALIGN)}, sd=False)


def test_comparison_table_shows_the_generic_null_and_map_free_alignment():
    m = metrics("mmvm", [0.6, 0.8, 1.0], [0.5, 0.6, 0.7], [0.1, 0.2, 0.3], [0.3, 0.3, 0.3], [0.9, 0.7, 0.8], ALIGN)
    for i, entry in enumerate(m["animals"].values()):
        entry["imputation"].update(cross_generation_accuracy=[0.6, 0.4, 0.5][i], generic_bits_per_spike=[0.05, 0.1, None][i],
                                   bits_per_spike_vs_generic=[0.05, 0.1, 0.15][i], condition_specific_r=[0.2, 0.4, 0.9][i])
    m["alignment"]["identity_r2"] = [[1.0, 0.2, 0.4], [0.0, 1.0, -0.3], [0.1, 0.2, 1.0]]
    original = json.dumps(m)
    table = comparison_table({"mmvm": m})
    assert table.at["mmvm", "cross_generation_accuracy"] == pytest.approx(0.5)  # the new key wins over the alias
    assert table.at["mmvm", "generic_bits_per_spike"] == pytest.approx(0.075)  # None skipped
    assert table.at["mmvm", "bits_per_spike_vs_generic"] == pytest.approx(0.1)
    assert table.at["mmvm", "condition_specific_r"] == pytest.approx(0.5)
    # off-diagonal mean of the map-free matrix: (0.2 + 0.4 + 0 - 0.3 + 0.1 + 0.2) / 6
    assert table.at["mmvm", "alignment_identity_r2"] == pytest.approx(0.1)
    assert table.at["mmvm", "alignment_identity_r2_sd"] == pytest.approx(np.std([0.2, 0.4, 0, -0.3, 0.1, 0.2], ddof=1))
    assert column_title("cross_generation_accuracy") == "cross-animal generation accuracy"
    assert json.dumps(m) == original  # the caller's metrics are not modified


def test_comparison_table_rejects_bad_input():
    with pytest.raises(DataError):
        comparison_table({})
    with pytest.raises(DataError, match="mmvm"):
        comparison_table({"mmvm": [1, 2]})


def test_markdown_table_merges_sd_columns_and_marks_the_best():
    df = pd.DataFrame(
        {"score": [0.81234, 0.5], "score_sd": [0.05, np.nan], "n": [3, 4], "note": ["a|b", None]},
        index=pd.Index(["mmvm", "avg"], name="model"),
    )
    text = markdown_table(df, digits={"score": 2}, titles={"score": "accuracy"}, bold_best={"score": "max"})
    lines = text.strip().splitlines()
    assert lines[0] == "| model | accuracy | n | note |"
    assert lines[1] == "|---|---:|---:|---:|"
    assert lines[2] == "| mmvm | **0.81 ± 0.05** | 3 | a\\|b |"
    assert lines[3] == "| avg | 0.50 | 4 | – |"
    assert format_mean_sd(None) == "–" and format_mean_sd(1.0, 0.25, 1) == "1.0 ± 0.2"
    with pytest.raises(DataError):
        markdown_table(pd.DataFrame())


def test_report_writes_atomically_with_relative_images(tmp_path):
    (tmp_path / "figs").mkdir()
    image = tmp_path / "figs" / "a b.png"
    image.write_bytes(b"png")
    assert markdown_image(image, "alt", relative_to=tmp_path) == "![alt](figs/a%20b.png)\n"
    assert 'width="300"' in markdown_image(image, "x", width=300)
    assert markdown_section("Results", "text", level=3) == "### Results\n\ntext\n"
    report = MarkdownReport("Title", folder=tmp_path)
    report.section("Part").paragraph("Hello.").bullets(["one", "two"]).image(image, "fig", caption="cap")
    report.table(pd.DataFrame({"x": [1.0]}, index=pd.Index(["m"], name="model")), caption="numbers")
    path = report.write(tmp_path / "report.md")
    text = path.read_text()
    assert text.startswith("# Title\n") and "## Part" in text and "- two" in text
    assert "![fig](figs/a%20b.png)" in text and "*numbers*" in text
    with pytest.raises(OutputExistsError):
        report.write(tmp_path / "report.md")
    report.paragraph("More.").write(tmp_path / "report.md", overwrite=True)
    assert "More." in (tmp_path / "report.md").read_text()
    assert column_title("shared_decoding_odor") == "odor shared decoding"
    assert column_title("raw_decoding_position") == "position decoding from raw counts"


def test_in_sample_alignment_is_not_tabulated():
    held_out = metrics("mmvm", [0.6] * 3, [0.5] * 3, [0.1] * 3, [0.3] * 3, [0.9] * 3, ALIGN)
    in_sample = metrics("poe", [0.6] * 3, [0.5] * 3, [0.1] * 3, [0.3] * 3, [0.9] * 3, ALIGN)
    held_out["alignment"]["cross_validated"] = True
    in_sample["alignment"]["cross_validated"] = False  # R² of a map with as many parameters as points
    table = comparison_table({"mmvm": held_out, "poe": in_sample})
    assert table.at["mmvm", "alignment_r2"] == pytest.approx(0.7)
    assert math.isnan(table.at["poe", "alignment_r2"])
