"""The typed answer and its renderers: `/classify`'s JSON (rounded, the published schema) and OIP's output rows
(the same scores), from one ClipResult."""

from service.contract import Classification, ClipResult, Ranked, WindowResult, to_json
from service.oip import output_rows

CLIP = ClipResult(
    model="m:v1",
    predictions=(Ranked("seven", 0.912345678), Ranked("one", 0.0512345678)),
    duration_s=1.234567,
    sample_rate=44100,
    channels=2,
)


def test_json_rounds_scores_and_times_and_fits_the_published_schema():
    body = to_json(CLIP)
    assert body == {
        "model": "m:v1",
        "predictions": [{"label": "seven", "score": 0.912346}, {"label": "one", "score": 0.051235}],
        "duration_s": 1.2346,
        "sample_rate": 44100,
        "channels": 2,
    }
    assert Classification.model_validate(body).model_dump(exclude_none=True) == body


def test_json_has_segments_only_when_the_result_has_them():
    windows = (WindowResult(0.0, 1.0, (Ranked("seven", 0.5),)), WindowResult(0.5, 1.234567, (Ranked("one", 0.25),)))
    body = to_json(ClipResult("m:v1", CLIP.predictions, 1.234567, 8000, 1, windows))
    assert body["segments"] == [
        {"start_s": 0.0, "end_s": 1.0, "predictions": [{"label": "seven", "score": 0.5}]},
        {"start_s": 0.5, "end_s": 1.2346, "predictions": [{"label": "one", "score": 0.25}]},
    ]
    Classification.model_validate(body)
    assert "segments" not in to_json(CLIP)


def test_oip_rows_are_row_major_and_rounded_as_json_is():
    other = ClipResult("m:v1", (Ranked("two", 0.7), Ranked("six", 0.2)), 0.5, 8000, 1)
    labels, scores = output_rows([CLIP, other])
    assert labels == ["seven", "one", "two", "six"]
    assert scores == [0.912346, 0.051235, 0.7, 0.2]
    assert scores[:2] == [p["score"] for p in to_json(CLIP)["predictions"]]


def test_the_best_label_is_the_first_prediction():
    assert CLIP.label == "seven"
