"""The dashboard never reads a file a user names (issue 23): paths typed or uploaded are text, not files.

A dashboard is often served to a team: whatever one member types into the Score page's paste box, the
Spot-check page, or an uploaded file must not open a file on the machine that serves it. Each test names
files that hold a secret or valid records, and checks, through Python's audit hooks, that the page opened
none of them, loaded nothing from them and showed none of their text. Nor does it hand a key of its
machine's to an address a user typed, or send an environment variable a user named as a key.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from streamlit.testing.v1 import AppTest

import dashboard as ui
from scoring import ScoringInputError
from support.file_reads import watch_reads

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
SPOT_CHECK = str(REPO / "pages" / "2_Spot_check.py")
CANARY = "canary-7f3a91"


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, Path]:
    """Files a stranger might name: a key file, and records (with explanations) the page would happily load."""
    folder = tmp_path / "served-machine"
    folder.mkdir()
    env = folder / ".env"
    env.write_text(f"OPENAI_API_KEY=sk-{CANARY}\n", encoding="utf-8")
    token_text = folder / "records.txt"
    token_text.write_text(f" {CANARY}\t5\n other\t0\n", encoding="utf-8")
    feature = folder / "feature.json"
    feature.write_text(
        json.dumps(
            {"explanations": [f"{CANARY} words"], "activations": [{"tokens": ["a", f" {CANARY}"], "values": [0, 5]}]}
        ),
        encoding="utf-8",
    )
    return {"env": env, "token_text": token_text, "feature": feature}


def named_paths(secrets: dict[str, Path]) -> list[str]:
    """Every way of writing the files' paths: absolute, with .., relative to the working directory, a bundled
    example by its relative path (a file the page could read without harm, yet must not open either)."""
    paths = [str(path) for path in secrets.values()]
    paths.append(str(secrets["env"].parent / ".." / secrets["env"].parent.name / ".env"))
    paths.append(os.path.relpath(secrets["feature"], Path.cwd()))
    paths.append("/etc/passwd")
    return paths


def page_text(app: AppTest) -> str:
    parts = []
    for kind in ("error", "warning", "info", "success", "markdown", "caption", "code", "text"):
        parts += [str(element.value) for element in app.get(kind)]
    parts += [str(node.proto.body) for node in app.get("html")]
    return "\n".join(parts)


def assert_nothing_read(app: AppTest, opened: list[str]) -> None:
    assert not app.exception, [element.value for element in app.exception]
    assert opened == [], opened
    shown = page_text(app)
    assert CANARY not in shown and "root:" not in shown
    assert not app.success  # nothing was loaded
    assert app.error  # and the page says why


@pytest.mark.parametrize(
    ("page", "source_key", "paste_label", "text_key"),
    [(APP, "source_kind", "Paste", "pasted_text"), (SPOT_CHECK, "spot_source", "Paste JSON", "spot_pasted")],
    ids=["score-page", "spot-check"],
)
def test_a_path_in_the_paste_box_is_never_opened(
    secrets: dict[str, Path], page: str, source_key: str, paste_label: str, text_key: str
) -> None:
    app = AppTest.from_file(page, default_timeout=60)
    app.run()
    app.radio(key=source_key).set_value(paste_label).run()
    for path in named_paths(secrets):
        with watch_reads(secrets["env"].parent) as opened:
            app.text_area(key=text_key).input(path).run()
        assert_nothing_read(app, opened)
        assert "not opened" in app.error[0].value


@pytest.mark.parametrize(
    ("page", "source_key", "upload_label"),
    [(APP, "source_kind", "Upload a file"), (SPOT_CHECK, "spot_source", "Upload a file")],
    ids=["score-page", "spot-check"],
)
def test_an_uploaded_file_holding_a_path_is_read_as_text(
    secrets: dict[str, Path], page: str, source_key: str, upload_label: str
) -> None:
    app = AppTest.from_file(page, default_timeout=60)
    app.run()
    app.radio(key=source_key).set_value(upload_label).run()
    for path in named_paths(secrets):
        with watch_reads(secrets["env"].parent) as opened:
            app.get("file_uploader")[0].set_value(("records.json", path.encode(), "application/json")).run()
        assert_nothing_read(app, opened)


def test_the_same_upload_as_content_loads(secrets: dict[str, Path]) -> None:
    """Uploads are the way to give a file: its content loads (so the tests above do fail when a path is read)."""
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.radio(key="source_kind").set_value("Upload a file").run()
    content = secrets["feature"].read_bytes()
    app.get("file_uploader")[0].set_value(("feature.json", content, "application/json")).run()
    assert not app.exception and not app.error
    assert any(re.search(r"\b1 sequence\b", str(element.value)) for element in app.success)


def test_the_explore_page_opens_only_the_packaged_sae_or_folders_under_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "package" / "sae"
    shipped.mkdir(parents=True)
    root = tmp_path / "saes"
    (root / "mine").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    monkeypatch.delenv(ui.SAE_ROOT_VARIABLE, raising=False)
    assert ui.allowed_sae_folder(str(shipped), shipped) == shipped.resolve()
    for refused in (str(root / "mine"), "/etc", str(outside), "~"):
        with pytest.raises(ScoringInputError, match=f"{ui.SAE_ROOT_VARIABLE} is unset"):
            ui.allowed_sae_folder(refused, shipped)
    monkeypatch.setenv(ui.SAE_ROOT_VARIABLE, str(root))
    assert ui.allowed_sae_folder(str(root / "mine"), shipped) == (root / "mine").resolve()
    assert ui.allowed_sae_folder("mine", shipped) == (root / "mine").resolve()  # a name under the root
    assert ui.allowed_sae_folder(str(shipped), shipped) == shipped.resolve()
    for refused in ("/etc", str(outside), str(root / "escape"), str(root / ".." / "elsewhere"), "../elsewhere"):
        with pytest.raises(ScoringInputError, match="folders under"):
            ui.allowed_sae_folder(refused, shipped)


def test_the_explore_page_checks_the_sae_folder_before_loading_it() -> None:
    """The page passes what was typed through the allow-list; loading happens only on what it returns."""
    source = (REPO / "pages" / "4_Explore.py").read_text(encoding="utf-8")
    assert "sparse_autoencoder(str(ui.allowed_sae_folder(sae_path, shipped)))" in source
    assert source.count("sparse_autoencoder(") == 2  # the cached loader's definition and that one call


class _HeaderRecorder(BaseHTTPRequestHandler):
    """Records every request's Authorization header, then answers 500 (no model needed)."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        type(self).seen.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        return


