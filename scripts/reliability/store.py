"""A private BENTOML_HOME holding a copy of the model, and damaged copies of it: the run never touches yours."""

import shutil
import tempfile
from pathlib import Path

from audiocore import store


def private_store(tag: str) -> tuple[Path, str]:
    """A temporary BENTOML_HOME holding a copy of `tag` from the user's store; NotInStore when it is not there."""
    exact, folder = store.locate(tag)
    name, version = exact.split(":")
    home = Path(tempfile.mkdtemp(prefix="audioclf-reliability-"))
    shutil.copytree(folder, home / "models" / name / version)
    (home / "models" / name / "latest").write_text(version)
    return home, exact


def damaged_copy(home: Path, tag: str, new_version: str, damage) -> str:
    """Another version of `tag` in the private store `home`, its folder passed through `damage`."""
    name, version = tag.split(":")
    folder = home / "models" / name / new_version
    shutil.copytree(home / "models" / name / version, folder)
    damage(folder)
    return f"{name}:{new_version}"
