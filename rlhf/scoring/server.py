"""Serve a reward model over OpenRLHF's HTTP API, so remote trainers (ours or OpenRLHF's) can use it.

    python -m rlhf.scoring.server --model runs/<run>/checkpoints/reward_model --port 5000

POST /get_reward  {"query": ["<chat text>", ...]}  ->  {"rewards": [float, ...]}
Texts are scored as sent (EOS appended once), as OpenRLHF's own server does. It binds to 127.0.0.1
unless --host says otherwise: client text should not cross a network you do not trust.
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class RewardRequest(BaseModel):
    query: list[str]


def create_app(scorer) -> FastAPI:
    """`scorer` has `score_texts(list[str]) -> list[float]` (rlhf.scoring.reward_actor.RewardScorer)."""
    app = FastAPI(title="reward model")

    @app.post("/get_reward")
    def get_reward(request: RewardRequest) -> dict:
        if not request.query:
            raise HTTPException(status_code=400, detail="query must be a non-empty list of texts")
        return {"rewards": scorer.score_texts(request.query)}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="reward-model directory (ours or OpenRLHF's format)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    parser.add_argument("--max-len", type=int, default=2048, help="tokens per text; longer texts are cut")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    return parser


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from rlhf.scoring.reward_actor import RewardScorer

    args = build_parser().parse_args(argv)
    scorer = RewardScorer(
        args.model,
        device_type=args.device,
        threads=0,
        dtype=args.dtype,
        batch_size=args.batch_size,
        system_prompt="",
        max_prompt_len=args.max_len // 2,
        max_response_len=args.max_len // 2,
    )
    uvicorn.run(create_app(scorer), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
