"""The `api` object a plugin imports: `from imjoy import api` or `from pyjoy import api`.

Its attributes are the host's API (`await api.showMessage("hi")`, `api.log(...)`), called
over the plugin's RPC session; `api.export(obj)` is local: it names what the plugin offers.
ImJoy's Python plugins may spell host functions in snake_case (`api.show_message`); both
spellings reach the same function.
"""

from __future__ import annotations

from typing import Any


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class PluginAPI:
    def __init__(self) -> None:
        self._host: Any = None
        self._session: Any = None
        self._exported: Any = None

    def export(self, obj: Any, config: dict | None = None) -> None:
        """Offers obj (an object or class instance with methods) as the plugin's API."""
        self._exported = obj

    def registerCodec(self, codec: dict) -> None:  # noqa: N802  ImJoy's name
        """Adds a custom wire form, {name, type, encoder, decoder}, to this plugin's side."""
        from pyjoy.rpc.codec import register_codec

        register_codec(codec["name"], codec.get("type"), codec.get("encoder"), codec.get("decoder"))

    register_codec = registerCodec

    def disposeObject(self, value: Any) -> None:  # noqa: N802  ImJoy's name
        """Releases remote functions held in value now, instead of when they are collected."""
        self._session.dispose(value)

    dispose_object = disposeObject

    def _connect(self, host: Any, session: Any) -> None:
        self._host = host
        self._session = session
        self._exported = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        host = self.__dict__.get("_host")
        if host is None:
            raise RuntimeError(f"api.{name} was used before the plugin was connected to PyJoy")
        for key in (name, camel_case(name)):
            if key in host:
                return host[key]
        raise AttributeError(f"the PyJoy API has no {name!r}")

    def __dir__(self) -> list[str]:
        host = self.__dict__.get("_host")
        return ["export", *(host.keys() if host is not None else [])]


api = PluginAPI()
