"""Preference pairs, wherever they come from: the online rounds' best-vs-worst selection (online),
judged responses of the preference builder (judged), and the PsychoCounsel-Preference Parquet
files both the builder writes and the training stages read (parquet). Counsel-chat's upvote pairs
are derived where that file is read (rlhf.data.counsel_chat)."""
