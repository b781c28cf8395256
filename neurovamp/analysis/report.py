"""Markdown reports: tables with ``mean ± sd`` cells, embedded figures, sections, and the
side-by-side comparison of several models' ``metrics.json``.

:func:`comparison_table` flattens metrics dicts (as written by
:func:`neurovamp.analysis.evaluate.evaluate_model`) into one row per model;
:func:`markdown_table` renders any DataFrame as a GitHub-flavoured markdown table, merging
each column ``X`` with a companion ``X_sd`` into one ``mean ± sd`` cell;
:class:`MarkdownReport` assembles sections, paragraphs, tables and images and writes the
document atomically.

The metrics schema read here (one dict per model)::

    {"model": "mmvm", "labels": ["odor", ...],
     "animals": {animal: {"decoding": {label: {"balanced_accuracy", "chance", "raw_balanced_accuracy"}},
                          "shared_decoding": {label: {"balanced_accuracy"}},
                          "imputation": {"bits_per_spike", "generic_bits_per_spike",
                                         "bits_per_spike_vs_generic", "condition_specific_r",
                                         "psth_r2", "cross_generation_accuracy"}}},
     "alignment": {"animals": [...], "r2": [[...], ...], "identity_r2": [[...], ...]},
     "fit": {"seconds": ..., ...}}            # optional, e.g. added by ``neurovamp demo``

Missing entries (or ``null`` values) become NaN; a metric that is NaN for every animal is
NaN in the table, never an error. Metrics written by an older neurovamp (``coherence``
for ``cross_generation_accuracy``) are read through
:func:`neurovamp.analysis.evaluate.upgrade_metrics`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurovamp._files import atomic_output
from neurovamp.errors import DataError

__all__ = [
    "SD_SUFFIX",
    "COLUMN_TITLES",
    "format_number",
    "format_mean_sd",
    "markdown_table",
    "markdown_image",
    "markdown_section",
    "MarkdownReport",
    "comparison_table",
    "column_title",
    "seed_summary",
    "compare_over_seeds",
]

#: Suffix of the column that holds the standard deviation of column ``X`` (``X_sd``).
SD_SUFFIX = "_sd"

#: Human-readable titles of the fixed :func:`comparison_table` columns (label-specific
#: columns are titled by :func:`column_title`).
COLUMN_TITLES: dict[str, str] = {
    "model": "model",
    "bits_per_spike": "bits/spike",
    "generic_bits_per_spike": "generic: bits/spike",
    "bits_per_spike_vs_generic": "bits/spike vs generic",
    "condition_specific_r": "condition-specific r",
    "psth_r2": "PSTH R²",
    "cross_generation_accuracy": "cross-animal generation accuracy",
    "alignment_r2": "alignment R²",
    "alignment_identity_r2": "alignment R², no map",
    "fit_seconds": "fit time (s)",
    "epochs_run": "epochs",
}

_MISSING = "–"


# --------------------------------------------------------------------------- formatting
def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_number(value: Any, digits: int = 3) -> str:
    """Format one table cell.

    Parameters
    ----------
    value
        A number, a string or a missing value (``None``/NaN).
    digits
        Decimal places of non-integer numbers.

    Returns
    -------
    str
        ``"–"`` for a missing value; integers without decimals; other numbers with
        ``digits`` decimals; anything else via ``str``.
    """
    if _is_missing(value):
        return _MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{float(value):.{digits}f}"
    return str(value)


def format_mean_sd(mean: Any, sd: Any = None, digits: int = 3) -> str:
    """``"mean ± sd"`` (or just the mean when ``sd`` is missing).

    Parameters
    ----------
    mean
        The central value.
    sd
        The spread; omitted from the text when ``None``/NaN.
    digits
        Decimal places of both numbers.

    Returns
    -------
    str
        E.g. ``"0.812 ± 0.041"``; ``"–"`` when ``mean`` is missing.
    """
    if _is_missing(mean):
        return _MISSING
    text = format_number(float(mean), digits)
    if _is_missing(sd):
        return text
    return f"{text} ± {float(sd):.{digits}f}"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    table: pd.DataFrame,
    *,
    digits: int | Mapping[str, int] = 3,
    index: bool | None = None,
    titles: Mapping[str, str] | None = None,
    sd_suffix: str = SD_SUFFIX,
    bold_best: Mapping[str, str] | None = None,
) -> str:
    """Render a DataFrame as a markdown (GitHub pipe) table.

    A column ``X`` that has a companion column ``X`` + ``sd_suffix`` is shown as one column
    of ``mean ± sd`` cells; the companion is not shown separately.

    Parameters
    ----------
    table
        The data. Its index is shown as the first column when ``index`` is true (default:
        when the index is named or not a plain ``RangeIndex``).
    digits
        Decimal places, for every column or per column name (default 3 for others).
    index
        Whether to show the index.
    titles
        Column name → header text (default: the column name).
    sd_suffix
        Suffix marking standard-deviation columns.
    bold_best
        Column name → ``"max"`` or ``"min"``: the best value of that column is printed in
        bold (ties all bold).

    Returns
    -------
    str
        The table, ending with a newline.

    Raises
    ------
    DataError
        If ``table`` is not a DataFrame or has no columns.
    """
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"markdown_table needs a pandas DataFrame, got {type(table).__name__}")
    if table.shape[1] == 0:
        raise DataError("markdown_table: the table has no columns")
    titles = dict(titles or {})
    columns = [str(c) for c in table.columns]
    shown = [c for c in columns if not (c.endswith(sd_suffix) and c[: -len(sd_suffix)] in columns)]
    if index is None:
        index = table.index.name is not None or not isinstance(table.index, pd.RangeIndex)

    def digits_of(column: str) -> int:
        if isinstance(digits, Mapping):
            return int(digits.get(column, 3))
        return int(digits)

    best: dict[str, set[int]] = {}
    for column, how in (bold_best or {}).items():
        if column not in columns:
            continue
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(values).any():
            continue
        target = np.nanmax(values) if how == "max" else np.nanmin(values)
        rounded = np.round(values, digits_of(column))
        best[column] = set(np.flatnonzero(np.isclose(rounded, round(float(target), digits_of(column)))).tolist())

    header = ([str(table.index.name or "")] if index else []) + [titles.get(c, c) for c in shown]
    lines = [
        "| " + " | ".join(_escape(h) for h in header) + " |",
        "|" + "|".join(["---"] * (1 if index else 0) + ["---:" for _ in shown]) + "|",
    ]
    positions = {str(c): i for i, c in enumerate(table.columns)}
    for row in range(table.shape[0]):
        cells = [format_number(table.index[row])] if index else []
        for column in shown:
            value = table.iat[row, positions[column]]
            sd_col = column + sd_suffix
            if sd_col in positions and not isinstance(value, str):
                text = format_mean_sd(value, table.iat[row, positions[sd_col]], digits_of(column))
            else:
                text = format_number(value, digits_of(column))
            if row in best.get(column, ()):
                text = f"**{text}**"
            cells.append(_escape(text))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_image(path: str | os.PathLike, alt: str = "", *, relative_to: str | os.PathLike | None = None,
                   width: int | None = None) -> str:
    """Markdown that embeds an image.

    Parameters
    ----------
    path
        The image file.
    alt
        Alternative text (shown when the image cannot be displayed).
    relative_to
        Folder of the markdown document; the link is made relative to it (so the report
        and its figures can be moved together).
    width
        Display width in pixels; uses an HTML ``<img>`` tag (markdown has no size syntax).

    Returns
    -------
    str
        ``![alt](path)`` (or an ``<img>`` tag), ending with a newline.
    """
    target = Path(path)
    if relative_to is not None:
        target = Path(os.path.relpath(Path(path).resolve(), Path(relative_to).resolve()))
    link = target.as_posix().replace(" ", "%20")
    if width is not None:
        return f'<img src="{link}" alt="{_escape(alt)}" width="{int(width)}">\n'
    return f"![{_escape(alt)}]({link})\n"


def markdown_section(title: str, body: str = "", level: int = 2) -> str:
    """A markdown heading followed by ``body``.

    Parameters
    ----------
    title
        Heading text.
    body
        Markdown under the heading (may be empty).
    level
        Heading level 1-6.

    Returns
    -------
    str
        ``"## title\\n\\nbody\\n"``.
    """
    level = min(max(int(level), 1), 6)
    text = f"{'#' * level} {title.strip()}\n"
    if body:
        text += "\n" + body.rstrip("\n") + "\n"
    return text


class MarkdownReport:
    """Assemble a markdown document block by block and write it atomically.

    Parameters
    ----------
    title
        Level-1 heading of the document.
    folder
        Folder the document will be written to; image links are made relative to it.

    Examples
    --------
    >>> report = MarkdownReport("Demo", folder="out")
    >>> report.section("Results").paragraph("MMVM aligns the animals.")  # doctest: +ELLIPSIS
    <...MarkdownReport object at ...>
    >>> report.text().startswith("# Demo")
    True
    """

    def __init__(self, title: str, folder: str | os.PathLike | None = None) -> None:
        self.title = str(title)
        self.folder = Path(folder) if folder is not None else None
        self._blocks: list[str] = []

    def section(self, title: str, level: int = 2) -> MarkdownReport:
        """Add a heading (level 2 by default)."""
        self._blocks.append(markdown_section(title, level=level))
        return self

    def paragraph(self, text: str) -> MarkdownReport:
        """Add a paragraph of markdown text."""
        self._blocks.append(str(text).strip() + "\n")
        return self

    def bullets(self, items: Iterable[str]) -> MarkdownReport:
        """Add a bulleted list."""
        self._blocks.append("".join(f"- {item}\n" for item in items))
        return self

    def table(self, table: pd.DataFrame, caption: str | None = None, **options: Any) -> MarkdownReport:
        """Add a table (see :func:`markdown_table` for ``options``) with an optional caption."""
        block = markdown_table(table, **options)
        if caption:
            block += f"\n*{caption.strip()}*\n"
        self._blocks.append(block)
        return self

    def image(self, path: str | os.PathLike, alt: str = "", caption: str | None = None,
              width: int | None = None) -> MarkdownReport:
        """Add an image (link relative to the report folder) with an optional caption."""
        block = markdown_image(path, alt, relative_to=self.folder, width=width)
        if caption:
            block += f"\n*{caption.strip()}*\n"
        self._blocks.append(block)
        return self

    def raw(self, markdown: str) -> MarkdownReport:
        """Add markdown as is."""
        self._blocks.append(str(markdown).rstrip("\n") + "\n")
        return self

    def text(self) -> str:
        """The whole document.

        Returns
        -------
        str
            Title and blocks separated by blank lines.
        """
        return "\n".join([f"# {self.title}\n", *self._blocks])

    def write(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the document atomically.

        Parameters
        ----------
        path
            Output ``.md`` file.
        overwrite
            Replace an existing file.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        OutputExistsError
            If ``path`` exists and ``overwrite`` is false.
        """
        text = self.text()
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return Path(path)


