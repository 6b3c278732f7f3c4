"""Wait until a Ray cluster has the expected number of live nodes, polling it, with a deadline.

    python -m rlhf.ray_wait --address HEAD_IP:6379 --nodes 4 --timeout 600

Exit status 0 once `--nodes` nodes are alive (their IPs are printed), 1 with a diagnostic when the
deadline passes first (also when the head itself never answers), 2 for bad arguments.
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


def alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def wait_for_nodes(address: str, nodes: int, timeout_s: float, poll_s: float = 2.0, log=print) -> list[dict]:
    """The live nodes once there are `nodes` of them; TimeoutError with a diagnostic otherwise."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    start = time.monotonic()
    deadline = start + timeout_s
    error = _connect(address, deadline)
    if error is not None:
        raise TimeoutError(
            f"no Ray head answered at {address} within {timeout_s:.0f}s ({error}): check the head node's log, "
            "that the address and port are right, and that this host can reach it")
    import ray

    try:
        last_report, alive = 0.0, []
        while True:
            alive = alive_nodes()
            if len(alive) >= nodes:
                return alive
            now = time.monotonic()
            if now >= deadline:
                break
            if now - last_report >= 10:
                log(f"{len(alive)}/{nodes} Ray nodes alive after {now - start:.0f}s")
                last_report = now
            time.sleep(poll_s)
        joined = ", ".join(sorted(n["NodeManagerAddress"] for n in alive)) or "none"
        raise TimeoutError(
            f"only {len(alive)} of {nodes} Ray nodes joined {address} within {timeout_s:.0f}s (alive: {joined}): "
            "read the missing nodes' logs, check that they can reach the head's port (firewall) and that the "
            "expected count matches the allocation")
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlhf.ray_wait", description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="HEAD_IP:PORT of the Ray head (GCS port)")
    parser.add_argument("--nodes", type=int, required=True, help="how many live nodes to wait for")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.timeout <= 0:
        parser.error("--nodes must be >= 1 and --timeout > 0")
    try:
        alive = wait_for_nodes(args.address, args.nodes, args.timeout, log=lambda m: print(m, flush=True))
    except TimeoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(alive)} Ray nodes alive: " + " ".join(sorted(n["NodeManagerAddress"] for n in alive)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
