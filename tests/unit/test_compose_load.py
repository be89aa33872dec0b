"""Loading compose files as Compose does: interpolation, .env, env_file, merge of several
files, profiles, and refusals in Compose's words (one line, naming the file and line)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bosun.compose.errors import ComposeError
from bosun.compose.interpolate import interpolate_text
from bosun.compose.load import load

FILES = Path(__file__).parent / "compose_files"


def _interp(text: str, env: dict[str, str]) -> tuple[str, list[str]]:
    unset: list[str] = []
    return interpolate_text(text, env, unset.append), unset


@pytest.mark.parametrize(("text", "env", "want"), [
    ("${A}", {"A": "x"}, "x"),
    ("$A-$B", {"A": "1", "B": "2"}, "1-2"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("${A:+set}", {"A": "v"}, "set"),
    ("${A:+set}", {"A": ""}, ""),
    ("${A+set}", {"A": ""}, "set"),
    ("$$A costs $$5", {"A": "no"}, "$A costs $5"),
    ("${A:-${B:-inner}}", {}, "inner"),
    ("${A:-${B}}", {"B": "b"}, "b"),
])
def test_interpolation_forms(text: str, env: dict[str, str], want: str) -> None:
    assert _interp(text, env)[0] == want


def test_unset_variable_is_reported_and_blank() -> None:
    assert _interp("a${NOPE}b", {}) == ("ab", ["NOPE"])


def test_required_variable_refused_with_its_message() -> None:
    with pytest.raises(ComposeError, match="required variable TOKEN is missing a value: give a token"):
        _interp("${TOKEN:?give a token}", {})
    with pytest.raises(ComposeError, match="missing '}'"):
        _interp("${A:-x", {})


def test_realistic_file_loads_with_dotenv_env_file_and_defaults() -> None:
    p = load([FILES / "webapp.yml"], shell={})
    assert set(p.services) == {"web", "api", "db", "redis"}
    assert p.services["web"]["image"] == "nginx:1.27-alpine"  # from .env next to the file
    api = p.services["api"]["environment"]
    assert api["API_KEY"] == "from-env-file"  # env_file
    assert api["LOG_LEVEL"] == "info"  # environment wins over env_file; default of ${LOG_LEVEL:-info}
    assert api["TZ"] == "UTC"  # from the x- anchor merged with <<
    assert p.services["api"]["deploy"]["replicas"] == "3"


def test_shell_environment_beats_dotenv() -> None:
    p = load([FILES / "webapp.yml"], shell={"NGINX_TAG": "1.25", "API_REPLICAS": "5"})
    assert p.services["web"]["image"] == "nginx:1.25"
    assert p.services["api"]["deploy"]["replicas"] == "5"


def test_override_file_merges(tmp_path: Path) -> None:
    base = tmp_path / "compose.yml"
    base.write_text("""
services:
  app:
    image: busybox
    command: ["sleep", "1"]
    environment: [A=1, B=2]
    ports: ["30080:80"]
    volumes: ["data:/data"]
volumes: {data: {}}
""")
    over = tmp_path / "override.yml"
    over.write_text("""
services:
  app:
    command: ["sleep", "2"]
    environment: {B: "3", C: "4"}
    ports: ["30443:443"]
    volumes: ["/srv:/data"]
