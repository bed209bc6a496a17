"""Which model the benchmark and the profiler serve: a store tag, a model folder, or (when the store has none) the
small FSDD model the tests train, in a private store so that the user's store is left as it was."""

import json
import os
from pathlib import Path

from audiocore import store
from devtools.small_model import train_small_model
from loadtests import clips as clipsets


def use_private_store(folder: Path) -> None:
    """Before bentoml is imported: keep everything the benchmark registers under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(folder)


def in_store(tag: str) -> tuple[str, Path] | None:
    try:
        return store.locate(tag)
    except store.NotInStore:
        return None


def register_folder(folder: Path) -> str:
    from audiocore.artifact import read_metadata
    from training.registry import register

    return register(folder, "audio_classifier", read_metadata(folder))


def train_small(fsdd: Path, work: Path) -> str:
    """The tests' small model (devtools.small_model: 10 clips per digit and speaker, 10 epochs, ~1 min)."""
    run = train_small_model(fsdd, work)
    return json.loads((run / "metrics.json").read_text())["bentoml_tag"]


def choose(model_tag: str, model_dir: Path | None, data: str | None, out: Path) -> tuple[str, Path, str]:
    """(tag, model folder, how it was chosen): `model_dir` registered privately under `out`, else `model_tag` from
    the store, else the small test model trained into a private store under `out`."""
    if model_dir:
        use_private_store(out / "bentoml")
        return register_folder(model_dir), model_dir, f"folder {model_dir}"
    found = in_store(model_tag)
    if found:
        return found[0], found[1], f"store tag {model_tag}"
    print(
        f"{model_tag} is not in the BentoML store: training the small test model (about a minute) into a "
        f"private store under {out}; pass --model-tag or --model-dir to use your own model",
        flush=True,
    )
    use_private_store(out / "bentoml")
    work = out / "small-model"
    tag = train_small(clipsets.data_dir(data) / "fsdd", work)
    return tag, work / "run" / "model", "the small test model (trained: none in the store)"
