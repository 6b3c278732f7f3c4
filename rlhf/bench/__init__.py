"""Throughput benchmark: this project's online DPO loop against TRL's OnlineDPOTrainer on the same
work, the loop's phase breakdown and how it scales, and training arithmetic efficiency.

    python -m rlhf.bench --quick        # a few minutes: tiny model
    python -m rlhf.bench                # tiny and small models, full scaling sweep

Writes bench/results/<name>.json and .png, and docs/benchmark.md (generated from the JSON).
"""
