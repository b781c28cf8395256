"""One scoring layer for every method of ``bench_peers.py``, built on neurovamp's own scorers.

Every score is computed on held-out trials (the ``test`` split of neurovamp's
``pair_trials``) from two things a method provides: latent trajectories
``(trial, time, latent)`` of an animal's trials, and (for the methods that can generate)
expected counts of a target animal predicted from a source animal's trials.

neurovamp scorers used as they are
----------------------------------
- :func:`neurovamp.analysis.decode.transfer_decode` (odor decoding per animal: trained on
  the animal's training trials, tested on its test trials) and
  :func:`neurovamp.analysis.decode.decode_shared` (one classifier shared across animals,
  leave-one-animal-out on the test trials);
- :func:`neurovamp.analysis.alignment.alignment_matrix` on
  :func:`~neurovamp.analysis.alignment.condition_average` trajectories of the test trials
  (leave-one-condition-out R² of a linear map between animals);
- :func:`neurovamp.analysis.metrics.bits_per_spike` (flat-rate null by default; the
  generic null below through ``null_rates``);
- :func:`neurovamp.analysis.metrics.condition_specific_score` (its ``r``): Pearson
  correlation of ``(imputed - generic)`` against ``(true - generic)``, pooled over
  conditions, units and bins; truth = the simulator's expected rates, and here generic =
  the mean *true* rate of the target's training trials (a generic estimated from counts
  would put its own noise on both sides and correlate them spuriously).

This benchmark's own (marked ``LOCAL``)
---------------------------------------
- generic null (:func:`generic_null`): the target animal's own mean count per unit and
  bin over the trials (of every condition) it has in the training split, with one flat
  pseudo-trial and ``scipy`` smoothing. It differs from
  :func:`neurovamp.analysis.metrics.generic_prediction` (conditions weighted equally, no
  pseudo-trial): the recorded peer results were made with it, so it stays;
- CEBRA consistency: in-sample R² of a linear regression from one animal's
  condition-averaged latent trajectory to another's (``cebra.sklearn.metrics`` when CEBRA
  is installed; the same definition computed here otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from neurovamp.analysis.alignment import alignment_matrix, condition_average
from neurovamp.analysis.decode import decode_shared, transfer_decode
from neurovamp.analysis.metrics import bits_per_spike, condition_specific_score

LatentsFn = Callable[[str, str], xr.DataArray]
GenerateFn = Callable[[np.ndarray, str, str], np.ndarray]


# --------------------------------------------------------------------------- LOCAL scorers
def generic_null(train_counts: np.ndarray, smooth_bins: float = 2.0) -> np.ndarray:
    """LOCAL: the animal's own-mean ("generic") null, ``(unit, time)`` expected counts per bin.

    The mean over the animal's trials of each unit and bin, with one pseudo-trial at the
    unit's flat mean rate added, ``(Σ_trials counts + flat_unit) / (n_trials + 1)``, then
    smoothed over time with a Gaussian kernel of ``smooth_bins`` bins (0: none). Without
    the pseudo-trial a bin where a slow unit fired in no training trial has a null rate of
    0 (one held-out spike there costs ``log(eps)`` ≈ -21 nats); without smoothing a PSTH
    of a few dozen trials is so noisy that it scores below the flat rate on held-out
    trials. Either would make the null easy to beat.

    Parameters
    ----------
    train_counts
        The target animal's training-split counts ``(trial, unit, time)`` (all the
        conditions it has).
    smooth_bins
        Standard deviation of the temporal Gaussian smoothing, in bins.

    Returns
    -------
    numpy.ndarray
        Mean over trials.
    """
    counts = np.asarray(train_counts, dtype=np.float64)
    flat = counts.mean(axis=(0, 2))[:, None]
    psth = (counts.sum(axis=0) + flat) / (counts.shape[0] + 1)
    if smooth_bins > 0:
        from scipy.ndimage import gaussian_filter1d

        psth = gaussian_filter1d(psth, smooth_bins, axis=-1, mode="nearest")
    return psth


def consistency_r2(source: np.ndarray, target: np.ndarray) -> float:
    """LOCAL fallback of CEBRA's consistency score: in-sample linear-regression R².

    CEBRA (``cebra.sklearn.metrics.consistency_score``) fits
    ``sklearn.linear_model.LinearRegression`` from one embedding to the other on
    label-aligned points and reports ``.score`` in sample (R² averaged uniformly over the
    target's dimensions).

    Parameters
    ----------
    source, target
        ``(point, K)`` and ``(point, K')`` label-aligned embeddings.

    Returns
    -------
    float
        R².
    """
    x = np.column_stack([np.asarray(source, dtype=np.float64), np.ones(len(source))])
    y = np.asarray(target, dtype=np.float64)
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    res = np.sum((y - x @ w) ** 2, axis=0)
    tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    keep = tot > 0
    return float(np.mean(1.0 - res[keep] / tot[keep]))


def cebra_consistency(trajectories: Mapping[str, xr.DataArray], conditions: Sequence[str]) -> float:
    """Mean off-diagonal CEBRA consistency between animals' condition-averaged test trajectories.

    Only the conditions every animal has are used (points = condition × time). With CEBRA
    installed its own ``consistency_score(between="datasets")`` is called on these
    label-aligned points; otherwise :func:`consistency_r2`.

    Parameters
    ----------
    trajectories
        Animal → ``(condition, time, latent)`` from
        :func:`~neurovamp.analysis.alignment.condition_average`.
    conditions
        Conditions to consider.

    Returns
    -------
    float
        Mean over ordered pairs of animals.
    """
    shared = [c for c in conditions if all(not np.isnan(t.sel(condition=c).values).any() for t in trajectories.values())]
    points = {a: np.asarray(t.sel(condition=shared).values).reshape(-1, t.sizes[t.dims[-1]])
              for a, t in trajectories.items()}
    animals = list(points)
    try:
        from cebra.sklearn.metrics import consistency_score
    except ImportError:  # the default test environment has no CEBRA
        consistency_score = None
    if consistency_score is not None:
        scores, _pairs, _ids = consistency_score(
            embeddings=[points[a] for a in animals], between="datasets", dataset_ids=animals
        )
        return float(np.nanmean(np.asarray(scores, dtype=float)))
    vals = [consistency_r2(points[s], points[t]) for s in animals for t in animals if s != t]
    return float(np.mean(vals))


# --------------------------------------------------------------------------- features
def trial_features(latents: xr.DataArray, step: int) -> np.ndarray:
    """``(trial, time * latent)``: latents of every ``step``-th sub-window, flattened.

    The same features as ``select_defaults.py``: with ``step = window // stride`` the
    decoder sees the whole trajectory through non-overlapping sub-windows.
    """
    values = np.asarray(latents.transpose("trial", "time", ...).values)[:, ::step]
    return values.reshape(values.shape[0], -1)


# --------------------------------------------------------------------------- scoring
def score_latents(
    latents: LatentsFn,
    animals: Sequence[str],
    conditions: Sequence[str],
    step: int,
    label: str = "odor",
) -> dict[str, Any]:
    """Decoding and alignment scores of one fitted method (held-out trials).

    Parameters
    ----------
    latents
        ``latents(animal, split)`` → ``(trial, time, latent)`` DataArray with a ``label``
        trial coordinate.
    animals
        Animals in model order.
    conditions
        Paired conditions (the decoding classes).
    step
        Sub-window step of :func:`trial_features`.
    label
        The decoded label (the pairing condition).

    Returns
    -------
    dict
        ``decode`` (mean over animals of the transfer balanced accuracy, plus
        ``decode_by_animal``), ``shared`` (leave-one-animal-out shared classifier),
        ``chance`` (``1 / n_conditions``), ``align_r2`` (neurovamp's cross-validated
        alignment, mean off-diagonal), ``consistency`` (CEBRA's score).
    """
    decode, feats, labels, traj = {}, {}, {}, {}
    for animal in animals:
        z_train, z_test = latents(animal, "train"), latents(animal, "test")
        res = transfer_decode(trial_features(z_train, step), z_train[label].values,
                              trial_features(z_test, step), z_test[label].values)
        decode[animal] = res.score
        feats[animal] = trial_features(z_test, step)
        labels[animal] = z_test[label].values
        traj[animal] = condition_average(z_test, label, conditions=list(conditions))
    shared = decode_shared(feats, labels, within=False)
    align = alignment_matrix(traj).values
    off = ~np.eye(len(animals), dtype=bool)
    return {
        "decode": float(np.mean(list(decode.values()))),
        "decode_by_animal": decode,
        "shared": float(shared.leave_one_out_mean),
        "chance": 1.0 / len(conditions),
        "align_r2": float(np.mean(align[off])),
        "consistency": cebra_consistency(traj, conditions),
    }


def score_generation(
    generate: GenerateFn,
    paired: Any,
    true_rates: Callable[[str, np.ndarray], np.ndarray],
    condition_rate: Callable[[str, str], np.ndarray],
    conditions: Sequence[str],
    *,
    label: str = "odor",
    n_synthetic: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Imputation scores of a generative method on held-out trials and a never-experienced condition.

    Held-out trials: every ordered pair of animals (source s, target t) on the test
    pairs where both are present: t's counts predicted from s's paired trial, scored by
    bits/spike against the flat-rate null and against t's generic null, and by the
    condition-specific r of the per-condition mean prediction against the per-condition
    mean true rate of the same trials (generic = the mean true rate of the target's
    training trials).

    Never-experienced condition: for each animal missing a paired condition, the mean
    prediction from every other animal's trials of that condition (averaged over
    sources), against the simulator's expected rate; bits/spike on ``n_synthetic``
    Poisson draws from that true rate (the animal has no such trials to score on).

    Parameters
    ----------
    generate
        ``generate(source_counts (trial, unit, time), source, target)`` → expected counts
        of ``target`` ``(trial, unit_t, time)``.
    paired
        neurovamp ``PairedData``.
    true_rates
        ``true_rates(animal, rows)`` → true expected counts of the animal's trial rows.
    condition_rate
        ``condition_rate(animal, condition)`` → ``(unit, time)`` true expected counts.
    conditions
        Paired conditions.
    label
        The pairing label.
    n_synthetic
        Poisson draws for the never-experienced condition.
    seed
        Seed of those draws.

    Returns
    -------
    dict
        ``heldout_bps``, ``heldout_bps_generic``, ``heldout_r``, ``novel_bps``,
        ``novel_bps_generic``, ``novel_r`` (means over animal pairs / imputed targets;
        NaN when no animal misses a condition).
    """
    animals = paired.animals
    pairs = paired.pairs["test"]
    cond = np.asarray(paired.pair_condition["test"])
    # Score only the bins some sub-window covers (the others have no prediction).
    covered = np.zeros(paired.counts[0].shape[2], dtype=bool)
    for start in np.asarray(paired.window_starts):
        covered[start : start + paired.window] = True

    def generate_covered(counts: np.ndarray, source: str, target: str) -> np.ndarray:
        return generate(counts, source, target)[..., covered]

    generic, generic_true = {}, {}
    for m, a in enumerate(animals):
        rows = np.flatnonzero(np.asarray(paired.trial_split[a]) == "train")
        generic[a] = generic_null(paired.counts[m][rows][..., covered])
        generic_true[a] = true_rates(a, rows)[..., covered].mean(axis=0)
    flat, gen, rs = [], [], []
    for s, src in enumerate(animals):
        for t, tgt in enumerate(animals):
            if s == t:
                continue
            both = (pairs[:, s] >= 0) & (pairs[:, t] >= 0)
            pred = generate_covered(paired.counts[s][pairs[both, s]], src, tgt)
            obs = paired.counts[t][pairs[both, t]][..., covered]
            flat.append(bits_per_spike(pred, obs))
            gen.append(bits_per_spike(pred, obs, null_rates=generic[tgt]))
            truth = true_rates(tgt, pairs[both, t])[..., covered]
            levels = np.unique(cond[both])
            p_c = np.stack([pred[cond[both] == c].mean(axis=0) for c in levels])
            t_c = np.stack([truth[cond[both] == c].mean(axis=0) for c in levels])
            rs.append(condition_specific_score(p_c, t_c, generic_true[tgt])["r"])
    rng = np.random.default_rng(seed)
    nflat, ngen, nr = [], [], []
    for t, tgt in enumerate(animals):
        have = set(np.asarray(paired.modalities[tgt][label].values).tolist())
        for c in (c for c in conditions if c not in have):
            preds = []
            for s, src in enumerate(animals):
                rows = np.flatnonzero(np.asarray(paired.modalities[src][label].values) == c)
                if s != t and rows.size:
                    preds.append(generate_covered(paired.counts[s][rows], src, tgt).mean(axis=0))
            imputed = np.mean(preds, axis=0)
            truth = condition_rate(tgt, c)[..., covered]
            draws = rng.poisson(np.broadcast_to(truth, (n_synthetic,) + truth.shape)).astype(np.float64)
            rep = np.broadcast_to(imputed, draws.shape)
            nflat.append(bits_per_spike(rep, draws))
            ngen.append(bits_per_spike(rep, draws, null_rates=generic[tgt]))
            nr.append(condition_specific_score(imputed, truth, generic_true[tgt])["r"])
    nan = float("nan")
    return {
        "heldout_bps": float(np.mean(flat)),
        "heldout_bps_generic": float(np.mean(gen)),
        "heldout_r": float(np.mean(rs)),
        "novel_bps": float(np.mean(nflat)) if nflat else nan,
        "novel_bps_generic": float(np.mean(ngen)) if ngen else nan,
        "novel_r": float(np.mean(nr)) if nr else nan,
    }
