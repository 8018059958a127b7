"""A virtual microphone for tests: a private PulseAudio daemon with a null sink.

What is played into the sink (``VirtualMic.play``) is heard on its monitor source,
which is the daemon's default source. A child process given ``VirtualMic.env``
reaches it through PortAudio -> ALSA -> ALSA's pulse plugin (libasound2-plugins):

- ``PULSE_SERVER``: the daemon's private unix socket (anonymous auth, no cookie).
- ``ALSA_CONFIG_PATH``: the system ``alsa.conf`` followed by our own file that makes
  ALSA's ``default`` PCM and CTL the pulse plugin.
- ``PULSE_CLIENTCONFIG``, ``PULSE_COOKIE``, ``XDG_RUNTIME_DIR``: keep the client
  (no autospawn) and whatever files it writes inside the private folder, never in
  the real home. ``HOME`` is left alone (the child may need it, e.g. for models).

PortAudio enumerates devices when ``sounddevice`` is imported, so import it only in a
child process started after the daemon is up, never in the pytest process.

The sink runs at 16 kHz mono float32 by default: a child that opens
``InputStream(samplerate=16000, channels=1)`` records what a 16 kHz mono 16-bit WAV
played into it holds, sample for sample: no resampling, no rewinds (``norewinds=1``)
and a low-latency recorder so the sink renders in real time, in 10 ms blocks.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SINK = "juno_test_sink"
ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
ASOUNDRC = "pcm.!default {\n  type pulse\n}\nctl.!default {\n  type pulse\n}\n"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0

# (what must be there, its Debian package)
_TOOLS = (
    ("pulseaudio", "pulseaudio"),
    ("pactl", "pulseaudio-utils"),
    ("pacat", "pulseaudio-utils"),
    ("paplay", "pulseaudio-utils"),
)


def _alsa_pulse_plugin() -> bool:
    pattern = "libasound_module_pcm_pulse.so"
    dirs = ("/usr/lib/*/alsa-lib", "/usr/lib/alsa-lib", "/usr/lib64/alsa-lib")
    return any(glob.glob(f"{d}/{pattern}") for d in dirs)


def _portaudio() -> bool:
    import ctypes.util

    return ctypes.util.find_library("portaudio") is not None


def require_packages() -> None:
    """Fail the test (never skip) naming the Debian package that is missing."""
    missing = [pkg for tool, pkg in _TOOLS if shutil.which(tool) is None]
    if not _alsa_pulse_plugin():
        missing.append("libasound2-plugins")
    if not ALSA_CONF.is_file():
        missing.append("libasound2")
    if not _portaudio():
        missing.append("libportaudio2")
    if missing:
        pkgs = " ".join(dict.fromkeys(missing))
        pytest.fail(
            f"virtual microphone: missing system package(s): {pkgs} "
            f"(`sudo apt-get install -y {pkgs}`, or run scripts/setup.sh)",
            pytrace=False,
        )


def _client_env(folder: Path, server: str) -> dict[str, str]:
    """Variables a PulseAudio/ALSA client needs, files kept in ``folder``."""
    asoundrc = folder / "asoundrc"
    asoundrc.write_text(ASOUNDRC)
    client_conf = folder / "client.conf"
    client_conf.write_text("autospawn = no\n")
    runtime = folder / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {
        "PULSE_SERVER": server,
        "PULSE_CLIENTCONFIG": str(client_conf),
        "PULSE_COOKIE": str(folder / "cookie"),
        "XDG_RUNTIME_DIR": str(runtime),
        "ALSA_CONFIG_PATH": f"{ALSA_CONF}:{asoundrc}",
    }


_no_device_dir: tempfile.TemporaryDirectory[str] | None = None


def no_device_env() -> dict[str, str]:
    """os.environ plus variables under which PortAudio finds no input device.

    ALSA's default PCM is the pulse plugin, as under ``VirtualMic``, but
    ``PULSE_SERVER`` names a socket nobody listens on (and autospawn is off), so
    opening it fails and ``sounddevice.InputStream()`` raises ``PortAudioError``.
    """
    global _no_device_dir
    require_packages()
    if _no_device_dir is None:
        _no_device_dir = tempfile.TemporaryDirectory(prefix="juno-no-mic-")
    folder = Path(_no_device_dir.name)
    return {**os.environ, **_client_env(folder, f"unix:{folder / 'nobody-listens'}")}


def _stop(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


class VirtualMicError(RuntimeError):
    pass


class VirtualMic:
    """Private PulseAudio daemon whose default source hears what ``play`` plays."""

    def __init__(self, rate: int = 16000, channels: int = 1) -> None:
        self.sink = SINK
        self.source = f"{SINK}.monitor"
        self.rate = rate
        self.channels = channels
        self.env: dict[str, str] = {}
        self._dir: Path | None = None
        self._daemon: subprocess.Popen | None = None
        self._recorder: subprocess.Popen | None = None
        self._players: list[subprocess.Popen] = []
        self._log: Path | None = None

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> VirtualMic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        require_packages()
        self._dir = Path(tempfile.mkdtemp(prefix="juno-mic-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        assert self._dir is not None
        socket = self._dir / "pulse.sock"
        self.env = {**os.environ, **_client_env(self._dir, f"unix:{socket}")}
        home = self._dir / "daemon-home"
        home.mkdir()
        daemon_env = {
            **self.env,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            "PULSE_RUNTIME_PATH": str(home / "runtime"),
            "PULSE_STATE_PATH": str(home / "state"),
        }
        self._log = self._dir / "pulseaudio.log"
        with open(self._log, "wb") as log:
            self._daemon = subprocess.Popen(
                [
                    "pulseaudio",
                    "-n",
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--use-pid-file=no",
                    "--system=no",
                    "--disallow-exit=no",
                    "--log-target=stderr",
                    "-L",
                    f"module-native-protocol-unix auth-anonymous=1 socket={socket}",
                    # norewinds: else a new stream's first milliseconds are mixed into
                    # audio the monitor already delivered, and are lost to recorders.
                    "-L",
                    f"module-null-sink sink_name={self.sink} rate={self.rate} "
                    f"channels={self.channels} format=float32le norewinds=1",
                ],
                env=daemon_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        self._poll(lambda: self._pactl_ok("info"), deadline, "the daemon to answer")
        self._pactl("set-default-source", self.source)
        # One recorder on the monitor keeps the null sink rendering in real time.
        self._recorder = subprocess.Popen(
            [
                "pacat",
                "-r",
                f"--device={self.source}",
                "--format=float32le",
                f"--rate={self.rate}",
                f"--channels={self.channels}",
                # Ask for low latency: else the null sink renders 2 s blocks at once.
                "--latency-msec=10",
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._poll(self._recorder_attached, deadline, "the recorder to attach")

    def stop(self) -> None:
        for proc in self._players:
            _stop(proc)
        self._players.clear()
        if self._recorder is not None:
            _stop(self._recorder)
            self._recorder = None
        if self._daemon is not None:
            if self._daemon.poll() is None:
                try:
                    self._pactl("exit")
                    self._daemon.wait(timeout=STOP_TIMEOUT_S)
                except (VirtualMicError, subprocess.TimeoutExpired):
                    pass
            _stop(self._daemon)
            self._daemon = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- use ---------------------------------------------------------------------

    def play(
        self, path: str | Path, wait: bool = True, timeout: float = 60.0
    ) -> subprocess.Popen | None:
        """Play an audio file into the sink (so into the microphone).

        ``wait=True`` returns when playback ends (fails after ``timeout`` s);
        ``wait=False`` returns the running ``paplay``, stopped at teardown at the latest.
        """
        if self._daemon is None:
            raise VirtualMicError("virtual microphone not started")
        proc = subprocess.Popen(
            ["paplay", f"--device={self.sink}", str(path)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait:
            self._players.append(proc)
            return proc
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=STOP_TIMEOUT_S)
            raise VirtualMicError(f"paplay {path}: still playing after {timeout} s") from None
        if proc.returncode != 0:
            raise VirtualMicError(f"paplay {path} failed: {err.decode(errors='replace')}")
        return None

    # -- helpers -----------------------------------------------------------------

    def _run_pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["pactl", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=STOP_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise VirtualMicError(f"pactl {' '.join(args)}: no answer") from None

    def _pactl_ok(self, *args: str) -> bool:
        try:
            return self._run_pactl(*args).returncode == 0
        except VirtualMicError:
            return False

    def _pactl(self, *args: str) -> str:
        res = self._run_pactl(*args)
        if res.returncode != 0:
            raise VirtualMicError(f"pactl {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def _recorder_attached(self) -> bool:
        assert self._recorder is not None
        if self._recorder.poll() is not None:
            raise VirtualMicError(f"pacat recorder exited ({self._recorder.returncode})")
        return bool(self._pactl("list", "short", "source-outputs").strip())

    def _poll(self, check, deadline: float, what: str) -> None:
        while True:
            if self._daemon is not None and self._daemon.poll() is not None:
                raise VirtualMicError(
                    f"pulseaudio exited ({self._daemon.returncode}):\n{self._log_tail()}"
                )
            if check():
                return
            if time.monotonic() > deadline:
                raise VirtualMicError(
                    f"timed out waiting for {what} after {START_TIMEOUT_S} s:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self) -> str:
        if self._log is None:
            return "(no log)"
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"
