"""A fitted logistic model as plain numbers: the form the answer selector and the
abstention model are stored in (a JSON file shipped with the package, or a SQL row).

Fitting happens in ``evals`` (scikit-learn); serving needs only numpy, so nothing is
unpickled and a stored model is readable and diffable.

    model = LinearModel.from_json(json.loads(text))
    p = model.proba(features)            # features: (n, len(model.features))
    model.decide(p)                      # p >= model.threshold
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InvalidRequest


@dataclass(frozen=True)
class LinearModel:
    """``sigmoid(((x - mean) / scale) @ coef + intercept)`` over named features.

    ``threshold`` is the operating point on the probability; ``meta`` records how it was
    fitted (data, cross-validated figures) so a stored model explains itself.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise InvalidRequest(
                f"linear model: {n} features but {len(self.mean)} means, "
                f"{len(self.scale)} scales and {len(self.coef)} coefficients"
            )

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of ``x``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} features, got {x.shape[1]}")
        scale = np.where(np.asarray(self.scale) > 0, self.scale, 1.0)
        z = ((x - np.asarray(self.mean)) / scale) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

    def decide(self, p: float | np.ndarray) -> Any:
        return np.asarray(p) >= self.threshold

    def with_threshold(self, threshold: float, **meta: Any) -> LinearModel:
        return LinearModel(
            self.features,
            self.mean,
            self.scale,
            self.coef,
            self.intercept,
            float(threshold),
            {**self.meta, **meta},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [round(v, 8) for v in self.mean],
            "scale": [round(v, 8) for v in self.scale],
            "coef": [round(v, 8) for v in self.coef],
            "intercept": round(self.intercept, 8),
            "threshold": round(self.threshold, 6),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], expected: Sequence[str] | None = None
    ) -> LinearModel:
        """Parse a stored model; ``expected`` feature names must match exactly (a model
        fitted on other features cannot be applied)."""
        try:
            model = cls(
                features=tuple(str(f) for f in data["features"]),
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                coef=tuple(float(v) for v in data["coef"]),
                intercept=float(data["intercept"]),
                threshold=float(data.get("threshold", 0.5)),
                meta=dict(data.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidRequest(f"not a stored linear model: {e}") from None
        if expected is not None and tuple(expected) != model.features:
            raise InvalidRequest(
                f"the stored model uses features {list(model.features)}, this version "
                f"computes {list(expected)}: fit it again (rag tune --abstention)"
            )
        return model
