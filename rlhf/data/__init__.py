"""Input data: the counsel-chat reader (speeches, therapist answers, upvote pairs), the records that
flow between stages, chat prompts, the round sampler; data/counsel-chat is the shipped sample."""
