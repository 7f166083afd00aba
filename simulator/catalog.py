"""The models the reference server lists and serves; ``category`` drives filtering and
whether a model can chat."""

from __future__ import annotations

from typing import Any

MODELS: tuple[dict[str, Any], ...] = (
    {"id": "copilot-zero", "object": "model", "created": 1704067200, "owned_by": "secton",
     "category": "chat"},
    {"id": "copilot-one", "object": "model", "created": 1711929600, "owned_by": "secton",
     "category": "chat"},
    {"id": "copilot-mini", "object": "model", "created": 1719792000, "owned_by": "secton",
     "category": "chat"},
    {"id": "secton-embed-small", "object": "model", "created": 1706745600,
     "owned_by": "secton", "category": "embedding"},
    {"id": "secton-embed-large", "object": "model", "created": 1714521600,
     "owned_by": "secton", "category": "embedding"},
    {"id": "secton-moderation", "object": "model", "created": 1709251200,
     "owned_by": "secton", "category": "moderation"},
    {"id": "secton-vision-1", "object": "model", "created": 1722470400,
     "owned_by": "secton", "category": "vision"},
)
BY_ID = {str(model["id"]): model for model in MODELS}
CATEGORIES = frozenset(str(model["category"]) for model in MODELS)
CHAT_CATEGORIES = frozenset({"chat", "vision"})
SORTS = {
    "name": ("id", False),
    "-name": ("id", True),
    "created": ("created", False),
    "-created": ("created", True),
}


def list_models(category: str | None, sort: str | None) -> list[dict[str, Any]]:
    """Models of ``category`` (all when None; unknown = empty), ordered by ``sort``
    (``name``, ``-name``, ``created``, ``-created``; catalog order when None)."""
    models = [m for m in MODELS if category is None or m["category"] == category]
    if sort is not None:
        field, reverse = SORTS[sort]
        models.sort(key=lambda model: model[field], reverse=reverse)
    return models
