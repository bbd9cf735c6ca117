"""The container image, checked without a Docker engine: parse the Dockerfile into instructions."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass

import pytest
import yaml

from tests.helm.helpers import CHART, REPO

MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "4194304",
    "MALLOC_TRIM_THRESHOLD_": "67108864",
    "MALLOC_TOP_PAD_": "16777216",
}


@dataclass
class Instruction:
    cmd: str  # upper case
    args: str  # raw text after the command, continuations joined


def parse(text: str) -> list[Instruction]:
    """Dockerfile lines -> instructions: comments dropped (also inside continuations), `\\` joined."""
    out: list[Instruction] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        cmd, _, args = buf.strip().partition(" ")
        out.append(Instruction(cmd.upper(), args.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


INSTRUCTIONS = parse((REPO / "Dockerfile").read_text())


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in INSTRUCTIONS:
        if ins.cmd == "FROM":
            result.append([])
        if not result and ins.cmd == "ARG":
            continue  # a global ARG (e.g. the base image), usable in FROM lines
        assert result, f"{ins.cmd} before the first FROM"
        result[-1].append(ins)
    return result


def global_args() -> dict[str, str]:
    """ARGs before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for ins in INSTRUCTIONS:
        if ins.cmd == "FROM":
            break
        name, _, default = ins.args.partition("=")
        args[name] = default
    return args


FINAL = stages()[-1]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.cmd == "ENV":
            for key, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', ins.args):
                env[key] = value.strip('"')
    return env


def flags_and_words(args: str) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    words: list[str] = []
    for w in args.split():
        if w.startswith("--"):
            k, _, v = w[2:].partition("=")
            flags[k] = v
        else:
            words.append(w)
    return flags, words


def test_parses_into_known_instructions() -> None:
    known = {
        "FROM",
        "RUN",
        "COPY",
        "ENV",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
        "LABEL",
        "STOPSIGNAL",
        "ARG",
        "HEALTHCHECK",
    }
    assert INSTRUCTIONS
    assert {i.cmd for i in INSTRUCTIONS} <= known


