"""Worker groups sharing one placement group (how colocated layouts put trainer rank i, vLLM
engine i and reward actor i on GPU i): actor i of every group lands in bundle i, and shutting one
group down leaves the shared placement to its owner. Real Ray, CPU bundles, in a subprocess; each
actor reports the bundle its resources come from."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from tests.conftest import REPO_ROOT

SCRIPT = r'''
import json, sys
import ray
from ray.util.placement_group import placement_group, placement_group_table
from rlhf.workers.group import create_group, release_placement

class Probe:
    def __init__(self, tag):
        self.tag = tag
    def ping(self):
        return self.tag
    def placed(self):
        """(placement group id, bundle indices this actor's resources come from): Ray names a
        bundle's share of a resource CPU_group_<index>_<pg id>."""
        from ray._private.utils import PLACEMENT_GROUP_INDEXED_BUNDLED_RESOURCE_PATTERN as INDEXED
        resources = ray._private.worker.global_worker.core_worker.resource_ids()
        matches = [INDEXED.match(name) for name in resources]
        bundles = sorted({int(m.group(2)) for m in matches if m and m.group(1) != "bundle"})
        return ray.get_runtime_context().get_placement_group_id(), bundles

def ready(group, timeout):
    done, _ = ray.wait([a.__ray_ready__.remote() for a in group.actors], num_returns=len(group.actors), timeout=timeout)
    return len(done)

ray.init(num_cpus=2, include_dashboard=False, _temp_dir=sys.argv[1], _node_ip_address="127.0.0.1")
# two bundles of 0.5 CPU: a (0.25) + b (0.25) fill bundle i exactly when actor i of each group goes to bundle i
shared = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="PACK")
ray.get(shared.ready(), timeout=60)
make = lambda tag, n: create_group(Probe, n, device_type="cpu", cpus=0.25, gpus=0, strategy="PACK", placement=shared,
                                   args_for=lambda i: ((f"{tag}{i}",), {}))
a, b = make("a", 2), make("b", 2)
out = {"a": ready(a, 60), "b": ready(b, 60), "owns": [a.owns_placement, b.owns_placement]}
out["pings"] = a.call("ping") + b.call("ping")
out["shared_id"] = shared.id.hex()
out["placed"] = {"a": a.call("placed"), "b": b.call("placed")}
c = make("c", 1)  # bundle 0 is full: must wait
out["c_while_full"] = ready(c, 5)
a.shutdown()  # frees a0 (bundle 0) and a1: c fits now; the shared placement stays
out["c_after_a_shutdown"] = ready(c, 60)
out["b_after_a_shutdown"] = b.call("ping")
out["state_after_groups"] = placement_group_table(shared)["state"]
b.shutdown()
c.shutdown()
release_placement(shared)
out["state_after_release"] = placement_group_table(shared)["state"]
own = create_group(Probe, 1, device_type="cpu", cpus=0.5, gpus=0, strategy="PACK", args_for=lambda i: (("o",), {}))
out["own"] = own.owns_placement
own.shutdown()
print("RESULT " + json.dumps(out))
'''


def test_groups_share_bundles_and_the_owner_releases_them():
    ray_tmp = tempfile.mkdtemp(prefix="rpl", dir="/tmp")
    try:
        result = subprocess.run([sys.executable, "-c", SCRIPT, ray_tmp], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "RAY_AUTH_MODE": "disabled",
                                                            "PYTHONPATH": str(REPO_ROOT), "TMPDIR": ray_tmp})
    finally:
        subprocess.run(["rm", "-rf", ray_tmp])
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-2000:] + result.stderr[-4000:]
    out = json.loads(lines[0][len("RESULT "):])
    assert out["a"] == 2 and out["b"] == 2  # a_i + b_i fill bundle i
    assert out["pings"] == ["a0", "a1", "b0", "b1"]
    # actor i of each group in bundle i of the shared placement group (trainer rank i, engine i and
    # reward actor i on GPU i), not merely somewhere in it
    for group in ("a", "b"):
        assert out["placed"][group] == [[out["shared_id"], [0]], [out["shared_id"], [1]]], out["placed"]
    assert out["owns"] == [False, False] and out["own"] is True
    assert out["c_while_full"] == 0 and out["c_after_a_shutdown"] == 1
    assert out["b_after_a_shutdown"] == ["b0", "b1"]
    assert out["state_after_groups"] == "CREATED"
    assert out["state_after_release"] == "REMOVED"
