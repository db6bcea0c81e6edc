"""Runs one worker handler inside its sandbox (`gatehouse worker --isolate`):
`python -I job_runner.py [--check] ROOT... -- package.module:function`.

Standard library only, and read by path: nothing of Gatehouse is importable inside, only the
handler's own module or package (bound read-only; its directory is a ROOT put first on
`sys.path`) and what the Python installation has. It reads the job (JSON) on stdin, calls the
handler with it and writes one JSON object on stdout: `{"output": ...}`, or `{"error": "Type:
message", "traceback": "..."}` when the handler raised. The handler's own prints go to stderr
(the worker's log), so they cannot forge that answer. `--check` only imports the handler and
answers `{"ok": true}`: the worker does this once at start, so a handler that cannot load is a
start-up error, as it is unisolated.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def _load(spec: str) -> object:
    module_name, _, attr = spec.partition(":")
    fn = getattr(importlib.import_module(module_name), attr)
    if not callable(fn):
        raise TypeError(f"handler `{spec}` is not callable")
    return fn


def main(argv: list[str]) -> int:
    if "--" not in argv:
        sys.stderr.write("usage: job_runner.py [--check] ROOT... -- module:function\n")
        return 2
    split = argv.index("--")
    check = "--check" in argv[:split]
    roots = [a for a in argv[:split] if a != "--check"]
    spec = argv[split + 1]
    sys.path[:0] = roots
    # The answer goes to the real stdout alone; whatever the handler prints goes to stderr.
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        fn = _load(spec)
        if check:
            result: dict[str, object] = {"ok": True}
        else:
            job = json.loads(sys.stdin.read())
            result = {"output": fn(job)}  # type: ignore[operator]
        text = json.dumps(result)
    except BaseException as exc:  # the handler's failure, whatever it is, is the answer
        text = json.dumps(
            {"error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()[-20000:]}
        )
    answer.write(text)
    answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
