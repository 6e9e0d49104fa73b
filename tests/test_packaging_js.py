"""The browser client as an npm package: ``npm pack`` of clients/js, installed into a fresh project.

Why: a web project takes the client with ``npm install``, not by copying
``dist/broker.js`` out of this repo. What such a project gets is the tarball,
so the tarball is what is tested: packed from the ``dist/`` that ``make js``
built (``--ignore-scripts``: the worktree is not rebuilt under the suite's
feet; ``prepack`` rebuilds it for a real ``npm pack``/``npm publish``),
installed offline into an empty project (the bundle includes AutobahnJS, so
the package has no runtime dependencies and needs no registry), imported as an
ES module by Node, and type-checked with ``tsc`` (clients/js's own
devDependency) against the ``broker.d.ts`` inside the installed package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "clients" / "js"
FIXTURES = Path(__file__).resolve().parent / "packaging"
TSC = JS / "node_modules" / ".bin" / "tsc"
NAME = "@broker/client"

pytestmark = pytest.mark.packaging


def run(argv: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` of clients/js (its dist/ built by ``make js``)."""
    assert (JS / "dist" / "broker.js").exists(), "run `make js` first"
    out = tmp_path_factory.mktemp("pack")
    argv = ["npm", "pack", "--ignore-scripts", "--json", "--pack-destination", str(out)]
    packed = json.loads(run(argv, JS).stdout)
    return out / packed[0]["filename"]


@pytest.fixture(scope="module")
def project(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty project with the tarball installed, offline, and the consumer files copied in."""
    app = tmp_path_factory.mktemp("app")
    (app / "package.json").write_text(json.dumps({"name": "app", "private": True, "type": "module"}))
    offline = ["--offline", "--no-audit", "--no-fund", "--no-package-lock", "--ignore-scripts"]
    run(["npm", "install", *offline, str(tarball)], app)
    for name in ("consumer.mjs", "consumer.ts", "misuse.ts", "tsconfig.json", "tsconfig.misuse.json"):
        shutil.copy(FIXTURES / name, app / name)
    return app


def test_tarball_holds_the_bundle_its_types_and_readme_only(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = sorted(tar.getnames())
        manifest = json.load(tar.extractfile("package/package.json"))  # type: ignore[arg-type]
    assert names == [
        "package/README.md",
        "package/broker.d.ts",
        "package/dist/broker.js",
        "package/dist/broker.js.map",
        "package/package.json",
    ]
    assert "private" not in manifest
    assert manifest["name"] == NAME
    assert manifest["version"] == "0.1.0"
    assert manifest["license"] == "MIT"
    assert manifest["type"] == "module"
    assert manifest["types"] == "./broker.d.ts"
    assert manifest["exports"]["."] == {"types": "./broker.d.ts", "default": "./dist/broker.js"}
    # AutobahnJS is bundled into dist/broker.js: nothing to install beside it
    assert "dependencies" not in manifest


def test_installs_offline_with_nothing_beside_it(project: Path) -> None:
    # npm's own hidden lockfile aside
    installed = sorted(p.name for p in (project / "node_modules").iterdir() if not p.name.startswith("."))
    assert installed == ["@broker"]
    assert sorted(p.name for p in (project / "node_modules" / "@broker").iterdir()) == ["client"]


def test_imports_as_an_es_module(project: Path) -> None:
    out = json.loads(run(["node", "consumer.mjs"], project).stdout)
    assert out == {
        "name": NAME,
        "exports": [
            "backoffCeiling",
            "backoffDelay",
            "connect",
            "defaultLongPollUrl",
            "expiresSoon",
            "jwtPayload",
            "nextState",
            "refreshDelay",
            "tokenExpiry",
        ],
        "connect": "function",
        "ceiling": 8000,
        "longPoll": "https://example.test/lp",
    }


def test_typescript_checks_against_the_installed_declarations(project: Path) -> None:
    files = run([str(TSC), "-p", "tsconfig.json", "--listFilesOnly"], project).stdout.splitlines()
    # the declarations come from the installed package, not from the repo
    assert str(project / "node_modules" / "@broker" / "client" / "broker.d.ts") in files
    result = run([str(TSC), "-p", "tsconfig.json", "--pretty", "false"], project, check=False)
    assert (result.returncode, result.stdout) == (0, "")


def test_typescript_rejects_a_wrong_option(project: Path) -> None:
    result = run([str(TSC), "-p", "tsconfig.misuse.json", "--pretty", "false"], project, check=False)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "misuse.ts(4,84): error TS2322: Type '\"glob\"' is not assignable to type 'Match | undefined'."
    ]
