"""The BentoML model store, read: a tag -> the model's exact tag and its folder (audiocore.artifact loads it).

bentoml is imported only when a tag is looked up, so that code that never touches the store does not pay for it.
"""

import os
from pathlib import Path


class NotInStore(LookupError):
    """The tag names no model in the store; the message says which store was searched."""


def locate(tag: str) -> tuple[str, Path]:
    """'audio_classifier:latest' -> ('audio_classifier:<version>', the model's folder); NotInStore if absent."""
    import bentoml

    try:
        stored = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise NotInStore(f"model {tag!r} is not in the BentoML store (BENTOML_HOME={home})") from None
    return str(stored.tag), Path(stored.path)
