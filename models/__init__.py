"""Stage 3: scoring heads (CoFInAl, FSPN, MLP), their losses and the evaluation metrics."""
