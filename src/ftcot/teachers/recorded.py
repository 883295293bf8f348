"""The recorded teacher: replays completions collected earlier (the shared text-davinci-002 records, the
paper's released CompletionDataset files, or a previous `ftcot teach` run) instead of calling a model."""

from __future__ import annotations

from collections import defaultdict

from ftcot.errors import UserError
from ftcot.tasks import Sample
from ftcot.teachers.records import TeacherCompletion


class RecordedTeacher:
    def __init__(self, records: list[TeacherCompletion], on_missing: str = "error"):
        self.by_sample: dict[tuple[str, int], list[TeacherCompletion]] = defaultdict(list)
        for r in records:
            self.by_sample[(r.task, r.sample_index)].append(r)
        for completions in self.by_sample.values():
            completions.sort(key=lambda r: r.completion_index)
        models = list(dict.fromkeys(r.model for r in records))  # each teacher once, in the order listed
        self.model = "+".join(models) or "recorded"
        self.identity = f"recorded:{self.model}"
        self.on_missing = on_missing

    def replay(self, samples: list[Sample], num_samples: int) -> tuple[list[TeacherCompletion], list[int]]:
        """Up to num_samples records for each sample, and the sample indices that have none."""
        out, missing = [], []
        for sample in samples:
            found = self.by_sample.get((sample.task, sample.sample_index), [])[:num_samples]
            if not found:
                if self.on_missing == "error":
                    raise UserError(
                        f"no recorded teacher completion for {sample.task} sample {sample.sample_index} "
                        f"(set teacher.on_missing: skip to leave such questions out)"
                    )
                missing.append(sample.sample_index)
            out.extend(found)
        return out, missing
