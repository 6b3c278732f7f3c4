"""The former home of Ray set-up and worker groups, now rlhf.workers; these names are kept so that
callers written against the old path keep working."""

from rlhf.workers.group import (ACTOR_FAILURES, Group, colocated_placement, create_group, get_all,  # noqa: F401
                                release_placement)
from rlhf.workers.ray_session import node_table, start_ray  # noqa: F401
