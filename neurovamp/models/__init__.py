"""Models: MMVM VAE and baselines (networks, likelihoods, priors), the estimator, training."""
