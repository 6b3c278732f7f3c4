"""device.build_ops: DeepSpeed's first-use compile done ahead (make install), where a run then finds it."""

import os
import subprocess
import sys

import pytest

BUILD = "from rlhf.device import build_ops; print(build_ops('cpu'))"
# what deepspeed.init_distributed does on a CPU: load (and, if not built yet, compile) its shm op
FIRST_USE = "from rlhf import device; device.apply_env(device.env_for('cpu')); " \
            "from deepspeed.comm.torch import build_shm_op; assert build_shm_op() is not None"


def python(code: str, extensions_dir) -> str:
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions_dir)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow  # a cold compile: ~30 s on 2 cores
def test_prebuilt_op_is_the_one_a_run_loads(tmp_path):
    assert python(BUILD, tmp_path).strip().splitlines()[-1] == "['deepspeed_shm_comm']"
    (built,) = tmp_path.glob("*/deepspeed_shm_comm.so")
    stamp = built.stat().st_mtime_ns
    python(FIRST_USE, tmp_path)
    assert built.stat().st_mtime_ns == stamp  # loaded as built, not compiled again
