"""ftcot: distil chain-of-thought reasoning from a large teacher into a small student (Fine-tune-CoT)."""

__version__ = "0.1.0"
