"""python -m rlhf.layout cluster=gpu_2x8 model=llama3_8b device=gpu [overrides...]

Checks a whole configuration without starting anything and prints the layout's NODES=,
GPUS_PER_NODE= and CPUS_PER_NODE= (what sbatch needs); exit status 2 and the errors otherwise."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from rlhf.config import ConfigError, compose, load_config

    overrides = sys.argv[1:] if argv is None else argv
    try:
        run = load_config(compose(overrides))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    c = run.cluster
    print(
        f"NODES={c.nodes}\nGPUS_PER_NODE={c.gpus_per_node if run.device.type == 'gpu' else 0}\n"
        f"CPUS_PER_NODE={c.cpus_per_node or 0}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
