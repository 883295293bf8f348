import asyncio

from ftcot.config import TeacherConfig
from ftcot.tasks import load_task
from ftcot.teachers.collect import collect
from ftcot.teachers.cost import Spending
from ftcot.teachers.hf import HFTeacher
from ftcot.teachers.store import CompletionStore


def test_local_transformers_teacher_samples_d_rationales(tiny_lm, data_dir, tmp_path):
    samples = load_task("coin_flip", data_dir).split_samples("train")[:3]
    cfg = TeacherConfig(
        backend="hf",
        model=str(tiny_lm),
        num_samples=2,
        rationale={"temperature": 0.7, "max_tokens": 12, "seed": 1},
        answer={"max_tokens": 4},
    )
    teacher = HFTeacher(str(tiny_lm))
    store = CompletionStore(tmp_path / "store.sqlite")
    outcome = collect(teacher, store, cfg, "Therefore, the answer is", samples, Spending(None))
    assert len(outcome.records) == 6 and store.count() == 12
    # Batched: one generate call for the 3 questions' step 1 (2 samples each, sharing their prompt's computation),
    # one for the 6 rationales' step 2 (it was one call per prompt: 3 + 6).
    assert teacher.requests == 2
    for r in outcome.records:
        assert r.reasoning_finish_reason in ("stop", "length") and r.usage["completion_tokens"] > 0
        assert r.model == str(tiny_lm)
    for sample in samples:  # two different samples per question, not one repeated
        assert len({r.reasoning_completion for r in outcome.records if r.sample_index == sample.sample_index}) == 2
    store.close()


def test_chat_template_is_used_when_the_model_has_one(tiny_lm):
    teacher = HFTeacher(str(tiny_lm))
    teacher.tokenizer.chat_template = "{% for m in messages %}[user] {{ m['content'] }}{% endfor %} [assistant]"
    [generation] = asyncio.run(teacher.sample("Q: hi", 1, {"temperature": 0, "max_tokens": 2}))
    framed = teacher.tokenizer("[user] Q: hi [assistant]", add_special_tokens=False)["input_ids"]
    assert generation.prompt_tokens == len(framed)  # the template's text, without a second BOS