def test_multi_stage_with_pinned_slim_base() -> None:
    froms = [i.args for i in INSTRUCTIONS if i.cmd == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    names: set[str] = set()
    for args in froms:
        parts = args.split()
        # ${BASE_IMAGE}: a build ARG (the image test gives a stand-in); users get its default
        image = re.sub(r"\$\{(\w+)\}", lambda m: global_args()[m[1]], parts[0])
        if len(parts) == 3:
            assert parts[1].upper() == "AS"
            names.add(parts[2])
        if image in names:
            continue
        # exact version: python:3.11.<patch>-slim-<debian>, optionally @sha256 digest; never latest/3.11
        assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    assert "digest" in (REPO / "Dockerfile").read_text()  # the comment telling production to pin by digest
    # both stages on the same base: the venv's python is a symlink to the base's interpreter
    assert len({f.split()[0] for f in froms if f.split()[0] not in names}) == 1, froms


def test_final_stage_copies_only_the_venv_from_the_builder() -> None:
    copies = [i for i in FINAL if i.cmd in ("COPY", "ADD")]
    assert copies, "the final stage must copy the venv"
    for ins in copies:
        assert ins.cmd == "COPY"
        flags, words = flags_and_words(ins.args)
        assert "from" in flags, f"final stage copies from the build context: {ins.args}"
        assert words == ["/opt/venv", "/opt/venv"]
    assert not [i for i in FINAL if i.cmd == "RUN" and "pip install" in i.args], "no installs in the final stage"


def test_user_is_numeric_non_root() -> None:
    users = [i.args for i in FINAL if i.cmd == "USER"]
    assert users, "final stage must set USER"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER must be numeric (runAsNonRoot checks it): {user}"
    uid, _, gid = user.partition(":")
    assert int(uid) != 0 and (not gid or int(gid) != 0)
    assert user == "65532:65532"
    # nothing after USER may switch back to root
    assert [i.cmd for i in FINAL].index("USER") > max(n for n, i in enumerate(FINAL) if i.cmd in ("RUN", "COPY"))


def test_entrypoint_exec_form_runs_the_console_script() -> None:
    entry = [i.args for i in FINAL if i.cmd == "ENTRYPOINT"]
    assert len(entry) == 1
    argv = json.loads(entry[0])  # exec form is a JSON array; shell form would not parse
    assert argv == ["s2-sidecar"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "s2-sidecar" in scripts
    cmds = [i.args for i in FINAL if i.cmd == "CMD"]
    assert all(isinstance(json.loads(c), list) for c in cmds)
    assert [i.args for i in FINAL if i.cmd == "STOPSIGNAL"] == ["SIGTERM"]


def test_exposed_ports() -> None:
    ports = {p.split("/")[0] for i in FINAL if i.cmd == "EXPOSE" for p in i.args.split()}
    assert {"50051", "9090"} <= ports


def test_runtime_environment() -> None:
    env = env_of(FINAL)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert {k: env[k] for k in MALLOC} == MALLOC
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["S2_SIDECAR_ADMIN_LISTEN"] == "0.0.0.0:9090"
    assert "S2_ACCESS_TOKEN" not in (REPO / "Dockerfile").read_text()


def test_builder_installs_into_the_venv_and_checks_it() -> None:
    run = " ".join(i.args for i in stages()[0] if i.cmd == "RUN")
    assert "python -m venv /opt/venv" in run
    assert "/opt/venv/bin/pip install" in run
    assert "compileall" in run  # .pyc built at build time (read-only root filesystem at run time)
    assert "s2-sidecar --help" in run  # the console script imports


# ---------------------------------------------------------------------------------------- build context


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def ignored(rel: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a match on a parent dir counts."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pat in dockerignore_patterns():
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        for cand in candidates:
            if fnmatch.fnmatchcase(cand, pat) or (
                pat.startswith("**/") and fnmatch.fnmatchcase(cand.split("/")[-1], pat[3:])
            ):
                result = not negate
                break
    return result


def context_copies() -> list[str]:
    sources: list[str] = []
    for ins in INSTRUCTIONS:
        if ins.cmd in ("COPY", "ADD"):
            flags, words = flags_and_words(ins.args)
            if "from" not in flags:
                sources += words[:-1]
    return sources


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    sources = context_copies()
    assert "pyproject.toml" in sources and "sidecar" in sources
    for src in sources:
        if any(ch in src for ch in "*?["):
            # optional files (e.g. README.md*): BuildKit allows a wildcard that matches nothing,
            # but whatever it does match must reach the build context
            for match in REPO.glob(src):
                assert not ignored(match.relative_to(REPO).as_posix()), f"COPY {src}: {match} is excluded"
            continue
        assert (REPO / src).exists(), f"COPY {src}: no such file in the repo"
        assert not ignored(src), f"COPY {src}: excluded by .dockerignore"
    assert not ignored("sidecar/_proto/s2/v1/records_pb2.py")


def test_copies_every_package_the_wheel_needs() -> None:
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()]
    needed = {p for p in packages if any(fnmatch.fnmatchcase(p, pat) for pat in find["include"])}
    assert needed <= set(context_copies()), f"packages not copied: {needed - set(context_copies())}"


@pytest.mark.parametrize("path", [".venv", ".git", ".tools", "tests", "helm", "sidecar/__pycache__", "x.pyc"])
def test_dockerignore_keeps_the_context_small(path: str) -> None:
    assert ignored(path), path


# ---------------------------------------------------------------------------------------- image <-> chart


def test_chart_matches_the_image() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid, _, gid = next(i.args for i in FINAL if i.cmd == "USER").partition(":")
    sc = values["sidecar"]["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"]) == (int(uid), int(gid))
    malloc = values["sidecar"]["malloc"]
    env = env_of(FINAL)
    assert str(malloc["mmapThreshold"]) == env["MALLOC_MMAP_THRESHOLD_"]
    assert str(malloc["trimThreshold"]) == env["MALLOC_TRIM_THRESHOLD_"]
    assert str(malloc["topPad"]) == env["MALLOC_TOP_PAD_"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == version == values["image"]["tag"]
