"""Ray for a run: join an existing cluster or start one on this machine, and list its nodes."""

from __future__ import annotations

import logging
import os

import ray

from rlhf.telemetry import USAGE_STATS_OFF

# Keep actor output quiet unless asked; their logs stay in Ray's session directory.
QUIET_ENV = {"VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}


def start_ray(address: str | None, num_cpus: int | None, temp_dir: str | None, verbose: bool) -> None:
    """Join an existing cluster (`address`) or start a local one. The dashboard stays off and
    nothing listens beyond loopback on a local start."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return
    from rlhf.paths import PACKAGE_DIR

    project_root = str(PACKAGE_DIR.parent)  # where actors import rlhf from
    # Usage statistics off in every actor too: the workers of a cluster started elsewhere (ray start,
    # slurm/ray_job.sbatch) have that cluster's environment, not this driver's.
    runtime_env = {
        "env_vars": {
            **QUIET_ENV,
            **USAGE_STATS_OFF,
            "PYTHONPATH": project_root + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    }
    # The dashboard stays off; if a user turns it on in their own cluster, it binds to loopback.
    kwargs = dict(
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        log_to_driver=verbose,
        runtime_env=runtime_env,
        logging_level=logging.INFO if verbose else logging.WARNING,
    )
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as err:
            _no_cluster(address, str(err).splitlines()[0])
    else:
        ray.init(num_cpus=num_cpus, _temp_dir=temp_dir, _node_ip_address="127.0.0.1", **kwargs)


def _no_cluster(address: str, why: str):
    from rlhf.errors import ConfigError

    raise ConfigError(
        f"cluster.address={address}: no Ray cluster answers ({why}). Start one first (ray start "
        "--head, or slurm/ray_job.sbatch), fix the address, or set cluster.address=null to start "
        "Ray on this machine"
    ) from None


def _check_reachable(address: str) -> None:
    """HOST:PORT that nothing listens on would block inside ray.init for minutes: fail fast instead."""
    from rlhf.ray_wait import port_open

    if "://" not in address and address != "auto" and not port_open(address):
        _no_cluster(address, "nothing listens on that port")


def node_table() -> list[dict]:
    """The cluster's live nodes: id, IP and the resources each offers (CPU, GPU, custom labels)."""
    return [
        {
            "node_id": n["NodeID"],
            "ip": n["NodeManagerAddress"],
            "resources": {
                k: v for k, v in n["Resources"].items() if not k.startswith(("node:", "memory", "object_store_memory"))
            },
        }
        for n in ray.nodes()
        if n.get("Alive")
    ]
