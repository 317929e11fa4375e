"""Training: the loop (single process and DDP) and its process-group set-up."""
