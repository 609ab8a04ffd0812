"""The engine's files from the page (ENGINE.md, "Files"; app/plugins/host-api.js fileCalls):
ImJoy's api.getFileUrl / requestUploadUrl / getFileManager in real Chromium against a real
`pyjoy engine`. A native-python plugin links its own files unasked; a plugin in the browser
is asked about first, and uploads from its sandboxed frame."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from pyjoy.devtools import engine_running
from test_engine_browser import load, open_connected, plugin

TOKEN = "files-browser-token-" + "z" * 30

PRODUCER = plugin("Producer", '''
import os

class Producer:
    def setup(self):
        pass

    def make(self, size):
        data = os.urandom(size)
        with open("result.bin", "wb") as out:   # its own folder (api.WORK_DIR)
            out.write(data)
        return os.path.abspath("result.bin")

    async def link(self):
        return await api.getFileUrl({"path": "result.bin"})   # ImJoy's form, relative to its folder

    async def listed(self):
        manager = await api.getFileManager(api.FILE_MANAGER_URL)
        listing = await manager.listFiles()
        return [child["name"] for child in listing["children"]]

api.export(Producer())
''')

UPLOADER = plugin("Uploader", '''
api.export({
  async upload(text, path) {
    const url = await api.requestUploadUrl({path, overwrite: true});
    const form = new FormData();
    form.append("file", new Blob([text]), "note.txt");
    const response = await fetch(url, {method: "POST", body: form});   // from its sandboxed frame
    return {status: response.status, body: await response.json(), origin: location.origin};
  },
  async put(text, path) {
    const manager = await api.getFileManager();
    return manager.putFile(new File([text], "put.txt"), path);
  },
  async read(path) {
    const url = await api.getFileUrl({path});
    return (await fetch(url)).text();
  },
});
''', kind="window", lang="javascript")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    workdir = tmp_path_factory.mktemp("engine-files")
    with engine_running(workdir / "work", "--app", base_url, env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, process):
        yield {"url": url, "workdir": (workdir / "work").resolve()}


def test_a_native_plugin_links_its_own_file_and_the_page_downloads_its_bytes(page: Page, base_url: str,
                                                                             engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, PRODUCER) == "ok"
    written = Path(page.evaluate("pyjoy.getPlugin('Producer').then((p) => p.make(200000))"))
    url = page.evaluate("pyjoy.getPlugin('Producer').then((p) => p.link())")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/result.bin") and TOKEN not in url
    fetched = page.evaluate("""async (url) => {
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
    }""", url)
    assert bytes(fetched) == hashlib.sha256(written.read_bytes()).digest()
    assert page.evaluate("pyjoy.getPlugin('Producer').then((p) => p.listed())") == sorted(os.listdir(written.parent))
    expect(page.locator("dialog", has_text="wants to use files")).to_have_count(0)  # its own engine: not asked


def test_a_browser_plugin_uploads_only_once_the_person_allows_it(page: Page, base_url: str, engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, UPLOADER) == "ok"
    files = engine["workdir"] / "files"
    # Refused: the call fails and nothing is written.
    page.evaluate("() => { window.first = pyjoy.getPlugin('Uploader').then((p) => p.upload('no', 'refused.txt')).catch((e) => e.message); }")
    ask = page.locator("dialog", has_text="Uploader wants to use files on the engine")
    expect(ask).to_be_visible()
    ask.get_by_role("button", name="Cancel").click()
    assert "said no" in page.evaluate("window.first")
    assert not (files / "refused.txt").exists()
    # Allowed: its frame (an opaque origin) posts the file to the URL it was given.
    page.evaluate("() => { window.second = pyjoy.getPlugin('Uploader').then((p) => p.upload('hello engine', 'notes/a.txt')); }")
    ask.get_by_role("button", name="Allow").click()
    uploaded = page.evaluate("window.second")
    assert uploaded["status"] == 200 and uploaded["origin"] == "null", uploaded
    assert (files / "notes" / "a.txt").read_text() == "hello engine"
    assert uploaded["body"]["path"] == str(files / "notes" / "a.txt")
    # Asked once per engine: the file manager's putFile and a download now go unasked.
    put = page.evaluate("pyjoy.getPlugin('Uploader').then((p) => p.put('put by the manager', 'notes/b.txt'))")
    assert put["size"] == len("put by the manager") and (files / "notes" / "b.txt").read_text() == "put by the manager"
    assert page.evaluate("pyjoy.getPlugin('Uploader').then((p) => p.read('notes/a.txt'))") == "hello engine"
    # Outside the file area: refused by name, nothing read.
    outside = page.evaluate("pyjoy.getPlugin('Uploader').then((p) => p.read('/etc/hostname')).catch((e) => e.message)")
    assert "outside the engine's file area" in outside
