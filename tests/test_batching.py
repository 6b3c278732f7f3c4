"""Tokenising, padding and sharding batches for ZeRO-3 ranks."""

import pytest

from rlhf.training.batching import Encoded, EncodedPair, Encoder, collate, collate_pairs, collate_shared, plan_steps


def test_every_rank_gets_the_same_number_of_full_micro_batches():
    items = list(range(37))
    steps = plan_steps(items, world_size=2, micro_batch=4, accumulation=2, epochs=1, seed=0)
    assert len(steps) == 3  # ceil(37 / 16)
    for step in steps:
        assert len(step) == 2 and all(len(rank) == 2 for rank in step)
        assert all(len(micro) == 4 for rank in step for micro in rank)
    seen = [x for step in steps for rank in step for micro in rank for x in micro]
    assert set(seen) == set(items) and len(seen) == 48  # 11 repeats fill the last step


def test_epochs_reshuffle_deterministically():
    a = plan_steps(list(range(8)), 1, 8, 1, epochs=2, seed=3)
    b = plan_steps(list(range(8)), 1, 8, 1, epochs=2, seed=3)
    assert a == b and a[0] != a[1]
    assert plan_steps([], 2, 2, 1, 1, 0) == []


def test_collate_aligns_responses_and_masks_only_them():
    batch = collate([Encoded([5, 6], [7, 8, 9]), Encoded([5], [7])], pad_id=0)
    assert batch["response_start"] == 2
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [0, 5, 7, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert batch["loss_mask"].tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 0, 0]]
    assert batch["position_ids"][1, 1:3].tolist() == [0, 1]  # padding does not shift positions
    pairs = collate_pairs([EncodedPair([1], [2], [3, 4])], pad_id=0)
    assert pairs["input_ids"].tolist() == [[1, 2, 0], [1, 3, 4]]  # chosen rows first


def test_shared_layout_pads_prompts_left_and_puts_each_pairs_responses_under_its_prompt():
    batch = collate_shared([EncodedPair([1, 2], [3], [4, 5]), EncodedPair([6], [7, 8, 9], [])], pad_id=0)
    assert batch["prompt_ids"].tolist() == [[1, 2], [0, 6]]
    assert batch["prompt_mask"].tolist() == [[1, 1], [0, 1]]
    # rows 2i and 2i + 1: pair i's chosen and rejected, padded on the right
    assert batch["response_ids"].tolist() == [[3, 0, 0], [4, 5, 0], [7, 8, 9], [0, 0, 0]]
    assert batch["response_mask"].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 0, 0]]
    # what each response row attends to: its prompt's real tokens, then its own
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [0, 1, 1, 1, 1], [0, 1, 0, 0, 0]]


def test_a_step_groups_items_of_similar_length_into_micro_batches():
    items = [Encoded([1] * n, [2]) for n in (9, 1, 8, 2, 7, 3, 6, 4)]
    (step,) = plan_steps(items, world_size=2, micro_batch=2, accumulation=2, epochs=1, seed=0)
    for rank in step:
        for micro in rank:
            lengths = sorted(len(item) for item in micro)
            assert lengths[-1] - lengths[0] <= 2, [len(i) for i in micro]


def test_encoder_keeps_prompts_within_budget_and_ends_only_whole_responses_with_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    encoder = Encoder(tokenizer, "Be kind.", max_prompt_len=48, max_response_len=16)
    prompt = encoder.prompt("I feel anxious " * 100)
    assert len(prompt) <= 48
    assert tokenizer.decode(prompt).rstrip().endswith("<|assistant|>")  # the generation prompt survives the cut
    cut = encoder.response("words " * 100)  # longer than the budget: cut, and not ended with EOS
    assert len(cut) == 16 and tokenizer.eos_token_id not in cut
    whole = encoder.response("Hi there")
    assert whole[-1] == tokenizer.eos_token_id and len(whole) < 16
    text = encoder.scoring_text("Hello", "Hi there")
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == encoder.prompt("Hello") + encoder.response("Hi there")
    with pytest.raises(ValueError, match="leaves no room"):
        Encoder(tokenizer, "long system prompt " * 50, max_prompt_len=32, max_response_len=16)
