"""Tasks (one declaration form, one loader), answer parsing and prompt formats."""

from ftcot.tasks.task import BUILTIN, PAPER_TASKS, Sample, Task, TaskDecl, load_task

__all__ = ["BUILTIN", "PAPER_TASKS", "Sample", "Task", "TaskDecl", "load_task"]
