"""The process-wide grad-mode flag (kept dependency-free so tensor.py and autograd can both import it)."""
enabled = [True]
