"""The Vertex fake's text-embedding route (`:predict`), answering Vertex's real JSON.

Request: `{"instances": [{"content": ..., "task_type": ..., "title": ...}],
"parameters": {"outputDimensionality": N}}`; answer: `{"predictions": [{"embeddings":
{"values": [...], "statistics": {"truncated": false, "token_count": n}}}], "metadata":
{"billableCharacterCount": n}}`.

The vectors are deterministic: each word (lower-cased, a trailing "s" dropped) adds
to one of N hashed dimensions, then the vector is normalised. Texts that share words
are close, so fused ranking behaves as it would with a real model, on a small scale.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

DEFAULT_DIMENSIONS = 768


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        stem = word[:-1] if len(word) > 3 and word.endswith("s") else word
        bucket = int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "big") % dimensions
        vector[bucket] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def predict_embeddings(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The answer to an embedding `:predict` call, or a 400 for a malformed one."""
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or len(instances) > 250:
        return 400, {
            "error": {"code": 400, "message": "instances: 1 to 250 expected", "status": "INVALID_ARGUMENT"}
        }
    dimensions = int((body.get("parameters") or {}).get("outputDimensionality") or DEFAULT_DIMENSIONS)
    predictions = []
    characters = 0
    for instance in instances:
        content = str(instance.get("content", ""))
        characters += len(content)
        predictions.append(
            {
                "embeddings": {
                    "statistics": {"truncated": False, "token_count": len(content.split())},
                    "values": embed_text(content, dimensions),
                }
            }
        )
    return 200, {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
