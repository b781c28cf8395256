"""Analysis of fitted models: latents, imputation, decoding, alignment, metrics and plots.

Every public function of the analysis modules is available here, imported on first use
(so ``import neurovamp.analysis`` imports neither torch, scikit-learn nor matplotlib)::

    import neurovamp as nv
    metrics = nv.analysis.evaluate_model(model, paired)
    rates = nv.analysis.impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"})
    nv.analysis.bits_per_spike(counts, predicted_rates)

Modules: :mod:`~neurovamp.analysis.evaluate` (all metrics of a model, ``metrics.json``),
:mod:`~neurovamp.analysis.impute`, :mod:`~neurovamp.analysis.decode`,
:mod:`~neurovamp.analysis.alignment`, :mod:`~neurovamp.analysis.metrics`,
:mod:`~neurovamp.analysis.plots`, :mod:`~neurovamp.analysis.figures` (the figures of a
run), :mod:`~neurovamp.analysis.report` (markdown reports), :mod:`~neurovamp.analysis.truth`
(imputations scored against a simulation's true rates).

``impute_rates`` is :func:`neurovamp.analysis.impute.impute`: the face never uses a
submodule's name (``neurovamp.analysis.impute`` stays the module, so
``import neurovamp.analysis.impute`` and ``from neurovamp.analysis.impute import impute``
keep working); see :mod:`neurovamp`.
"""

from __future__ import annotations

from neurovamp import _lazy_face

_EXPORTS = {
    # evaluate: every metric of a fitted model (the metrics.json schema)
    "evaluate_model": "neurovamp.analysis.evaluate",
    "model_latents": "neurovamp.analysis.evaluate",
    "evaluate_decoding": "neurovamp.analysis.evaluate",
    "evaluate_decoding_over_time": "neurovamp.analysis.evaluate",
    "evaluate_alignment": "neurovamp.analysis.evaluate",
    "evaluate_imputation": "neurovamp.analysis.evaluate",
    "write_metrics": "neurovamp.analysis.evaluate",
    "read_metrics": "neurovamp.analysis.evaluate",
    # impute
    "impute_rates": "neurovamp.analysis.impute:impute",
    "impute_condition_mean": "neurovamp.analysis.impute",
    "source_predictions": "neurovamp.analysis.impute",
    "select_trials": "neurovamp.analysis.impute",
    # decode
    "DecodingResult": "neurovamp.analysis.decode",
    "SharedDecodingResult": "neurovamp.analysis.decode",
    "TimeDecodingResult": "neurovamp.analysis.decode",
    "decode_labels": "neurovamp.analysis.decode",
    "decode_shared": "neurovamp.analysis.decode",
    "decode_over_time": "neurovamp.analysis.decode",
    "transfer_decode": "neurovamp.analysis.decode",
    # alignment
    "AlignmentFit": "neurovamp.analysis.alignment",
    "linear_alignment": "neurovamp.analysis.alignment",
    "linear_alignment_r2": "neurovamp.analysis.alignment",
    "alignment_matrix": "neurovamp.analysis.alignment",
    "condition_average": "neurovamp.analysis.alignment",
    # metrics
    "poisson_log_likelihood": "neurovamp.analysis.metrics",
    "bits_per_spike": "neurovamp.analysis.metrics",
    "psth_r2": "neurovamp.analysis.metrics",
    "psth_r2_by_condition": "neurovamp.analysis.metrics",
    "condition_means": "neurovamp.analysis.metrics",
    # plots and figures
    "label_colors": "neurovamp.analysis.plots",
    "save_figure": "neurovamp.analysis.plots",
    "plot_latents": "neurovamp.analysis.plots",
    "plot_latent_trajectories": "neurovamp.analysis.plots",
    "plot_confusion": "neurovamp.analysis.plots",
    "plot_decoding_over_time": "neurovamp.analysis.plots",
    "plot_alignment_matrix": "neurovamp.analysis.plots",
    "plot_psth_comparison": "neurovamp.analysis.plots",
    "plot_training_curves": "neurovamp.analysis.plots",
    "plot_model_comparison": "neurovamp.analysis.plots",
    "write_figures": "neurovamp.analysis.figures",
    "choose_units": "neurovamp.analysis.figures",
    # ground truth (simulations)
    "true_condition_rates": "neurovamp.analysis.truth",
    "imputation_vs_truth": "neurovamp.analysis.truth",
    # report
    "MarkdownReport": "neurovamp.analysis.report",
    "markdown_table": "neurovamp.analysis.report",
    "markdown_image": "neurovamp.analysis.report",
    "markdown_section": "neurovamp.analysis.report",
    "comparison_table": "neurovamp.analysis.report",
    "column_title": "neurovamp.analysis.report",
    "format_number": "neurovamp.analysis.report",
    "format_mean_sd": "neurovamp.analysis.report",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = _lazy_face(globals(), _EXPORTS)
