"""Networks: MLP torsos, critic ensembles and policies."""