@pytest.fixture
def upstream() -> Iterator[str]:
    """An address on loopback that records the Authorization header it is sent."""
    _HeaderRecorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _authorization_sent(spec: str) -> list[str]:
    from scoring import load_records, score_explanation

    records = load_records([{"tokens": ["a", " fox"], "values": [0, 1]}])
    result = score_explanation("fox", records, simulator=ui.load_simulator(spec), cache=False)
    assert result.error  # the recorder answers 500: the call failed, after sending its headers
    return list(_HeaderRecorder.seen)


def test_an_address_typed_in_the_dashboard_never_gets_the_machines_key(
    upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser user typing their own server's address must not receive the key set where the dashboard runs."""
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", f"sk-{CANARY}")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    sent = _authorization_sent(f"openai-compatible:m@{upstream}?retries=0&timeout=5")
    assert sent and not any(CANARY in header for header in sent), sent
    # the operator's own address (OPENAI_BASE_URL) gets the operator's key
    _HeaderRecorder.seen = []
    monkeypatch.setenv("OPENAI_BASE_URL", upstream)
    sent = _authorization_sent(f"openai-compatible:mine@{upstream}?retries=0&timeout=5")
    assert sent and all(header == f"Bearer sk-{CANARY}" for header in sent), sent


@pytest.mark.parametrize(
    "kind", ["openai:gpt-4o-mini?key_env=AWS_SECRET_ACCESS_KEY", "openai-compatible:m@{url}?key_env=HOME"]
)
def test_a_spec_typed_in_the_dashboard_cannot_name_an_environment_variable_as_its_key(
    upstream: str, kind: str
) -> None:
    with pytest.raises(ScoringInputError, match="key_env"):
        ui.load_simulator(kind.format(url=upstream))
    assert _HeaderRecorder.seen == []
