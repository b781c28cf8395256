"""Analysis of fitted models: latents, imputation, decoding, alignment, metrics and plots."""
