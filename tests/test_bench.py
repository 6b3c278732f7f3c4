"""The benchmark's arithmetic and report, from synthetic measurements (no timings are checked)."""

import json

import pytest

from rlhf.bench import report
from rlhf.bench.flops import mfu, train_flops, update_flops
from rlhf.bench.ours import layout_overrides
from rlhf.bench.page import page


def _round(m, warmup, wall, gen, score, train, sync, generated, trained):
    return {"speeches": m, "warmup": warmup, "round_seconds": wall,
            "seconds": {"generate": gen, "score": score, "train": train, "weight_sync": sync},
            "tokens_generated": generated, "trained_tokens": trained, "samples": 2 * m, "pairs": m,
            "optimizer_steps": m // 16}


def synthetic() -> dict:
    ours_rounds = [_round(32, True, 99.0, 50, 9, 30, 9, 1, 1),  # warm-up: must not count
                   _round(32, False, 10.0, 4.0, 1.0, 4.0, 0.4, 4000, 20000),
                   _round(32, False, 12.0, 5.0, 1.0, 5.0, 0.6, 4000, 20000),
                   _round(64, False, 20.0, 8.0, 2.0, 9.0, 0.5, 8000, 40000)]
    return {
        "meta": {"command": "python -m rlhf.bench --quick", "name": "t", "quick": True, "date": "2026-01-01 00:00 UTC",
                 "machine": {"cpus": 2, "cpu_model": "cpu", "memory_gib": 24.0},
                 "versions": {"torch": "x", "trl": "y"},
                 "settings": {"rounds": 2, "warmup": 1, "batch_size": 16, "micro_batch": 4, "samples_per_speech": 2,
                              "speeches": [32, 64], "layouts": [[1, 2], [2, 2]]}},
        "peak": {"float32": {"flops_per_s": 2e11, "size": 2048, "threads": 2},
                 "bfloat16": {"flops_per_s": 1e12, "size": 2048, "threads": 2}},
        "models": {"tiny": {"params": 1_000_000, "dtype": "float32"}},
        "runs": [
            {"system": "ours", "model": "tiny", "dtype": "float32", "engines": 1, "ranks": 2, "startup_seconds": 40.0,
             "load_avg_1m": [1.0, 2.0], "rounds": ours_rounds},
            {"system": "trl", "model": "tiny", "dtype": "float32", "startup_seconds": 2.0,
             "rounds": [_round(32, True, 50, 40, 1, 9, 0, 1, 1),
                        _round(32, False, 33.0, 25.0, 1.0, 7.0, 0.0, 4000, 20000),
                        _round(32, False, 33.0, 25.0, 1.0, 7.0, 0.0, 4000, 20000)]},
            {"system": "ours", "model": "tiny", "dtype": "float32", "engines": 2, "ranks": 2, "startup_seconds": 60.0,
             "rounds": [_round(32, False, 15.0, 6.0, 1.0, 6.0, 1.5, 4000, 20000)]},
        ],
        "hf_generate": [{"model": "tiny", "dtype": "float32", "tokens_per_s": 100.0, "batch_size": 32}],
    }


def test_flops_formula():
    assert update_flops(5) == 4 * 5  # policy forward + backward (3 forwards) + reference forward
    assert train_flops(10, 3) == 8 * 10 * 3  # the older estimate: 6N policy fwd+bwd + 2N reference fwd, per token
    assert mfu(8e9, 2.0, 8e9) == pytest.approx(0.5)
    assert mfu(1.0, 0.0, 1.0) == 0.0


def test_analysis_means_ratios_and_targets():
    a = report.analyse(synthetic())
    (c,) = a["comparisons"]
    assert c["ours"]["round_seconds"] == pytest.approx(11.0)  # warm-up excluded
    assert c["trl"]["round_seconds"] == pytest.approx(33.0)
    assert c["speedup"] == pytest.approx(3.0)
    assert c["ours"]["generated_tokens_per_s"] == pytest.approx(4000 / 11.0)
    assert c["ours"]["generate_phase_tokens_per_s"] == pytest.approx(4000 / 4.5)
    assert c["ours"]["weight_sync_share"] == pytest.approx(0.5 / 11.0)
    assert c["ours"]["train_mfu"] == pytest.approx(8 * 1e6 * 20000 / 4.5 / 2e11)
    assert [s["speeches"] for s in a["speech_scaling"]] == [32, 64]
    assert [(s["engines"], s["ranks"]) for s in a["layout_scaling"]] == [(1, 2), (2, 2)]
    assert a["hf_generate"][0]["ratio"] == pytest.approx((4000 / 4.5) / 100.0)
    met = {t["target"].split(",")[0]: t["met"] for t in a["targets"]}
    # train phase: ours 20000 tokens / 4.5 s against TRL's 20000 / 7 s
    assert c["train_phase_tokens_ratio"] == pytest.approx((20000 / 4.5) / (20000 / 7.0))
    assert met == {"rounds/hour vs TRL >= 2x": True, "weight sync < 5% of a round": True,
                   "generation tokens/s >= 3x HF generate": True, "train-phase trained tokens/s >= TRL's": True}


def test_model_flops_count_a_shared_prompt_once_and_tokens_per_s_count_it_twice():
    results = synthetic()
    for r in results["runs"][0]["rounds"]:
        r["computed_tokens"] = r["trained_tokens"] * 3 // 4  # model.share_prompt: prompts ran once
    (c,) = report.analyse(results)["comparisons"]
    assert c["ours"]["train_mfu"] == pytest.approx(8 * 1e6 * 15000 / 4.5 / 2e11)
    assert c["trl"]["train_mfu"] == pytest.approx(8 * 1e6 * 20000 / 7.0 / 2e11)  # TRL: the tokens it trained
    assert c["train_phase_tokens_ratio"] == pytest.approx((20000 / 4.5) / (20000 / 7.0))  # the same work


def test_flops_the_ranks_counted_replace_the_per_token_estimate(tmp_path):
    results = synthetic()
    for r in results["runs"][0]["rounds"]:
        r["forward_flops"] = 3e11 if r["speeches"] == 32 else 6e11
    (c,) = report.analyse(results)["comparisons"]
    assert c["ours"]["flops_counted"] and not c["trl"]["flops_counted"]
    assert c["ours"]["train_flops"] == pytest.approx(4 * 3e11)
    assert c["ours"]["train_mfu"] == pytest.approx(4 * 3e11 / 4.5 / 2e11)
    text = page(report.analyse(results), json_path=tmp_path / "t.json", png_path=tmp_path / "t.png",
                doc_path=tmp_path / "b.md")
    efficiency = text[text.index("## Training arithmetic efficiency"):]
    rows = [line for line in efficiency.splitlines() if line.startswith("| tiny |")]
    assert rows[0].startswith("| tiny | this project |") and "*" not in rows[0]  # counted
    assert "*" in rows[1]  # TRL's: the per-token estimate


def test_the_peer_is_trl_at_its_best_and_its_default_is_a_second_row():
    results = synthetic()
    best = results["runs"][1]
    best.update(trl_setting="best", settings={"gradient_checkpointing": False})
    default = {**best, "trl_setting": "default", "settings": {"gradient_checkpointing": True},
               "rounds": [dict(r, round_seconds=r["round_seconds"] * 4) for r in best["rounds"]]}
    results["runs"].append(default)
    results["runs"][0]["rounds"].append({**results["runs"][0]["rounds"][1], "samples_per_speech": 8,
                                         "round_seconds": 30.0})
    a = report.analyse(results)
    (c,) = a["comparisons"]
    assert c["speedup"] == pytest.approx(3.0)  # against the best settings, not the 4x slower default
    assert c["trl_default"]["round_seconds"] == pytest.approx(132.0)
    assert [r["samples_per_speech"] for r in c["ours_more_samples"]] == [8]
    assert c["ours"]["round_seconds"] == pytest.approx(11.0)  # the K=8 round is not in the equal-work mean
    h = a["headline"]
    assert h["trl_gradient_checkpointing"] is False and h["rounds_per_hour_ratio_vs_trl"] == pytest.approx(3.0)
    assert set(h) >= {"model", "dtype", "speeches", "rounds_per_hour_ratio_vs_trl", "trl_gradient_checkpointing",
                      "train_fraction_of_bf16_peak", "generation_ratio_vs_hf_generate", "weight_sync_share"}
    assert 0 <= h["train_fraction_of_bf16_peak"] <= 1 and 0 <= h["weight_sync_share"] <= 1


def test_page_and_plot_from_json(tmp_path):
    results = synthetic()
    results["runs"][1]["rounds"][1]["round_seconds"] = results["runs"][1]["rounds"][2]["round_seconds"] = 15.0
    path = tmp_path / "t.json"
    path.write_text(json.dumps(results))
    doc = tmp_path / "benchmark.md"
    assert report.main([str(path), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "python -m rlhf.bench --quick" in text and "2 CPU cores" in text
    assert "1.36x" in text  # 15 / 11 rounds-per-hour ratio, read from the JSON
    assert "| **no** |" in text and "Why, where a target is missed" in text  # the 2x target is missed here
    assert "4 x the forward FLOPs the trainer ranks count" in text
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_measured_levers_go_on_the_page_and_name_the_next_lever_for_their_model(tmp_path):
    results = synthetic()
    results["runs"][1]["rounds"][1]["round_seconds"] = results["runs"][1]["rounds"][2]["round_seconds"] = 15.0
    path = tmp_path / "t.json"
    path.write_text(json.dumps(results))
    lever = lambda name, seconds, overrides=(): {  # noqa: E731
        "lever": name, "code": "this code", "pairs": 32, "base": ["model=tiny"], "overrides": list(overrides),
        "seconds": seconds, "tokens_per_s": 1000 / seconds}
    (tmp_path / "levers.json").write_text(json.dumps({"model": "tiny", "runs": [
        lever("baseline (2 ranks x 1 thread)", 10.0), lever("before: float32", 20.0, ["device.dtype=float32"]),
        lever("1 rank x 2 threads", 8.0, ["cluster.trainer.ranks=1"]), lever("micro-batch 2", 12.5)]}))
    doc = tmp_path / "benchmark.md"
    assert report.main([str(path), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "| this code | 1 rank x 2 threads | 8.0 | 125 | 1.25x |" in text
    assert "| this code | before: float32 | 20.0 | 50 | 0.50x |" in text
    # a lever that puts an old setting back is never the next lever, however it compares
    assert "Next lever: *1 rank x 2 threads* (lever table, 1.25x on the train phase)" in text
    # the round (11 s, train 4.5 s) loses 4.5 * (1 - 1/1.25) = 0.9 s; TRL's round is 15 s
    assert "about 10.1 s, 1.49x TRL's rounds per hour" in text
    results["models"] = {"other": results["models"]["tiny"]}  # levers of another model say nothing here
    for run in results["runs"]:
        run["model"] = "other"
    results["hf_generate"][0]["model"] = "other"
    path.write_text(json.dumps(results))
    assert report.main([str(path), "--doc", str(doc)]) == 0
    assert "Next lever" not in doc.read_text()


@pytest.mark.parametrize("engines, ranks", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_layout_overrides_fit_two_cores(engines, ranks):
    from rlhf.bench.common import compose_run

    _, run = compose_run(["stage=online_dpo", "model.path=/x", "reward.path=/y", "online.samples_per_speech=2",
                          *layout_overrides(engines, ranks)])
    assert (run.cluster.generator.engines, run.cluster.trainer.ranks) == (engines, ranks)


def test_the_faster_of_trls_best_settings_is_the_peer_and_the_other_a_row_beside_it(tmp_path):
    """TRL is tried with checkpointing off with and without its torch_compile: whichever ran faster
    is the peer (here the compiled one), the other gets its own row, and the headline says which."""
    results = synthetic()
    best = results["runs"][1]
    best.update(trl_setting="best", settings={"gradient_checkpointing": False, "torch_compile": False})
    compiled = {**best, "trl_setting": "compiled", "settings": {"gradient_checkpointing": False, "torch_compile": True},
                "rounds": [dict(r, round_seconds=r["round_seconds"] / 1.5) for r in best["rounds"]]}
    results["runs"].append(compiled)
    a = report.analyse(results)
    (c,) = a["comparisons"]
    assert c["trl"]["round_seconds"] == pytest.approx(22.0) and c["trl_other"]["round_seconds"] == pytest.approx(33.0)
    assert c["speedup"] == pytest.approx(2.0) and a["headline"]["trl_torch_compile"] is True
    text = page(a, json_path=tmp_path / "t.json", png_path=tmp_path / "t.png", doc_path=tmp_path / "b.md")
    assert "the other setting tried" in text and "`torch_compile=False`" in text
    assert "Warm-up rounds, not timed" in text and "this project (tiny) 99.0 s" in text  # where compiling happens



def test_trl_is_tried_with_another_attention_and_the_page_names_what_differs(tmp_path):
    """--trl-settings compiled:eager runs TRL with another attention; the page says what the other run changed."""
    from rlhf.bench.__main__ import parse_args

    args = parse_args(["--trl-settings", "compiled,compiled:eager"])
    assert args.attention == "eager" and args.trl_settings == ["compiled", "compiled:eager"]
    for bad in ("compiled:flash", "fast"):
        with pytest.raises(SystemExit):
            parse_args(["--trl-settings", bad])
    results = synthetic()
    eager = results["runs"][1]
    eager.update(trl_setting="compiled", settings={"torch_compile": True, "attn_implementation": "eager"})
    results["runs"].append({**eager, "settings": {"torch_compile": True, "attn_implementation": "sdpa"},
                            "rounds": [dict(r, round_seconds=r["round_seconds"] * 1.5) for r in eager["rounds"]]})
    a = report.analyse(results)
    assert a["headline"]["trl_attention"] == "eager"  # the faster run's
    text = page(a, json_path=tmp_path / "t.json", png_path=tmp_path / "t.png", doc_path=tmp_path / "b.md")
    assert "torch_compile on, eager attention):**" in text
    assert "differs in `attn_implementation=sdpa` (transformers' attention kernel)" in text
    assert "`torch_compile=" not in text.split("differs in")[1].split(";")[0]

@pytest.mark.slow
def test_quick_benchmark_runs(tmp_path):
    from rlhf.bench.__main__ import main

    assert main(["--quick", "--speeches", "16", "--layouts", "1x2", "--rounds", "1", "--no-trl",
                 "--out", str(tmp_path), "--doc", str(tmp_path / "b.md"), "--name", "t"]) == 0
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["runs"][0]["rounds"] and (tmp_path / "b.md").exists()


def test_merging_a_second_model(tmp_path):
    first, second = synthetic(), synthetic()
    second["models"] = {"small": {"params": 30_000_000, "dtype": "bfloat16"}}
    for run in second["runs"]:
        run.update(model="small", dtype="bfloat16")
    second["hf_generate"][0].update(model="small", dtype="bfloat16")
    merged = report.merge([first, second])
    a = report.analyse(merged)
    assert [c["model"] for c in a["comparisons"]] == ["tiny", "small"]
    assert len(a["layout_scaling"]) == 2  # scaling rows come from the first model only


def test_a_longer_run_of_the_same_model_leads_and_the_first_run_adds_what_it_lacks():
    """The page from a run with more timed rounds (ours and TRL at its best) merged with the single-round
    run that also measured TRL's default and K=8: the longer run's figures lead, the other adds rows."""
    longer, single = synthetic(), synthetic()
    longer["runs"] = longer["runs"][:2]  # ours and TRL's best
    longer["hf_generate"][0]["tokens_per_s"] = 200.0
    single["runs"][0]["rounds"].append({**_round(32, False, 30.0, 10, 4, 15, 1, 16000, 20000), "samples_per_speech": 8})
    single["runs"][1] = {**single["runs"][1], "trl_setting": "default",
                         "rounds": [_round(32, False, 90.0, 80, 1, 9, 0, 4000, 20000)]}
    # a luckier single TRL round in the other file is not the peer: TRL as measured beside the leading run is
    single["runs"].append({**longer["runs"][1], "trl_setting": "best", "rounds": [_round(32, False, 20.0, 10, 1, 9, 0, 4000, 20000)]})
    a = report.analyse(report.merge([longer, single]))
    (c,) = a["comparisons"]
    assert c["ours"]["round_seconds"] == pytest.approx(11.0) and c["trl"]["round_seconds"] == pytest.approx(33.0)
    assert c["trl_other"] is None
    assert c["trl_default"]["round_seconds"] == pytest.approx(90.0)
    assert [x["samples_per_speech"] for x in c["ours_more_samples"]] == [8]
    assert [h["tokens_per_s"] for h in a["hf_generate"]] == [200.0]  # one baseline per model: the first file's


def test_merged_sweep_adds_speech_counts():
    first, sweep = synthetic(), synthetic()
    sweep["runs"] = [{**sweep["runs"][0], "rounds": [_round(128, False, 40.0, 10, 3, 25, 1, 16000, 80000)]}]
    sweep["hf_generate"] = []
    a = report.analyse(report.merge([first, sweep]))
    assert [s["speeches"] for s in a["speech_scaling"]] == [32, 64, 128]
    assert len(a["layout_scaling"]) == 2 and len(a["comparisons"]) == 1


def test_operators_fall_in_categories():
    from rlhf.bench.profile import category

    assert category("aten::mm") == category("aten::addmm") == "matmul"
    assert category("aten::_log_softmax_backward_data") == "log-softmax"
    assert category("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention"
    assert category("aten::_foreach_addcdiv_") == "optimizer"
    assert category("aten::_to_copy") == "copies and casts"
    assert category("aten::silu") == "elementwise and other operators"
    assert category("PreBackwardFunctionForModuleBackward") == "other recorded"


def _profile_side(seconds, fraction, **categories):
    return {"seconds": seconds, "profiled_seconds": seconds * 1.2, "threads": 2, "categories": categories,
            "top_operators": [], "fraction_of_bf16_peak": fraction}


def test_profile_goes_on_the_page_and_into_the_reasons(tmp_path):
    from rlhf.bench.train_page import next_train_levers, profile_lines, profile_summary

    prof = {"model": "smollm2", "dtype": "bfloat16", "pairs": 32, "micro_batch": 4, "batch_size": 8,
            "metric_pairs": 8, "peak": {"bfloat16": {"flops_per_s": 2e12}},
            "sides": {"eager": _profile_side(30.0, 0.2, matmul=20.0, **{"outside operators": 4.0}),
                      "zero3": _profile_side(60.0, 0.1, matmul=30.0, optimizer=6.0, **{"outside operators": 24.0})}}
    text = "\n".join(profile_lines(prof, tmp_path / "profile.json"))
    assert "| matmul | 20.00 | 83% | 30.00 | 50% |" in text
    assert "| optimizer | 0.00 | 0% | 6.00 | 10% |" in text
    assert "**20.0%**" in text and "**10.0%**" in text
    summary = profile_summary(prof)
    assert "50% of the trainer rank's time in matrix multiplies" in summary and "10% in optimizer operators" in summary
    assert "40% outside any operator" in summary and "reaches 20.0% of that machine's bf16 peak" in summary
    # the rank's extra time over plain PyTorch, largest differences first
    assert "extra 30.0 s (100%) is mostly outside operators (+20.0 s), matmul (+10.0 s), optimizer (+6.0 s)" in summary
    assert "ZeRO-3's overhead over plain PyTorch (2.00x its time" in next_train_levers(prof)
    assert "then attention (0% of plain PyTorch's time" in next_train_levers(prof)
    assert profile_lines(None, tmp_path / "profile.json") == [] and profile_summary(None) == ""
    assert "python -m rlhf.bench.profile" in next_train_levers(None)


def test_with_compiled_sides_the_reasons_compare_what_the_benchmark_runs():
    """The benchmark runs the rank with model.compile: when both compiled sides were profiled, the
    reasons compare the compiled rank with compiled plain PyTorch and quote the uncompiled pair."""
    from rlhf.bench.train_page import next_train_levers, profile_summary

    prof = {"sides": {"eager": _profile_side(30.0, 0.2, matmul=20.0), "zero3": _profile_side(40.0, 0.15, matmul=20.0),
                      "compiled": _profile_side(20.0, 0.3, matmul=15.0, attention=5.0),
                      "zero3_compiled": _profile_side(25.0, 0.24, matmul=15.0, **{"copies and casts": 5.0})}}
    summary = profile_summary(prof)
    assert "of the trainer rank with model.compile's time" in summary
    assert "Plain PyTorch through torch.compile on the same work reaches 30.0%" in summary
    assert "extra 5.0 s (25%) is mostly copies and casts (+5.0 s)" in summary and "per-module hooks" not in summary
    assert "Without torch.compile the rank reached 15.0% and plain PyTorch 20.0%" in summary
    levers = next_train_levers(prof)
    assert "over plain PyTorch through torch.compile (1.25x its time" in levers and "25% of plain PyTorch through" in levers


@pytest.mark.slow
def test_profile_runs_on_the_real_trainer_rank(tmp_path):
    """The profiler tool on the tiny model: a real ZeRO-3 rank and plain PyTorch, in its own process
    (DeepSpeed replaces torch's linear function in the process that loads it)."""
    import subprocess
    import sys

    out = tmp_path / "profile.json"
    subprocess.run([sys.executable, "-m", "rlhf.bench.profile", "--model", "tiny", "--pairs", "8", "--out", str(out)],
                   check=True, timeout=900)
    data = json.loads(out.read_text())
    for side in ("eager", "zero3"):
        got = data["sides"][side]
        assert got["seconds"] > 0 and got["categories"]["matmul"] > 0
        assert 0 < got["fraction_of_bf16_peak"] < 1
    assert data["trained_tokens"] > 0 and data["params"] > 1_000_000


def test_levers_of_two_machines_never_share_a_file(tmp_path):
    from rlhf.bench.levers import main

    out = tmp_path / "levers.json"
    out.write_text(json.dumps({"model": "smollm2", "machine": {"cpu_model": "another CPU", "cpus": 64}, "runs": []}))
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(out), "--levers", "micro-batch 2"])
    assert exit_info.value.code == 2


def test_a_lever_measured_without_compile_says_so_when_the_run_compiled():
    from rlhf.bench.train_page import untried_with

    eager = {"overrides": ["model.attention=eager"]}
    assert "measured without model.compile" in untried_with(eager, {"overrides": ["model.compile=true"]})
    assert untried_with(eager, {"overrides": ["model.compile=false"]}) == ""
    assert untried_with({"overrides": ["model.compile=true"]}, {"overrides": ["model.compile=true"]}) == ""


def test_the_best_lever_skips_what_the_run_already_uses_and_levers_that_are_slower():
    from rlhf.bench.train_page import best_lever

    runs = [{"code": "this code", "lever": "baseline", "seconds": 10.0, "overrides": []},
            {"code": "this code", "lever": "eager attention", "seconds": 8.0, "overrides": ["model.attention=eager"]},
            {"code": "this code", "lever": "1 rank", "seconds": 12.0, "overrides": ["cluster.trainer.ranks=1"]}]
    assert best_lever(runs)[0]["lever"] == "eager attention"
    assert best_lever(runs, ["model.attention=eager"]) is None  # applied already; the other one is slower


def test_ours_set_replaces_the_benchmarks_own_overrides():
    from rlhf.bench.ours import with_settings

    base = ["model=smollm2", "device.keep_host_memory=true", "online.metric_pairs=0"]
    assert with_settings(base, ("device.keep_host_memory=false",)) == [
        "model=smollm2", "online.metric_pairs=0", "device.keep_host_memory=false"]
    assert with_settings(base, ()) == base
