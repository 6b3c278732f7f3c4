"""The closing summary names only what the run started: stage=build_prefs starts no trainer group."""

from __future__ import annotations

from rlhf.summary import summary_lines

RECORD = {"run_dir": "/r", "zero_stage": 3, "reward_source": "local", "device": "cpu", "wall_seconds": 3.0,
          "trainer_ranks": 0, "generator_engines": 0, "reward_actors": 0}


def test_a_run_that_started_no_groups_prints_no_layout():
    lines = summary_lines(RECORD)
    assert not any(line.startswith("layout") for line in lines)


def test_the_layout_line_lists_the_groups_that_started():
    (layout,) = [line for line in summary_lines({**RECORD, "trainer_ranks": 2, "reward_actors": 1})
                 if line.startswith("layout")]
    assert "2 ZeRO-3 trainer ranks" in layout and "1 reward actor(s)" in layout and "vLLM" not in layout