# --------------------------------------------------------------------------- comparison
def _number(value: Any) -> float:
    if value is None or isinstance(value, (bool, np.bool_)):
        return float("nan")
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    sd = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return float(arr.mean()), sd


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _labels_of(metrics: Mapping[str, Any]) -> list[str]:
    labels = [str(label) for label in (metrics.get("labels") or [])]
    for per_animal in (metrics.get("animals") or {}).values():
        for section in ("decoding", "shared_decoding"):
            for label in (_get(per_animal, section) or {}):
                if str(label) not in labels:
                    labels.append(str(label))
    return labels


def _alignment_offdiagonal(alignment: Any, key: str = "r2") -> tuple[float, float]:
    matrix = _get(alignment, key)
    if matrix is None or (key == "r2" and _get(alignment, "cross_validated") is False):  # in-sample R² is not a score
        return float("nan"), float("nan")
    try:
        arr = np.array([[_number(v) for v in row] for row in matrix], dtype=float)
    except TypeError:
        return float("nan"), float("nan")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        return float("nan"), float("nan")
    off = arr[~np.eye(arr.shape[0], dtype=bool)]
    return _mean_sd(off.tolist())


def column_title(column: str) -> str:
    """Readable header of a :func:`comparison_table` column.

    Parameters
    ----------
    column
        Column name, e.g. ``"decoding_odor"``.

    Returns
    -------
    str
        E.g. ``"odor decoding"``, ``"odor shared decoding"``, ``"bits/spike"``.
    """
    if column in COLUMN_TITLES:
        return COLUMN_TITLES[column]
    for prefix, suffix in (
        ("raw_decoding_", "decoding from raw counts"),
        ("shared_decoding_", "shared decoding"),
        ("decoding_", "decoding"),
        ("chance_", "chance"),
    ):
        if column.startswith(prefix):
            return f"{column[len(prefix):]} {suffix}"
    return column.replace("_", " ")


