"""The engine: `pyjoy engine`, native-python plugins in processes of their own, for pages that
connect over one WebSocket. ENGINE.md (beside this file) is the contract; server.py the
endpoint, processes.py the plugin processes, plugin_process.py a plugin's own side, envs.py
their environments, plugin_file.py the reading of a plugin's source, wire.py and mux.py
the frames, client.py a Python client.

This package's __init__ imports nothing: a plugin process imports pyjoy.engine too, and
must not pay for aiohttp.
"""
