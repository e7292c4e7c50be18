"""Environments: Gymnasium vector envs with explicit autoreset handling, action scaling and normalisation."""