def comparison_table(metrics_by_model: Mapping[str, Mapping[str, Any]], *, sd: bool = True) -> pd.DataFrame:
    """One row per model summarising its metrics (means over animals).

    Parameters
    ----------
    metrics_by_model
        Model name → metrics dict (the ``metrics.json`` of one model, see the module
        docstring), in the row order wanted.
    sd
        Add ``<column>_sd`` columns: the standard deviation over animals (over animal
        pairs for ``alignment_r2``; NaN with a single value).

    Returns
    -------
    pandas.DataFrame
        Index ``model``; columns, for every label of any model:
        ``decoding_<label>`` (balanced accuracy of each animal's own decoder, mean over
        animals), ``chance_<label>`` (its chance level), ``shared_decoding_<label>`` (one
        decoder shared across animals), ``raw_decoding_<label>`` (decoding raw counts, the
        model-free reference); then ``bits_per_spike``, ``generic_bits_per_spike`` (the
        generic prediction, the animal's own mean over its conditions, vs a flat rate),
        ``bits_per_spike_vs_generic``, ``condition_specific_r``, ``psth_r2``,
        ``cross_generation_accuracy`` (imputation of each animal from the others, mean over
        animals; also as ``coherence``, its deprecated pre-0.2 name, so older tables still
        line up), ``alignment_r2`` (mean off-diagonal entry of the cross-validated
        cross-animal alignment matrix, ``alignment.mean_r2``), ``alignment_identity_r2``
        (the same of the map-free matrix ``alignment.identity_r2``,
        ``alignment.identity_mean_r2``) and, when the metrics carry a ``fit`` section, ``fit_seconds`` and ``epochs_run``.
        Missing values are NaN.

    Raises
    ------
    DataError
        If ``metrics_by_model`` is empty or an entry is not a mapping.
    """
    if not isinstance(metrics_by_model, Mapping) or not metrics_by_model:
        raise DataError("comparison_table needs a non-empty mapping model name -> metrics dict")
    labels: list[str] = []
    for name, metrics in metrics_by_model.items():
        if not isinstance(metrics, Mapping):
            raise DataError(f"metrics of model {name!r} must be a dict (a metrics.json), got {type(metrics).__name__}")
        for label in _labels_of(metrics):
            if label not in labels:
                labels.append(label)

    import copy

    from neurovamp.analysis.evaluate import upgrade_metrics

    rows = []
    for name, metrics in metrics_by_model.items():
        metrics = upgrade_metrics(copy.deepcopy(dict(metrics)))
        animals = metrics.get("animals") or {}
        if not isinstance(animals, Mapping):
            raise DataError(f"metrics of model {name!r}: 'animals' must map animal -> metrics")
        row: dict[str, float] = {}

        def put(column: str, values: Sequence[float]) -> None:
            mean, spread = _mean_sd(values)
            row[column] = mean
            if sd:
                row[column + SD_SUFFIX] = spread

        per_animal = list(animals.values())
        for label in labels:
            put(f"decoding_{label}", [_number(_get(a, "decoding", label, "balanced_accuracy")) for a in per_animal])
            row[f"chance_{label}"] = _mean_sd([_number(_get(a, "decoding", label, "chance")) for a in per_animal])[0]
            put(
                f"shared_decoding_{label}",
                [_number(_get(a, "shared_decoding", label, "balanced_accuracy")) for a in per_animal],
            )
            put(
                f"raw_decoding_{label}",
                [_number(_get(a, "decoding", label, "raw_balanced_accuracy")) for a in per_animal],
            )
        for metric in ("bits_per_spike", "generic_bits_per_spike", "bits_per_spike_vs_generic",
                       "condition_specific_r", "psth_r2", "cross_generation_accuracy"):
            put(metric, [_number(_get(a, "imputation", metric)) for a in per_animal])
        for suffix in ("", SD_SUFFIX) if sd else ("",):  # deprecated alias (pre-0.2 name), as metrics.json keeps it
            row["coherence" + suffix] = row["cross_generation_accuracy" + suffix]
        for column, key in (("alignment_r2", "r2"), ("alignment_identity_r2", "identity_r2")):
            mean, spread = _alignment_offdiagonal(metrics.get("alignment"), key)
            row[column] = mean
            if sd:
                row[column + SD_SUFFIX] = spread
        fit = metrics.get("fit")
        if isinstance(fit, Mapping):
            row["fit_seconds"] = _number(fit.get("seconds"))
            row["epochs_run"] = _number(fit.get("epochs_run"))
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index([str(n) for n in metrics_by_model], name="model"))
    return table.astype(float)


