"""The engine's files (pyjoy/engine/files.py; ENGINE.md, "Files"): ImJoy's file URLs, upload
URLs, listings and removal, against a real `pyjoy engine` on 127.0.0.1, over its socket
(engine.files) and its HTTP server, with aiohttp as the browser would fetch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aiohttp
import pytest

from pyjoy.devtools import engine_running, run_async
from pyjoy.engine.client import EngineClient
from pyjoy.rpc import RemoteError

TOKEN = "files-" + "t" * 40

WRITER = """<config lang="json">{"name": "File Writer", "type": "native-python", "version": "0.1.0"}</config>
<script lang="python">
import os
from imjoy import api

class Writer:
    def setup(self):
        pass

    def write(self, name, text):
        with open(name, "w") as out:   # its current directory: its own folder (api.WORK_DIR)
            out.write(text)
        return os.path.abspath(name)

api.export(Writer())
</script>
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("files")
    with engine_running(root / "work", env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, process):
        yield {"url": url, "http": "http://" + url.split("//", 1)[1].split("/", 1)[0], "workdir": (root / "work").resolve()}


def test_a_plugins_file_gets_a_url_that_serves_its_bytes_and_nothing_else(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"])
        writer = await client.load_plugin(WRITER)
        written = Path(await writer.api.write("result.txt", "hello from the engine"))
        assert written.parent.parent == engine["workdir"] / "plugins"  # its own folder
        url = await client.engine.files("url", {"path": "result.txt"}, writer.id)  # relative to its folder
        assert url.startswith("/file/") and url.endswith("/result.txt")
        assert await client.engine.files("url", {"path": str(written)}) == url  # the same path, the same URL
        async with aiohttp.ClientSession() as http:
            async with http.get(engine["http"] + url, headers={"Origin": "null"}) as response:  # a sandboxed frame
                assert response.status == 200 and await response.text() == "hello from the engine"
                assert response.headers["Access-Control-Allow-Origin"] == "*"
                assert response.headers["Content-Security-Policy"] == "sandbox"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            # A guessed key, another name under a real key, a way out of it: refused.
            key = url.split("/")[2]
            for wrong in ["/file/" + "A" * 43 + "/result.txt", f"/file/{key}/other.txt", f"/file/{key}/result.txt/../../x"]:
                async with http.get(engine["http"] + wrong) as response:
                    assert response.status in (403, 404), (wrong, response.status)
        assert await client.engine.files("path", {"url": engine["http"] + url}) == str(written)
        await client.close()

    run_async(scenario())


def test_paths_outside_the_file_area_are_refused_by_name(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"])
        (engine["workdir"] / "runtime").mkdir(exist_ok=True)
        for path in ["/etc/passwd", "../runtime", str(engine["workdir"] / "envs"), "../../..", ""]:
            with pytest.raises(RemoteError, match="outside the engine's file area|non-empty string") as caught:
                await client.engine.files("url", {"path": path})
            assert "files:" in str(caught.value)
        # A link inside the area that points out of it is out of it.
        os.symlink("/etc", engine["workdir"] / "files" / "etc-link")
        with pytest.raises(RemoteError, match="outside the engine's file area"):
            await client.engine.files("url", {"path": "etc-link/hostname"})
        with pytest.raises(RemoteError, match="unknown operation"):
            await client.engine.files("format_disk", {})
        with pytest.raises(RemoteError, match="no file or folder"):
            await client.engine.files("url", {"path": "missing.png"})
        await client.close()

    run_async(scenario())


def test_an_upload_url_takes_one_file_once_and_keeps_what_exists(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"])
        data = os.urandom(3 * 2**20 + 17)  # several chunks
        url = await client.engine.files("upload_url", {"path": "data/in.bin"})
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("file", data, filename="ignored.bin", content_type="application/octet-stream")
            async with http.post(engine["http"] + url, data=form, headers={"Origin": "null"}) as response:
                assert response.status == 200, await response.text()
                saved = await response.json()
            target = engine["workdir"] / "files" / "data" / "in.bin"
            assert saved == {"path": str(target), "name": "in.bin", "size": len(data)}
            assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
            async with http.post(engine["http"] + url, data=b"again") as response:  # used
                assert response.status == 403
            # Without overwrite an existing file is refused when asked, and kept.
            with pytest.raises(RemoteError, match="exists on the engine"):
                await client.engine.files("upload_url", {"path": "data/in.bin"})
            # Into a folder under the file's own name (raw body, ?name=), then replaced with overwrite.
            folder_url = await client.engine.files("upload_url", {"dir": "data"})
            async with http.put(engine["http"] + folder_url + "?name=../../evil.txt", data=b"plain") as response:
                assert response.status == 200
                assert (await response.json())["path"] == str(engine["workdir"] / "files" / "data" / "evil.txt")
            replace = await client.engine.files("upload_url", {"path": "data/in.bin", "overwrite": True})
            async with http.put(engine["http"] + replace, data=b"new") as response:
                assert response.status == 200
            assert target.read_bytes() == b"new"
            # A folder's URL lists it, and serves what is inside it.
            folder = await client.engine.files("url", {"path": "data"})
            async with http.get(engine["http"] + folder) as response:
                names = sorted(entry["name"] for entry in await response.json())
            assert names == sorted(os.listdir(target.parent))
            async with http.get(engine["http"] + folder + "/evil.txt") as response:
                assert await response.read() == b"plain"
        listing = await client.engine.files("list", {"path": "data", "type": "file"})
        assert {child["name"]: child["size"] for child in listing["children"]} == {"evil.txt": 5, "in.bin": 3}
        assert await client.engine.files("remove", {"path": "data/evil.txt", "type": "file"}) is True
        assert not (target.parent / "evil.txt").exists()
        with pytest.raises(RemoteError, match="root of the engine's file area"):
            await client.engine.files("remove", {"path": ".", "type": "dir", "recursive": True})
        await client.close()

    run_async(scenario())
