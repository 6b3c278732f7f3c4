"""stage=online_dpo: the online preference rounds (rlhf.controller) with their set-up around them:
the policy and its reference on the trainer group, the vLLM engines and how weights reach them,
the reward source, a resumed run's state, and the evaluations that run beside the rounds (the dev
split, the outcome on held-out speeches, the safety probes)."""

from __future__ import annotations

import logging
import time

from rlhf.controller import SYNC_TIMEOUT_S, WEIGHT_BUCKET_BYTES, OnlineDPO
from rlhf.data.round_speeches import report as round_speeches_report
from rlhf.scoring.sources import source_of
from rlhf.stages.context import RunContext
from rlhf.summary import write_summary
from rlhf.sync.weight_sync import SyncPlan, attach, engine_workers, resolve_method, sync_weights
from rlhf.training.group import planned_steps
from rlhf.workers.factory import generator_group, started, trainer_group

log = logging.getLogger(__name__)
STAGE = "online_dpo"


def online_steps(online) -> int:
    """Upper bound on the rounds' optimizer steps (every speech giving a pair): the length of a
    cosine schedule over all rounds."""
    return online.rounds * planned_steps(online.speeches_per_round, online)


class TrainingStateBehind(RuntimeError):
    """A trainer group cannot be rebuilt in-run: the latest saved state is older than the last round."""


def rounds_done(ctx: RunContext) -> int:
    """Rounds whose training state is saved: a resumed run starts after the latest of them."""
    return ctx.state.progress(STAGE).get("rounds_completed", 0)


def state_due(round_number: int, online) -> bool:
    """The full ZeRO-3 state is written every online.save_state_every rounds and after the last."""
    return round_number % online.save_state_every == 0 or round_number == online.rounds


def run(ctx: RunContext) -> None:
    controller = prepare(ctx)
    done = rounds_done(ctx)
    results = ctx.results
    results["rounds"] = results.get("rounds", [])[:done]
    dev_eval, outcome = ctx.extras.get("dev_eval"), ctx.extras.get("outcome")
    events = results.setdefault("recoveries_outside_rounds", [])  # actors lost in the evaluations around them
    if dev_eval is not None and not controller.guarded(
        "dev_eval", events, lambda: dev_eval.prepare(controller.generators, controller.scorer, resuming=done > 0)
    ):
        controller.round_hook = dev_eval = None
    if outcome is not None and not controller.guarded(
        "outcome", events, lambda: outcome.prepare(controller.generators, resuming=done > 0)
    ):
        log.warning("outcome: off (this run's starting-policy answers were not recorded before round 1)")
        outcome = None
    for record in controller.run(start_round=done):
        record["state_saved"] = state_due(record["round"], ctx.run.online)
        results["rounds"].append(record)
        if record["state_saved"]:  # else a resume redoes this round (its records are replaced)
            ctx.save_state(STAGE, {"rounds_completed": record["round"]})
        ctx.state.data["results"] = results
        ctx.state.save()
        write_summary(ctx)
    rounds = results["rounds"]
    results[STAGE] = {"rounds_completed": len(rounds), "final_policy": rounds[-1]["checkpoint"] if rounds else None}
    samples = []
    if outcome is not None:  # the final policy against the starting one, on held-out speeches
        results["outcome"], samples = controller.guarded(
            "outcome",
            events,
            lambda: outcome.finish(controller.generators, controller.scorer, rounds[-1] if rounds else None),
        )
    if dev_eval is not None or outcome is not None:  # best round, reward-model metrics, report
        from rlhf.eval.online_report import finish_online

        results["eval"] = finish_online(ctx, dev_eval, results.get("outcome"), samples)
        best = results["eval"]["dev"]["best"] if results["eval"]["dev"] else None
        results[STAGE]["best_checkpoint"] = best["checkpoint"] if best else None
        results[STAGE]["best_round"] = best["round"] if best else None