# --------------------------------------------------------------------------- over seeds
def seed_summary(values_by_model: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Mean, SD and number of seeds of one score per model.

    Parameters
    ----------
    values_by_model
        Model → the score on each seed (NaN / None for a missing seed).

    Returns
    -------
    pandas.DataFrame
        Index ``model``; columns ``mean``, ``sd`` (NaN with one seed), ``n``.
    """
    rows = []
    for name, values in values_by_model.items():
        mean, sd = _mean_sd([_number(v) for v in values])
        n = int(np.isfinite([_number(v) for v in values]).sum())
        rows.append({"mean": mean, "sd": sd, "n": n})
    return pd.DataFrame(rows, index=pd.Index([str(n) for n in values_by_model], name="model"))


def compare_over_seeds(values_by_model: Mapping[str, Sequence[float]], what: str, *, model: str = "mmvm",
                       higher_is_better: bool = True) -> str:
    """One sentence comparing ``model`` with the best other model on a score, over seeds.

    The difference to the other model is taken seed by seed (the models share the data,
    split and pairs of a seed). It is called *clear* when it has the same sign on every
    seed and its mean exceeds twice its standard error; otherwise it is *within the
    noise* of the seeds. With one seed no noise estimate exists, and the sentence says so.

    Parameters
    ----------
    values_by_model
        Model → the score on each seed, seeds in the same order for every model.
    what
        Name of the score, as it should read in the sentence.
    model
        The model the sentence is about.
    higher_is_better
        Direction of the score.

    Returns
    -------
    str
        The sentence (empty when ``model`` or every other model lacks the score).
    """
    if model not in values_by_model:
        return ""
    mine = np.array([_number(v) for v in values_by_model[model]], dtype=float)
    sign = 1.0 if higher_is_better else -1.0
    others = {}
    for name, values in values_by_model.items():
        arr = np.array([_number(v) for v in values], dtype=float)
        if name != model and np.isfinite(arr).any():
            others[name] = arr
    if not others or not np.isfinite(mine).any():
        return ""
    best = max(others, key=lambda n: sign * np.nanmean(others[n]))
    ref = others[best]
    both = np.isfinite(mine) & np.isfinite(ref)
    diff = (mine - ref)[both]
    n = int(diff.size)

    def ms(arr: np.ndarray) -> str:
        arr = arr[np.isfinite(arr)]
        return format_mean_sd(float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else None)

    rank = 1 + sum(sign * np.nanmean(v) > sign * np.nanmean(mine) for v in others.values())
    head = (f"{what}: {model} {ms(mine)} vs the best other model, {best}, {ms(ref)} "
            f"({model} ranks {rank}/{len(others) + 1} by the mean")
    if n == 0:
        return head + ")."
    mean = float(diff.mean())
    better = "better" if sign * mean > 0 else "worse"
    if n < 2:
        return head + f"; one seed, so no noise estimate: the difference {mean:+.3f} may be noise)."
    se = float(diff.std(ddof=1)) / np.sqrt(n)
    same_sign = bool(np.all(diff > 0) or np.all(diff < 0))
    if same_sign and abs(mean) > 2 * se:
        return head + f"); {model} is {better} by {abs(mean):.3f} on every one of {n} seeds (a clear difference)."
    return head + f"); the difference {mean:+.3f} ± {se:.3f} (standard error over {n} seeds) is within the noise."
