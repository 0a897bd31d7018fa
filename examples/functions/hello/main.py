"""The "hello" example Sluice function: input ``{"name": "x"}`` -> ``{"hello": "x"}``.

Uses the one-file helper ``sdk/python/sluice_function.py`` (found through PYTHONPATH, which
function.json sets). A missing or non-string name is a handler error (500).
"""

from sluice_function import serve


def handler(event):
    name = event.get("name", "world") if isinstance(event, dict) else None
    if not isinstance(name, str):
        raise ValueError('input must be {"name": "<string>"}')
    return {"hello": name}


if __name__ == "__main__":
    serve(handler)
