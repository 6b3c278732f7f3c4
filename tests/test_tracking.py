"""W&B as its users expect: an explicit WANDB_MODE wins, auto is online when logged in (wandb login
or WANDB_API_KEY), each stage and the rounds have their own x-axis, and sweeps share a group."""

from __future__ import annotations

import pytest

from rlhf import tracking
from rlhf.config import TrackingConfig


@pytest.fixture
def no_login(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_auto_is_online_when_logged_in_and_never_overrides_wandb_mode(no_login, monkeypatch):
    assert tracking.wandb_mode("auto") == "offline"
    no_login.write_text("machine api.wandb.ai\n  login user\n  password not-a-real-key\n")  # what `wandb login` writes
    assert tracking.wandb_mode("auto") == "online"
    assert tracking.wandb_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.wandb_mode("auto") is None and tracking.wandb_mode("online") is None  # W&B reads it itself
    monkeypatch.delenv("WANDB_MODE")
    no_login.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key")
    assert tracking.wandb_mode("auto") == "online"


class FakeRun:
    offline, url, dir = True, None, "/tmp/wandb/run/files"

    def __init__(self):
        self.axes, self.logged = [], []

    def define_metric(self, name, step_metric=None, hidden=False):
        self.axes.append((name, step_metric))

    def log(self, values):
        self.logged.append(values)


def test_each_stage_and_the_rounds_have_their_own_x_axis(tmp_path):
    tracker = tracking.Tracker(tmp_path, {}, TrackingConfig(wandb=False), "run")
    tracker.wandb_run = run = FakeRun()
    for step in range(2):
        tracker.log_step("sft", step, {"loss": 1.0})
    tracker.log_step("reward", 0, {"loss": 0.5})
    tracker.log_round({"round": 1, "reward_mean": 0.1, "seconds": {"train": 2.0}})
    assert run.axes == [("sft/step", None), ("sft/*", "sft/step"), ("reward/step", None),
                        ("reward/*", "reward/step"), ("online/round", None), ("online/*", "online/round")]
    assert run.logged[0] == {"sft/step": 0, "sft/loss": 1.0} and run.logged[2] == {"reward/step": 0, "reward/loss": 0.5}
    assert run.logged[3]["online/round"] == 1 and run.logged[3]["online/seconds_train"] == 2.0


def test_group_and_mode_reach_wandb_init(no_login, monkeypatch, tmp_path):
    import wandb

    calls = []
    monkeypatch.setattr(wandb, "init", lambda **kwargs: calls.append(kwargs) or FakeRun())
    monkeypatch.setenv("WANDB_MODE", "offline")
    tracking.Tracker(tmp_path, {}, TrackingConfig(group="sweep-1"), "run")
    monkeypatch.delenv("WANDB_MODE")
    tracking.Tracker(tmp_path, {}, TrackingConfig(mode="offline"), "run")
    assert calls[0]["group"] == "sweep-1" and "mode" not in calls[0]  # WANDB_MODE decides
    assert calls[1]["mode"] == "offline" and calls[1]["group"] is None


def test_a_sweep_names_its_group(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from rlhf.launch import sweep_name
    from rlhf.paths import CONF_DIR

    def hydra_config(mode: str):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"hydra.mode={mode}", f"hydra.sweep.dir={tmp_path / 'sweep-7'}"],
                           return_hydra_config=True)

    try:
        HydraConfig.instance().set_config(hydra_config("MULTIRUN"))
        assert sweep_name() == "sweep-7"
        HydraConfig.instance().set_config(hydra_config("RUN"))
        assert sweep_name() is None
    finally:
        HydraConfig.instance().cfg = None
