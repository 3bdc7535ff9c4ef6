"""Run a service under pyinstrument: what `solidarity bench --profile NAME` starts instead.

`python -m solidarity.shared.bench.profiled` runs the module named in
SOLIDARITY_BENCH_PROFILE_TARGET as `__main__`, sampling every millisecond, and when it exits
(SIGTERM stops uvicorn cleanly) writes the profile next to SOLIDARITY_BENCH_PROFILE_OUTPUT as
`.txt` (pyinstrument's call tree), `.html` and `-flat.txt` (busy time by package and function,
`profiles.summarise`); with SOLIDARITY_BENCH_PROFILE_KEEP_SESSION set, also the raw
`.pyisession` (hundreds of MB; open with `pyinstrument --load FILE`).
"""

from __future__ import annotations

import os
import runpy
import signal
from pathlib import Path
from types import FrameType

from solidarity.shared.bench.profiles import (
    ENV_PROFILE_KEEP_SESSION,
    ENV_PROFILE_OUTPUT,
    ENV_PROFILE_TARGET,
    summarise_session,
)


def main() -> None:
    from pyinstrument import Profiler  # a development dependency

    target = os.environ.pop(ENV_PROFILE_TARGET)
    output = Path(os.environ.pop(ENV_PROFILE_OUTPUT))
    # uvicorn shuts down cleanly on SIGTERM, then raises the signal again with the handler it
    # found: make that an exit, so that the profile below gets written.
    signal.signal(signal.SIGTERM, _exit)
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    finally:
        session = profiler.stop()
        output.parent.mkdir(parents=True, exist_ok=True)
        output.with_suffix(".txt").write_text(profiler.output_text(unicode=True, color=False))
        output.with_suffix(".html").write_text(profiler.output_html())
        Path(f"{output}-flat.txt").write_text(summarise_session(session, top=40))
        if os.environ.get(ENV_PROFILE_KEEP_SESSION):
            session.save(str(output.with_suffix(".pyisession")))


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
