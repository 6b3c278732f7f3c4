"""Input data: client speeches, therapist answers, preference pairs, chat prompts."""
