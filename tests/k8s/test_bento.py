"""The Bento: its pinned requirements come from requirements.lock and cover what the service imports; `make bento`'s
script builds and exports it with the model inside; the Dockerfile BentoML generates (CPU and CUDA) is non-root,
exposes HTTP and gRPC and carries the environment; and the exported archive, served the way the image's entrypoint
serves it (`bentoml serve $BENTO_PATH`, settings from the ConfigMap, an empty BENTOML_HOME), answers /readyz, gRPC
health and a real classification with the packaged model.

No container engine can build or run the image on the test machines (k8s/README.md says why), so the recipe is
checked as text and the archive is served by the same command the container runs.
"""

import ast
import importlib.metadata as md
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from packaging.requirements import Requirement

from devtools.server import Server, free_port, stop
from service.grpc_oip import OIP_SERVICE
from service.settings import Settings
from tests.conftest import serving
from tests.k8s.test_manifests import configmap_env, one, render

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("service", "audiocore")
NOT_IN_LOCK = {"setuptools", "wheel", "pip"}  # build tools pip brings itself


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, Requirement]:
    reqs = [Requirement(ln) for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return {norm(r.name): r for r in reqs}


def imported_distributions() -> set[str]:
    """Distributions of every third-party module that service/ and audiocore/ import."""
    owners = md.packages_distributions()
    found = set()
    for package in RUNTIME_PACKAGES:
        for source in (ROOT / package).glob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in RUNTIME_PACKAGES or top in sys.stdlib_module_names:
                        continue
                    assert top in owners, f"{source.name} imports {top}, which no installed distribution provides"
                    found.update(norm(d) for d in owners[top])
    return found


def closure(roots: set[str]) -> set[str]:
    seen, stack = set(), [Requirement(r) for r in roots]
    while stack:
        req = stack.pop()
        key = norm(req.name)
        if key in seen:
            continue
        seen.add(key)
        for dep in md.requires(req.name) or []:
            dep = Requirement(dep)
            if (
                dep.marker is None
                or dep.marker.evaluate({"extra": ""})
                or any(dep.marker.evaluate({"extra": e}) for e in req.extras)
            ):
                stack.append(dep)
    return seen


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_bento_requirements_are_the_locked_runtime_closure(variant):
    lock = pins(ROOT / "requirements.lock")
    bento = pins(ROOT / ("requirements-bento.txt" if variant == "cpu" else "requirements-bento-gpu.txt"))
    tf = "tensorflow-cpu" if variant == "cpu" else "tensorflow"
    for name, req in bento.items():
        locked = lock["tensorflow-cpu" if name == "tensorflow" else name]
        assert str(req.specifier) == str(locked.specifier), f"{name}: {req.specifier} but the lock has {locked}"
    if variant == "gpu":
        assert bento["tensorflow"].extras == {"and-cuda"} and "tensorflow-cpu" not in bento
    # uvloop and httptools are imported by uvicorn when present (its "auto" loop and HTTP parser), not by our code
    needed = closure(imported_distributions() | {"tritonclient[grpc]", "uvloop", "httptools"}) - NOT_IN_LOCK
    if variant == "gpu":
        needed = needed - {"tensorflow-cpu"} | {"tensorflow"}
    assert needed == set(bento), f"missing {needed - set(bento)}, not needed {set(bento) - needed}"
    assert tf in bento and "pytest" not in bento and "matplotlib" not in bento


@pytest.mark.parametrize("bentofile", ["bentofile.yaml", "bentofile.gpu.yaml"])
def test_bentofile_is_accepted_by_bentoml(bentofile):
    from bentoml._internal.bento.build_config import BentoBuildConfig

    config = BentoBuildConfig.from_file(str(ROOT / bentofile)).with_defaults()
    assert config.service == "service.app:AudioClassifier"
    assert config.python.lock_packages is False
    assert config.docker.env["NUMBA_CACHE_DIR"] == configmap_env(render("cpu"))["NUMBA_CACHE_DIR"]
    assert [m.tag for m in config.models] == [Settings.model_construct().model_tag]


@pytest.fixture(scope="module")
def built(trained_model, tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """`make bento`'s script for both variants with the session's model: {variant: (bento tag, archive)}."""
    out = tmp_path_factory.mktemp("bento")
    result = {}
    for variant in ("cpu", "gpu"):
        done = subprocess.run(
            ["bash", str(ROOT / "k8s" / "build_bento.sh"), variant, str(out), trained_model.tag],
            cwd=ROOT,
            env={**os.environ, "PY": sys.executable},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        match = re.search(r"^bento (\S+) \(model (\S+)\): (\S+)$", done.stdout, re.M)
        assert match and match[2] == trained_model.tag, done.stdout
        result[variant] = (match[1], Path(match[3]) if Path(match[3]).is_absolute() else ROOT / match[3])
    return result


def dockerfile(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        return tar.extractfile("./env/docker/Dockerfile").read().decode()


@pytest.mark.e2e
def test_exported_archive_holds_the_model_and_only_the_runtime_code(built, trained_model):
    version = trained_model.tag.split(":")[1]
    for _, archive in built.values():
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
        assert f"./models/audio_classifier/{version}/model.keras" in names
        assert f"./models/audio_classifier/{version}/metadata.json" in names
        assert "./src/service/app.py" in names and "./src/audiocore/features.py" in names
        assert not [n for n in names if n.startswith(("./src/tests", "./src/training", "./src/runs", "./src/.venv"))]
        assert not [n for n in names if "__pycache__" in n]


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_generated_dockerfile_is_non_root_exposes_both_ports_and_sets_the_env(built, variant):
    text = dockerfile(built[variant][1])
    settings = Settings.model_construct()
    lines = [ln.strip() for ln in text.splitlines()]
    base = next(ln for ln in lines if ln.startswith("FROM "))
    assert base.startswith("FROM nvidia/cuda:12" if variant == "gpu" else "FROM python:3.11-slim"), base
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users[-1] == "USER 10034:10034"  # numeric, non-root; the Deployment's runAsUser
    pod = one(render(variant), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10034
    exposed = {int(ln.split()[1]) for ln in lines if ln.startswith("EXPOSE ")}
    assert exposed == {settings.http_port, settings.grpc_port}
    assert lines.index(users[-1]) > max(i for i, ln in enumerate(lines) if ln.startswith("RUN "))
    assert "ENV NUMBA_CACHE_DIR=$NUMBA_CACHE_DIR" in lines
    assert "ARG NUMBA_CACHE_DIR=/var/cache/audioclf/numba" in lines
    assert "ENTRYPOINT" in lines[-1]
    requirements = "requirements-bento-gpu.txt" if variant == "gpu" else "requirements-bento.txt"
    with tarfile.open(built[variant][1]) as tar:
        packaged = tar.extractfile("./env/python/requirements.txt").read().decode()
    packaged_names = {norm(Requirement(ln).name) for ln in packaged.splitlines() if ln and not ln.startswith("#")}
    assert pins(ROOT / requirements).keys() == packaged_names


@pytest.mark.e2e
def test_exported_bento_serves_like_the_container(built, trained_model, tmp_path, digit_wav):
    """Unpack the archive and run what the image's entrypoint runs, with the CPU ConfigMap's settings and an empty
    BENTOML_HOME: the model must come from inside the Bento."""
    bento = tmp_path / "bento"
    with tarfile.open(built["cpu"][1]) as tar:
        tar.extractall(bento, filter="data")
    http_port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIOCLF_", "BENTOML_"))}
    env.update(configmap_env(render("cpu")))
    env.update(
        {
            "AUDIOCLF_HOST": "127.0.0.1",
            "AUDIOCLF_HTTP_PORT": str(http_port),
            "AUDIOCLF_GRPC_PORT": str(grpc_port),
            "BENTOML_HOME": str(tmp_path / "home"),  # the pod's emptyDir
            # the pod's numba emptyDir is /var/cache/audioclf; here the developer's warm cache saves ~40 s
            "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(Path.home() / ".cache/audioclf/numba")),
        }
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", str(bento)],
            cwd=tmp_path,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", trained_model.tag, log, env)
    try:
        serving(proc, server)
        assert requests.get(f"{server.http}/livez", timeout=10).status_code == 200
        with grpc.insecure_channel(server.grpc) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=OIP_SERVICE), timeout=10
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        answer = requests.post(f"{server.http}/classify", files={"audio": digit_wav.read_bytes()}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == trained_model.tag
        assert len(answer.json()["predictions"]) == int(env["AUDIOCLF_DEFAULT_TOP_K"])
        assert not (tmp_path / "home" / "models" / "audio_classifier").exists()  # nothing came from a store
    finally:
        stop(proc)
