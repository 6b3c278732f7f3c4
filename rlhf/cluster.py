"""The former home of Ray set-up and worker groups, now rlhf.workers; these names are kept so that
callers written against the old path keep working."""

from rlhf.workers.group import (
    get_all,  # noqa: F401
)
from rlhf.workers.ray_session import node_table, start_ray  # noqa: F401
