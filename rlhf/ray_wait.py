"""Wait until a Ray cluster has the expected number of live nodes, each showing its GPUs, polling
it, with a deadline.

    python -m rlhf.ray_wait --address HEAD_IP:6379 --nodes 4 --gpus-per-node 8 --timeout 600

Exit status 0 once `--nodes` nodes are alive and every live node reports at least `--gpus-per-node`
GPUs (their IPs are printed), 1 with a diagnostic when the deadline passes first (also when the head
itself never answers), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time


def port_open(address: str) -> bool:
    """Whether something accepts TCP connections at HOST:PORT (within 2 s)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def _connect(address: str, deadline: float):
    """Wait for the head's GCS port to accept connections, then attach a driver. (Attaching to an
    address where nothing listens blocks inside Ray for minutes, so the port is probed first.)"""
    import ray

    while not port_open(address):
        if time.monotonic() >= deadline:
            return ConnectionRefusedError(f"nothing listens on {address}")
        time.sleep(1)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as err:
        return err
    return None


def live(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Alive")]


def node_name(node: dict) -> str:
    ip, host = node.get("NodeManagerAddress", "?"), node.get("NodeManagerHostname")
    return f"{ip} ({host})" if host and host != ip else ip


def gpus_shown(node: dict) -> float:
    return float(node.get("Resources", {}).get("GPU", 0.0))


def short_of_gpus(nodes: list[dict], gpus_per_node: int) -> list[dict]:
    """Live nodes reporting fewer than `gpus_per_node` GPUs (none when it is 0: GPUs unchecked)."""
    return [n for n in live(nodes) if gpus_shown(n) < gpus_per_node]


def what_is_missing(nodes: list[dict], expected: int, gpus_per_node: int = 0) -> list[str]:
    """Why a `ray.nodes()` listing is not ready yet; empty once `expected` nodes are alive and every
    live node shows its GPUs. A node's GPUs are checked because Ray counts a node that started without
    them (a step not given the node's GPUs, CUDA_VISIBLE_DEVICES empty) as alive all the same."""
    alive, missing = live(nodes), []
    if len(alive) < expected:
        missing.append(f"{len(alive)} of {expected} Ray nodes alive")
    short = short_of_gpus(alive, gpus_per_node)
    if short:
        missing.append(", ".join(f"{node_name(n)} shows {gpus_shown(n):g} of {gpus_per_node} GPUs" for n in short))
    return missing


def timeout_message(nodes: list[dict], expected: int, gpus_per_node: int, address: str, timeout_s: float) -> str:
    """What was still missing at the deadline, naming the nodes, and where to look."""
    alive, parts = live(nodes), []
    if len(alive) < expected:
        joined = ", ".join(sorted(node_name(n) for n in alive)) or "none"
        parts.append(
            f"only {len(alive)} of {expected} Ray nodes joined {address} within {timeout_s:.0f}s (alive: "
            f"{joined}): read the missing nodes' logs, check that they can reach the head's port (firewall) "
            "and that the expected count matches the allocation"
        )
    short = short_of_gpus(alive, gpus_per_node)
    if short:
        names = ", ".join(f"{node_name(n)} shows {gpus_shown(n):g} of {gpus_per_node} GPUs" for n in short)
        parts.append(
            f"Ray nodes short of GPUs after {timeout_s:.0f}s: {names}: check that the job asked SLURM for "
            "the GPUs (--gpus-per-node) and that the node's ray-*.log shows them (CUDA_VISIBLE_DEVICES), "
            "or that the layout's cluster.gpus_per_node matches the nodes"
        )
    return "; ".join(parts)


def wait_for_nodes(
    address: str, nodes: int, timeout_s: float, gpus_per_node: int = 0, poll_s: float = 2.0, log=print
) -> list[dict]:
    """The live nodes once there are `nodes` of them, each with `gpus_per_node` GPUs; TimeoutError
    with a diagnostic otherwise."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    start = time.monotonic()
    deadline = start + timeout_s
    error = _connect(address, deadline)
    if error is not None:
        raise TimeoutError(
            f"no Ray head answered at {address} within {timeout_s:.0f}s ({error}): check the head node's log, "
            "that the address and port are right, and that this host can reach it"
        )
    import ray

    try:
        last_report, listing = 0.0, []
        while True:
            listing = ray.nodes()
            missing = what_is_missing(listing, nodes, gpus_per_node)
            if not missing:
                return live(listing)
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(timeout_message(listing, nodes, gpus_per_node, address, timeout_s))
            if now - last_report >= 10:
                log(f"after {now - start:.0f}s: " + "; ".join(missing))
                last_report = now
            time.sleep(poll_s)
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlhf.ray_wait", description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="HEAD_IP:PORT of the Ray head (GCS port)")
    parser.add_argument("--nodes", type=int, required=True, help="how many live nodes to wait for")
    parser.add_argument(
        "--gpus-per-node", type=int, default=0, help="GPUs every live node must report (0, the default: not checked)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.timeout <= 0 or args.gpus_per_node < 0:
        parser.error("--nodes must be >= 1, --gpus-per-node >= 0 and --timeout > 0")
    try:
        alive = wait_for_nodes(
            args.address, args.nodes, args.timeout, args.gpus_per_node, log=lambda m: print(m, flush=True)
        )
    except TimeoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(alive)} Ray nodes alive: " + " ".join(sorted(n["NodeManagerAddress"] for n in alive)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
