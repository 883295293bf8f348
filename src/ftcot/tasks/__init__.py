"""Task registry, answer parsing and prompt formats."""

from ftcot.tasks.registry import TASKS, Sample, TaskSpec, get_task, load_samples, load_split, split_samples

__all__ = ["TASKS", "Sample", "TaskSpec", "get_task", "load_samples", "load_split", "split_samples"]
