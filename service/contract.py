"""What the service answers, whatever the protocol: the typed result of classifying one clip, and the HTTP JSON
shapes that /docs.json publishes.

The pipeline (service.pipeline) returns `ClipResult`s with full-precision scores; each protocol renders them with a
thin function of its own: `to_json` here for `/classify`, `service.oip.output_rows` for the Open Inference
Protocol's `label` and `score` tensors (gRPC and REST alike). Both round scores to SCORE_DECIMALS places, so a file
gets the same answer over every protocol.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

SCORE_DECIMALS = 6  # JSON scores are rounded to this many places: float32 softmax holds no more


@dataclass(frozen=True)
class Ranked:
    """A label and its score (a softmax probability, averaged over windows for a clip)."""

    label: str
    score: float


@dataclass(frozen=True)
class WindowResult:
    """One analysis window: where it lies in the clip (the part that holds audio) and its top-k."""

    start_s: float
    end_s: float
    predictions: tuple[Ranked, ...]


@dataclass(frozen=True)
class ClipResult:
    """One clip's answer: clip-level top-k, best first (window scores averaged, as training evaluates), what was
    decoded, and every window's top-k when asked for."""

    model: str
    predictions: tuple[Ranked, ...]
    duration_s: float
    sample_rate: int
    channels: int
    segments: tuple[WindowResult, ...] | None = None

    @property
    def label(self) -> str:
        """The best label."""
        return self.predictions[0].label


class Prediction(BaseModel):
    label: str
    score: float


class Segment(BaseModel):
    start_s: float
    end_s: float
    predictions: list[Prediction]


class Classification(BaseModel):
    model: str = Field(description="The BentoML tag of the model that answered.")
    predictions: list[Prediction] = Field(description="Clip-level top-k, best first (window scores averaged).")
    duration_s: float = Field(description="Duration of the decoded audio.")
    sample_rate: int = Field(description="Sample rate of the uploaded file.")
    channels: int = Field(description="Channels of the uploaded file (mixed to mono before features).")
    segments: list[Segment] | None = Field(None, description="Per-window predictions, only with segments=true.")


class ErrorBody(BaseModel):
    error: str = Field(description="The reason, machine-readable (docs/service.md lists them).")
    detail: str = Field(description="What is wrong, for people.")


def to_json(result: ClipResult) -> dict[str, Any]:
    """`/classify`'s answer (the `Classification` shape): times to 4 places, scores to 6; `segments` only when
    the result has them."""
    body: dict[str, Any] = {
        "model": result.model,
        "predictions": _ranked(result.predictions),
        "duration_s": round(result.duration_s, 4),
        "sample_rate": result.sample_rate,
        "channels": result.channels,
    }
    if result.segments is not None:
        body["segments"] = [
            {"start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4), "predictions": _ranked(w.predictions)}
            for w in result.segments
        ]
    return body


def _ranked(predictions: tuple[Ranked, ...]) -> list[dict[str, Any]]:
    return [{"label": p.label, "score": round(p.score, SCORE_DECIMALS)} for p in predictions]