def prepare(ctx: RunContext) -> OnlineDPO:
    """Load the DPO policy and reference, start generators and scorers; returns the controller."""
    run, online = ctx.run, ctx.run.online
    ctx.online_init = ctx.policy_dir  # policy start and DPO reference
    ctx.trainers.load(
        online.loss, ctx.online_init, online, reference_dir=ctx.online_init, total_steps=online_steps(online)
    )
    moved = ctx.trainers.offload_states()  # device.zero.offload_states: host memory until the first round trains
    ctx.results["trainer_offload"] = {"states": ctx.trainers.offload, "bytes_per_rank": moved}
    start = time.perf_counter()
    ctx.generators = start_generators(ctx, ctx.policy_dir)
    ctx.scorer = source_of(run).start(ctx)
    ctx.results["inference_startup_seconds"] = round(time.perf_counter() - start, 2)
    done = rounds_done(ctx)
    if done:  # resume: policy weights and optimizer state as after the last completed round
        ctx.load_state(STAGE)
        sync_weights(
            ctx.trainers,
            ctx.generators,
            device_type=run.device.type,
            bucket_bytes=WEIGHT_BUCKET_BYTES,
            timeout_s=SYNC_TIMEOUT_S,
        )
        ctx.tracker.drop_rounds_after(done)
        log.info("online_dpo: resuming after round %d", done)
    from rlhf.eval.online_setup import evaluations

    speeches, ctx.extras["dev_eval"], ctx.extras["outcome"] = evaluations(ctx)
    ctx.results["round_speeches"] = round_speeches_report(run, len(speeches))  # warns when rounds repeat speeches
    return OnlineDPO(
        online=online,
        trainers=ctx.trainers,
        generators=ctx.generators,
        scorer=ctx.scorer,
        encoder=ctx.encoder,
        speeches=speeches,
        tracker=ctx.tracker,
        save_policy=lambda r: ctx.save_model(f"policy_round_{r + 1:03d}"),
        device_type=run.device.type,
        seed=run.seed,
        pairs_dir=ctx.run_dir / "pairs",
        recover_trainers=lambda: recover_trainers(ctx),
        phase_hook=ctx.phase_hook,
        log_samples=run.tracking.log_samples,
        round_hook=ctx.extras["dev_eval"],
    )


def recover_trainers(ctx: RunContext):
    """New trainer ranks with the policy and optimizer state of the last completed round, which
    must be the latest saved one: rounds after it cannot be redone within the run."""
    saved, completed = rounds_done(ctx), len(ctx.results.get("rounds", []))
    if saved < completed:
        raise TrainingStateBehind(
            f"a trainer rank was lost after round {completed}, but the latest saved training state is from "
            f"round {saved} (online.save_state_every={ctx.run.online.save_state_every}), so the policy of round "
            f"{completed} cannot be rebuilt in this run. Rerun the same command to resume: it restarts after "
            f"round {saved}. With online.save_state_every=1 a lost rank costs only the round it was lost in."
        )
    ctx.trainers.kill()
    ctx.trainers = trainer_group(ctx.run, placement=ctx.shared_placement)
    ctx.trainers.load(
        ctx.run.online.loss,
        ctx.online_init,
        ctx.run.online,
        reference_dir=ctx.online_init,
        total_steps=online_steps(ctx.run.online),
    )
    if rounds_done(ctx):
        ctx.load_state(STAGE)
    ctx.trainers.offload_states()
    ctx.results["trainer_recoveries"] = ctx.results.get("trainer_recoveries", 0) + 1
    return ctx.trainers


def start_generators(ctx: RunContext, policy_dir: str):
    """The rounds' vLLM engines serving `policy_dir`, and how weights reach them (sync.method)."""
    run, model = ctx.run, ctx.run.model
    group = generator_group(
        run,
        policy_dir,
        engines=run.cluster.generator.engines,
        max_restarts=3,
        max_model_len=model.max_prompt_len + model.max_response_len + 8,
        placement=ctx.shared_placement,
        colocate=run.cluster.colocate,
    )
    ctx.results["generators"] = started(group, "vLLM engines")
    ctx.placement("generator", group.where())
    attach_sync(ctx, group)
    return group


def attach_sync(ctx: RunContext, group) -> None:
    """How weights reach these engines (sync.method), its broadcast group if it has one, and a
    record of both: the method, its backend and the vLLM workers each engine really runs."""
    run = ctx.run
    plan = SyncPlan(
        resolve_method(run.sync.method, run.device.type, run.cluster.colocate),
        run.device.type,
        run.cluster.generator.tensor_parallel,
        SYNC_TIMEOUT_S,
    )
    attach(group, plan, ctx.trainers)
    workers = engine_workers(group)
    ctx.results["weight_sync"] = {**plan.describe(), "workers_per_engine": [len(w) for w in workers]}
    log.info(
        "weight sync: %s (%s), %d engine(s) x %d vLLM worker(s)",
        plan.method,
        plan.describe()["backend"],
        len(workers),
        len(workers[0]),
    )
