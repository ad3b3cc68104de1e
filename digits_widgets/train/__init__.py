"""Training: DIGITS' solver options, the loop, resume, and the thread / torchrun launchers."""
