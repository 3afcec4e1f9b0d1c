"""Catalog downloads against a real HTTP server on 127.0.0.1: resume, checksums, safe unzip."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import marl_augment as ma
from marl_augment.catalog import cards, download, scenario_cards
from marl_augment.cli import app
from marl_augment.data.synthetic import smac_like_dataset
from marl_augment.download import DownloadError, fetch, safe_extract
from marl_augment.errors import FormatError, NotFound

pytest.importorskip("tensorstore")


class Server:
    """Serves bytes from memory with HTTP Range support; can cut the first response short."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_first_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                data = outer.files.get(self.path)
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_first_after is not None:
                    cut, outer.cut_first_after = outer.cut_first_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # drop the connection mid-transfer
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def scenario_zip(tmp_path_factory) -> bytes:
    """An OG-MARL-style archive: 3m.vlt/{Good,Medium,Poor}, written by our exporter."""
    from marl_augment.adapters.ogmarl_vault import export_vault

    d = tmp_path_factory.mktemp("zip")
    for i, uid in enumerate(("Good", "Medium", "Poor")):
        ds = smac_like_dataset(30 + 10 * i, d / f"{uid}.zarr", seed=i, skill=1.0 - 0.4 * i)
        export_vault(ds, d / "3m.vlt", uid=uid)
    path = d / "3m.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((d / "3m.vlt").rglob("*")):
            zf.write(p, Path("3m.vlt") / p.relative_to(d / "3m.vlt"))
    return path.read_bytes()


def test_catalog_cards():
    c = cards()
    assert len([i for i in c if i.startswith("og-marl/smac_v1/")]) == 15
    three = c["og-marl/smac_v1/3m/Medium"]
    assert (three["agents"], three["obs_dim"], three["state_dim"], three["n_actions"]) == (
        3,
        30,
        48,
        9,
    )
    assert three["url"].endswith("/core/smac_v1/3m.zip")
    assert three["published"]["episodes"] == 41619 and three["published"]["return_mean"] == 9.96
    assert all(
        card["published"]["transitions"] > 900_000
        for i, card in c.items()
        if i.startswith("og-marl/")
    )
    assert [x["uid"] for x in scenario_cards("og-marl/smac_v1/8m")] == ["Good", "Medium", "Poor"]
    with pytest.raises(NotFound, match="Did you mean 'og-marl/smac_v1/3m'"):
        scenario_cards("og-marl/smac_v1/3mm")


def test_download_convert_and_list(scenario_zip):
    with Server() as srv:
        srv.files["/3m.zip"] = scenario_zip
        r = CliRunner().invoke(
            app,
            [
                "datasets",
                "download",
                "og-marl/smac_v1/3m",
                "--url",
                srv.url("3m.zip"),
                "--sha256",
                hashlib.sha256(scenario_zip).hexdigest(),
            ],
        )
        assert r.exit_code == 0, r.output
    for uid, n in (("Good", 30), ("Medium", 40), ("Poor", 50)):
        ds = ma.load(f"og-marl/smac_v1/3m/{uid}")
        assert len(ds) == n and ds.spec.env_id == "smac:3m"  # the card names the env
        assert ds.source["catalog_id"] == f"og-marl/smac_v1/3m/{uid}"
    listing = json.loads(CliRunner().invoke(app, ["datasets", "list", "--json"]).output)
    local = {c["id"] for c in listing["catalog"] if c["local"]}
    assert local == {f"og-marl/smac_v1/3m/{u}" for u in ("Good", "Medium", "Poor")}
    # a second call reuses what exists: no new request
    with Server() as srv:
        again = download("og-marl/smac_v1/3m", url=srv.url("3m.zip"))
        assert len(again) == 3 and srv.requests == []


def test_interrupted_transfer_resumes(scenario_zip, tmp_path):
    with Server() as srv:
        srv.files["/3m.zip"] = scenario_zip
        srv.cut_first_after = len(scenario_zip) // 3
        got = fetch(
            srv.url("3m.zip"), tmp_path / "3m.zip", sha256=hashlib.sha256(scenario_zip).hexdigest()
        )
        assert got.read_bytes() == scenario_zip
        assert (
            srv.requests[0][1] is None and srv.requests[1][1] == f"bytes={len(scenario_zip) // 3}-"
        )


