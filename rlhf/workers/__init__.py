"""The worker groups on Ray: starting Ray (ray_session), a group of actors with its placement
(group), and the one factory that builds the trainer, generator and reward-scorer groups from the
config (factory). The layout arithmetic that checks a config's groups against its machines is
rlhf.layout; the layouts themselves are conf/cluster."""
