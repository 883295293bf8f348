import json

import minidata
import pytest

from ftcot.errors import UserError
from ftcot.tasks import prompts


def test_zero_shot_and_zero_shot_cot_prompts():
    assert prompts.zero_shot(" What is 2+2? ") == "Q: What is 2+2?\n\nA:"
    assert prompts.zero_shot("What?", "encoder_decoder") == "question: What?"
    step1 = prompts.zero_shot_cot_step1("What is 2+2?")
    assert step1 == "Q: What is 2+2?\nA: Let's think step by step."
    step2 = prompts.zero_shot_cot_step2(step1, " 2 and 2 make 4.", "Therefore, the answer is")
    assert step2 == "Q: What is 2+2?\nA: Let's think step by step. 2 and 2 make 4. \nTherefore, the answer is"


def test_step2_rebuilds_the_recorded_teacher_prompt_byte_for_byte(shared_data):
    # Each recorded log block reads step1 + rationale + " \n" + trigger + completion.
    record = json.loads((shared_data / "teacher/text-davinci-002__zs_cot/multiarith.jsonl").open().readline())
    assert prompts.zero_shot_cot_step1(record["question"]) == record["reasoning_prompt"]
    step2 = prompts.zero_shot_cot_step2(
        record["reasoning_prompt"], record["reasoning_completion"], record["answer_prompt"]
    )
    assert step2.endswith(" \nTherefore, the answer (arabic numerals) is")


def test_few_shot_cot(data_dir):
    few_shot = prompts.load_few_shot_prompts(data_dir)
    text = prompts.few_shot_cot("Is the coin still heads up?", "coin_flip", few_shot)
    assert text.startswith(few_shot["coin_flip"]["prompt"]) and text.startswith("Q: A coin is heads up.")
    assert text.endswith(".\nQ: Is the coin still heads up?\nA:")
    assert text.count("\nQ: ") == minidata.FEW_SHOT["coin_flip"]  # the exemplars, then the question
    # The paper has no few-shot prompt for tracking_shuffled_objects: its declaration names none.
    with pytest.raises(UserError, match="names no few-shot-CoT prompt"):
        prompts.few_shot_cot("q", None, few_shot)
    with pytest.raises(UserError, match="no few-shot-CoT prompt 'tracking_shuffled_objects'"):
        prompts.few_shot_cot("q", "tracking_shuffled_objects", few_shot)


def test_fine_tuning_pairs():
    assert prompts.vanilla_pair(" Q? ", " 7 ") == ("Q? ###", " 7")
    assert prompts.vanilla_pair("Q?", "7", "encoder_decoder") == ("Q?", "7")
    assert prompts.ft_cot_pair("Q?", " \n\n3 plus 4 is 7. ", "7") == ("Q? ###", " 3 plus 4 is 7. --> 7")
    assert prompts.ft_cot_pair("Q?", "3 plus 4 is 7.", "7", "encoder_decoder") == ("Q?", "3 plus 4 is 7. --> 7")
