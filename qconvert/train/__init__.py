"""Training on the IR: the IR as a trainable torch program, data and losses, fine-tuning, write-back."""
