"""Chat completions for responders and judges: one request/result interface (api), OpenAI-compatible
endpoints (openai_chat), models on the project's vLLM generator actors (local), one factory from a
config section (backends), and the strict-JSON judging loop the three LLM judges share (judging)."""