def test_interrupted_download_resumes_on_the_next_call(scenario_zip, tmp_path):
    dest = tmp_path / "3m.zip"
    with Server() as srv:
        srv.files["/3m.zip"] = scenario_zip
        srv.cut_first_after = 1000
        with pytest.raises(
            DownloadError, match="run the same command again to resume from 1000 bytes"
        ):
            fetch(srv.url("3m.zip"), dest, retries=0)
        assert (tmp_path / "3m.zip.part").stat().st_size == 1000 and not dest.exists()
        fetch(srv.url("3m.zip"), dest)
        assert dest.read_bytes() == scenario_zip and srv.requests[-1][1] == "bytes=1000-"


def test_corrupted_downloads_are_refused(scenario_zip, tmp_path):
    with Server() as srv:
        srv.files["/3m.zip"] = scenario_zip
        with pytest.raises(DownloadError, match="corrupted"):
            fetch(srv.url("3m.zip"), tmp_path / "a.zip", sha256="0" * 64)
        assert not (tmp_path / "a.zip").exists() and not (tmp_path / "a.zip.part").exists()
        broken = bytearray(scenario_zip)
        mid = len(broken) // 2
        broken[mid : mid + 64] = bytes(64)
        srv.files["/broken.zip"] = bytes(broken)
        r = CliRunner().invoke(
            app, ["datasets", "download", "og-marl/smac_v1/3m", "--url", srv.url("broken.zip")]
        )
        assert r.exit_code == 2, r.output
        assert "error:" in r.output and (
            "CRC" in r.output or "corrupted" in r.output or "not a valid zip" in r.output
        )
        with pytest.raises(DownloadError, match="HTTP 404"):
            fetch(srv.url("missing.zip"), tmp_path / "m.zip")
    assert (
        not list((Path(os.environ["MARL_AUGMENT_HOME"]) / "datasets").glob("*.zarr"))
        if (Path(os.environ["MARL_AUGMENT_HOME"]) / "datasets").exists()
        else True
    )


@pytest.mark.parametrize("where", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_damaged_archives_are_refused(scenario_zip, tmp_path, where):
    """Wherever the damage lands (headers, deflated data), one FormatError, nothing extracted."""
    broken = bytearray(scenario_zip)
    at = int(len(broken) * where)
    broken[at : at + 64] = bytes(64)
    path = tmp_path / "b.zip"
    path.write_bytes(bytes(broken))
    with pytest.raises(FormatError):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unsafe_archives_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("3m.vlt/ok.txt", "fine")
        zf.writestr("../escape.txt", "outside")
    with pytest.raises(FormatError, match="outside the target folder"):
        safe_extract(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()
    absolute = tmp_path / "abs.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr("/etc/evil.txt", "x")
    with pytest.raises(FormatError, match="outside the target folder"):
        safe_extract(absolute, tmp_path / "out")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("3m.vlt/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(FormatError, match="link or special file"):
        safe_extract(link, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_zip_bombs_and_oversized_archives_are_refused(tmp_path, monkeypatch):
    """Size, member count and compression ratio are checked before anything is unpacked."""
    import marl_augment.download as dl

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("3m.vlt/zeros.bin", bytes(80 << 20))
    assert bomb.stat().st_size < (1 << 20)
    with pytest.raises(FormatError, match="zip bomb"):
        safe_extract(bomb, tmp_path / "out")
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(5):
            zf.writestr(f"3m.vlt/{i}.txt", "x")
    monkeypatch.setattr(dl, "MAX_MEMBERS", 4)
    with pytest.raises(FormatError, match="MARL_AUGMENT_MAX_MEMBERS"):
        safe_extract(many, tmp_path / "out")
    monkeypatch.setattr(dl, "MAX_MEMBERS", 100)
    with pytest.raises(FormatError, match="unpacks to 5 bytes, more than the limit 4;"):
        safe_extract(many, tmp_path / "out", max_bytes=4)
    assert safe_extract(many, tmp_path / "out", max_bytes=5)
    assert not list(tmp_path.glob(".out.partial-*"))
