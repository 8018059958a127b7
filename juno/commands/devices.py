"""``juno devices``: the microphones ``juno run --device`` can use."""

from __future__ import annotations

import argparse

from juno.config import Config


def configure(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, cfg: Config) -> int:
    from juno.sources import input_devices

    devices = input_devices()
    if not devices:
        print("no audio input devices")
        return 1
    for d in devices:
        mark = "*" if d["default"] else " "
        rate = d["sample_rate_hz"]
        print(f"{mark} {d['index']:>3}  {d['name']}  ({d['channels']} ch, {rate} Hz)")
    return 0
