"""The plugin runtime that runs inside a web-python plugin's worker (and, later, the engine).

`api` is what plugins use: a global in a plugin's scripts, as in ImJoy, or imported
(`from imjoy import api`); `kernel` is the worker's side of its
connection to the page: it runs code, loads packages and loads plugins.
"""