""")
    svc = load([base, over], shell={}).services["app"]
    assert svc["command"] == ["sleep", "2"]  # replaced, not appended
    assert svc["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert [p["target"] for p in svc["ports"]] == [80, 443]
    assert svc["volumes"] == [{"type": "bind", "source": "/srv", "target": "/data", "read_only": False}]


def test_profiles_select_services(tmp_path: Path) -> None:
    f = tmp_path / "compose.yml"
    f.write_text("services:\n  app: {image: a}\n  debug: {image: b, profiles: [debug]}\n")
    assert set(load([f], shell={}).services) == {"app"}
    assert set(load([f], shell={"COMPOSE_PROFILES": "debug"}).services) == {"app", "debug"}


def _error(tmp_path: Path, text: str) -> str:
    f = tmp_path / "compose.yml"
    f.write_text(text)
    with pytest.raises(ComposeError) as e:
        load([f], shell={})
    message = str(e.value)
    assert "\n" not in message
    return message.replace(str(f), "compose.yml")


def test_yaml_error_names_line_and_column(tmp_path: Path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n   bad: [\n")
    assert msg.startswith("compose.yml: yaml: line 4, column")


def test_unknown_service_key_is_the_schemas_message_with_line(tmp_path: Path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n    imagee: b\n")
    assert msg == "validating compose.yml:4: services.web additional properties 'imagee' not allowed"


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = _error(tmp_path, "services:\n  web: {image: a}\nservice:\n  x: {}\n")
    assert msg == "validating compose.yml:3: (root) additional properties 'service' not allowed"


def test_wrong_type(tmp_path: Path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n    ports: 80\n")
    assert msg == "validating compose.yml:4: services.web.ports must be a list"


@pytest.mark.parametrize(("text", "want"), [
    ("services:\n  web: {image: a, volumes: ['data:/d']}\n",
     'service "web" refers to undefined volume data: invalid compose project'),
    ("services:\n  web: {image: a, networks: [front]}\n",
     'service "web" refers to undefined network front: invalid compose project'),
    ("services:\n  web: {image: a, secrets: [pw]}\n",
     'service "web" refers to undefined secret pw: invalid compose project'),
    ("services:\n  web: {image: a, configs: [conf]}\n",
     'service "web" refers to undefined config conf: invalid compose project'),
    ("services:\n  web: {image: a, depends_on: [db]}\n",
     'service "web" depends on undefined service "db": invalid compose project'),
    ("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n"
     "  c: {image: x, depends_on: [a]}\n",
     "dependency cycle detected: a -> b -> c -> a"),
])
def test_undefined_references_and_cycles(tmp_path: Path, text: str, want: str) -> None:
    assert _error(tmp_path, text) == want


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no such file or directory"):
        load([tmp_path / "nope.yml"], shell={})
    assert _error(tmp_path, "- a\n- b\n") == "compose.yml: top-level object must be a mapping"


def test_extends_in_the_same_file_and_another(tmp_path: Path) -> None:
    common = tmp_path / "common"
    common.mkdir()
    (common / "base.yml").write_text("""
services:
  base:
    image: busybox
    environment: {A: "1", B: "2"}
    volumes: ["./data:/data"]
""")
    f = tmp_path / "compose.yml"
    f.write_text("""
services:
  app:
    extends: {file: common/base.yml, service: base}
    environment: {B: "3"}
  worker:
    extends: app
    command: ["work"]
""")
    p = load([f], shell={})
    app, worker = p.services["app"], p.services["worker"]
    assert app["image"] == worker["image"] == "busybox"
    assert app["environment"] == {"A": "1", "B": "3"}
    # The bind mount is relative to the file that wrote it, not to the extending file.
    assert app["volumes"][0]["source"] == str((common / "data").resolve())
    assert worker["command"] == ["work"] and worker["environment"] == {"A": "1", "B": "3"}
    assert "extends" not in app


def test_extends_cycle_and_missing_service(tmp_path: Path) -> None:
    assert _error(tmp_path, "services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n") == \
        "circular reference with extends: a -> b -> a"
    assert _error(tmp_path, "services:\n  a: {image: x, extends: nope}\n") == \
        'cannot extend service "a": service "nope" not found'


def test_include_copies_another_project_in(tmp_path: Path) -> None:
    sub = tmp_path / "db"
    sub.mkdir()
    (sub / ".env").write_text("DB_TAG=15\n")
    (sub / "compose.yml").write_text("services:\n  db: {image: 'postgres:${DB_TAG}', volumes: [dbdata:/d]}\n"
                                     "volumes: {dbdata: {}}\n")
    f = tmp_path / "compose.yml"
    f.write_text("include: [db/compose.yml]\nservices:\n  app: {image: a, depends_on: [db]}\n")
    p = load([f], shell={})
    assert set(p.services) == {"app", "db"}
    assert p.services["db"]["image"] == "postgres:15"  # the included project's own .env
    assert "dbdata" in p.top("volumes")
    f.write_text("include: [db/compose.yml]\nservices:\n  db: {image: a}\n")
    with pytest.raises(ComposeError, match=r"services\.db conflicts with imported resource"):
        load([f], shell={})


def test_yaml_is_read_as_compose_reads_it(tmp_path: Path) -> None:
    f = tmp_path / "compose.yml"
    f.write_text("services:\n  off:\n    image: a\n    restart: no\n    environment: {DEBUG: on, X: true}\n"
                 "  '1': {image: b}\n")
    p = load([f], shell={})
    assert set(p.services) == {"off", "1"}
    assert p.services["off"]["restart"] == "no"
    assert p.services["off"]["environment"] == {"DEBUG": "on", "X": "true"}


def test_standard_input_is_a_file_of_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site.conf").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("services:\n  web: {image: 'a:${TAG:-1}', volumes: ['./d:/d']}\n"
                                                 "configs:\n  site: {file: ./site.conf}\n"))
    p = load(["-"], shell={"TAG": "2"})
    assert p.services["web"]["image"] == "a:2"
    assert p.services["web"]["volumes"][0]["source"] == str(tmp_path / "d")
    assert p.top("configs")["site"]["file"] == str(tmp_path / "site.conf")
