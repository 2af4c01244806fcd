"""Weights & Biases tracking of one training run.

Why ~350 lines: online/offline fallback, secret scrubbing and the wandb service's quirks are one
concern: what reaches W&B.

`Tracker` wraps one W&B run: offline by default, everything under one folder, quiet on the
console, and always finished (also when training raises). Online mode degrades to offline
when the server cannot be reached or no credentials are configured, so a sweep never loses
its local record and never waits minutes on the network. `check_logger` runs before any data
is read, and `scrub` keeps secrets out of everything sent to W&B.
"""

from __future__ import annotations

import hashlib

import os
import re
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

from sweep.config import LoggerConfig

MODES = ("offline", "online", "disabled")
REDACTED = "<redacted>"

PROBE_TIMEOUT_S = 3.0
"""TCP connect timeout when checking that the W&B server is reachable."""
INIT_TIMEOUT_S = 30.0
"""Give up on an online `wandb.init` after this long and fall back to offline."""
FINISH_TIMEOUT_S = 120.0
"""Stop waiting for uploads at the end of an online run; the data stays on disk for `wandb sync`."""
FLUSH_TIMEOUT_S = 10.0
"""Longest wait, after finish, for wandb-core to write the run's log to disk."""
DEFAULT_BASE_URL = "https://api.wandb.ai"

# Cheap, quiet runs. Requirements capture (a pip freeze per run) is ~0.2 s of each init;
# code saving copies the script; system metrics spawn a sampler that competes with training
# for CPU and adds nothing to a scaling-law fit.
_FAST_SETTINGS = dict(
    silent=True,
    console="off",
    save_code=False,
    disable_code=True,
    disable_job_creation=True,
    x_save_requirements=False,
    x_disable_stats=True,
)


def wandb_id(sweep_name: str, run_id: str) -> str:
    """The W&B run id of a run of a sweep: run_id plus a short hash of the sweep name.

    run_id hashes what changes the result, not the sweep it belongs to, so the same run config in two
    sweeps of one project would otherwise share one W&B run and the second would resume the first."""
    return f"{run_id}-{hashlib.sha256(sweep_name.encode()).hexdigest()[:6]}"


class TrackingFallbackWarning(UserWarning):
    """Online W&B was requested but the run is being recorded offline instead."""


# --- secrets -------------------------------------------------------------------------------

_SECRET_WORDS = frozenset({
    "secret", "secrets", "password", "passwd", "passphrase", "auth", "authorization",
    "credential", "credentials", "apikey", "token", "cookie", "bearer", "privatekey",
})
_SECRET_PAIRS = frozenset({
    ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("session", "key"),
})
_SECRET_ENV_NAME = re.compile(r"(?:^|_)(?:TOKEN|KEY|APIKEY|SECRET|PASSWORD|PASSWD)$")
_MIN_SECRET_LEN = 8
"""Shorter env values ('1', 'true') are flags, not secrets, and would mangle unrelated strings."""


def _words(name: str) -> list[str]:
    # Whole words of snake_case, kebab-case, dotted and camelCase names, so that
    # `n_tokens` or `tokens_per_param` never match the word `token`.
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


def looks_secret(name: str) -> bool:
    """Whether a config key or env var name looks like it holds a credential."""
    words = _words(name)
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def secret_env_values(environ: Optional[dict] = None) -> list[str]:
    """Values of env vars named like secrets (WANDB_API_KEY, HF_TOKEN, *_TOKEN, *_KEY, ...), longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items()
              if (_SECRET_ENV_NAME.search(k.upper()) or looks_secret(k)) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if _mask_key(k, v) else _scrub_value(v, secrets)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub_value(v, secrets) for v in value)
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, REDACTED)
    return value


def _mask_key(key: Any, value: Any) -> bool:
    # Flags such as `use_auth: true` and unset fields carry no secret.
    return isinstance(key, str) and looks_secret(key) and value is not None and not isinstance(value, bool)


def scrub(config: dict, environ: Optional[dict] = None) -> dict:
    """A copy of `config` with secret-named keys masked and secret env values cut out of every string."""
    return _scrub_value(config, secret_env_values(environ))


def _argv_has_secret(argv: list[str], secrets: list[str]) -> bool:
    for arg in argv:
        if any(s in arg for s in secrets):
            return True
        name = arg.split("=", 1)[0].lstrip("+-~") if "=" in arg else ""
        if name and looks_secret(name.rsplit(".", 1)[-1]):
            return True
    return False


# --- checks --------------------------------------------------------------------------------

def resolve_dir(logger: LoggerConfig, dir: Path) -> Path:
    """Folder that receives W&B files: logger.dir when set, else the trainer's `dir`."""
    return Path(logger.dir).expanduser() if logger.dir else Path(dir)


def check_logger(logger: LoggerConfig, dir: Path) -> None:
    """Raise ValueError before training if W&B could not write its files."""
    if logger.mode not in MODES:
        raise ValueError(f"logger.mode={logger.mode!r}: must be one of {', '.join(MODES)}")
    if logger.mode == "disabled":
        return
    root = resolve_dir(logger, dir)
    target = root / "wandb"
    try:
        target.mkdir(parents=True, exist_ok=True)
        # mkdir succeeding proves little (root ignores permissions, a folder may exist read-only):
        # writing a file is what W&B will do.
        with tempfile.NamedTemporaryFile(dir=target, prefix=".write-check-"):
            pass
    except OSError as e:
        where = f"logger.dir={logger.dir!r}" if logger.dir else f"logger.dir=None (defaults to {str(dir)!r})"
        raise ValueError(
            f"{where}: W&B cannot write to {target} ({e.strerror or e}). "
            f"Set logger.dir to a writable folder, or logger.mode=disabled to train without W&B."
        ) from e


# --- online reachability -------------------------------------------------------------------

def _base_url() -> str:
    try:
        # The settings wandb.init would use (env vars and settings files), without starting anything.
        from wandb.sdk import wandb_setup

        return str(wandb_setup.singleton().settings.base_url)
    except Exception:
        return os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)


def _reachable(url: str, timeout: float) -> Optional[str]:
    """None if a TCP connection to the URL's host opens within `timeout`, else the reason."""
    parsed = urlparse(url)
    if not parsed.hostname:
        return f"invalid base URL {url!r}"
    proxy = getproxies().get(parsed.scheme)
    if proxy and not proxy_bypass(parsed.hostname):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")  # behind a proxy: probe it
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return None
    except OSError as e:
        return f"cannot connect to {parsed.hostname}:{port} ({e.strerror or e})"


def _credentials_problem(url: str) -> Optional[str]:
    # Without credentials wandb.init prompts on a terminal; look them up without prompting.
    try:
        from wandb.sdk.lib import wbauth
    except ImportError:
        return None  # a wandb without this helper: let wandb.init decide (it raises without a tty)
    try:
        if wbauth.authenticate_session(host=url, source="sweep", prompt=False) is None:
            return f"no W&B credentials for {url} (run `wandb login` or set WANDB_API_KEY)"
    except Exception as e:  # malformed key, conflicting env vars, ...
        return f"{type(e).__name__}: {e}"
    return None


def _online_problem() -> Optional[str]:
    url = _base_url()
    return _reachable(url, PROBE_TIMEOUT_S) or _credentials_problem(url)


def _restart_wandb_service() -> None:
    import wandb

    try:
        wandb.teardown()
    except (Exception, SystemExit) as e:  # teardown may sys.exit with the service's exit code
        warnings.warn(f"W&B service teardown failed: {e!r}", RuntimeWarning)


def _wait_for_exit_record(log: Path, timeout: float) -> None:
    # wandb 0.31 returns from run.finish() before wandb-core has flushed the run's log
    # (it can still be the bare 7-byte header); wait so callers can read the run at once.
    from sweep.store.wandb_offline import OfflineRunError, last_record_type

    deadline = time.monotonic() + timeout
    while True:
        try:
            if log.is_file() and last_record_type(log) == "exit":
                return
        except OfflineRunError:
            pass  # caught mid-write; look again
        if time.monotonic() > deadline:
            warnings.warn(f"W&B run log {log} still incomplete {timeout:.0f} s after finish", RuntimeWarning)
            return
        time.sleep(0.01)


# --- the tracker ---------------------------------------------------------------------------

class Tracker:
    """One W&B run; a context manager that always finishes the run, also on errors."""

    def __init__(self, logger: LoggerConfig, *, run_id: str, name: str, group: str,
                 job_type: str = "train", config: dict, dir: Path, tags: Iterable[str] = ()):
        if logger.mode not in MODES:
            raise ValueError(f"logger.mode={logger.mode!r}: must be one of {', '.join(MODES)}")
        self.mode = logger.mode
        """Mode actually used: 'offline' after a fallback from 'online'."""
        self._run = None
        self._finished = False
        if self.mode == "disabled":
            return

        import wandb

        secrets = secret_env_values()
        root = resolve_dir(logger, dir)
        root.mkdir(parents=True, exist_ok=True)
        init = dict(
            project=logger.project, entity=logger.entity, id=run_id, resume="allow",
            name=_scrub_value(name, secrets), group=_scrub_value(group, secrets), job_type=job_type,
            tags=[_scrub_value(t, secrets) for t in dict.fromkeys([*logger.tags, *tags])],
            config=scrub(config), dir=str(root),
        )
        # The run metadata records sys.argv; drop it when a secret was passed on the command line.
        settings = dict(_FAST_SETTINGS, reinit="create_new",
                        x_disable_meta=_argv_has_secret(sys.argv[1:], secrets))

        if self.mode == "online":
            problem = _online_problem()
            if problem is None:
                try:
                    self._run = wandb.init(mode="online", **init, settings=wandb.Settings(
                        **settings, init_timeout=INIT_TIMEOUT_S, finish_timeout=FINISH_TIMEOUT_S))
                except Exception as e:  # wandb raises CommError, UsageError, TimeoutError, ...
                    problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    # The failed online stream keeps the run id busy inside the wandb service
                    # ("run ID ... is in use"); restart the service for the offline run.
                    _restart_wandb_service()
            if self._run is None:
                warnings.warn(f"W&B online mode unavailable ({problem}); recording run {run_id} "
                              f"offline under {root / 'wandb'} (upload later with `wandb sync`)",
                              TrackingFallbackWarning, stacklevel=2)
                self.mode = "offline"
        if self._run is None:
            try:
                self._run = wandb.init(mode="offline", **init, settings=wandb.Settings(**settings))
            except Exception as e:
                # WANDB_SERVICE inherited from a process whose wandb service has exited points at a
                # dead socket; a fresh service of our own records the run just the same.
                if "service" not in type(e).__name__.lower() or "WANDB_SERVICE" not in os.environ:
                    raise
                os.environ.pop("WANDB_SERVICE", None)
                _restart_wandb_service()
                self._run = wandb.init(mode="offline", **init, settings=wandb.Settings(**settings))

        # Every metric is charted against training tokens (rows must carry `tokens`); `flops`
        # is defined too, so the dashboard can switch the x-axis to compute.
        self._run.define_metric("tokens")
        self._run.define_metric("flops")
        self._run.define_metric("*", step_metric="tokens")

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish(0)
            return False
        try:
            self.finish(1)
        except Exception as finish_error:  # never mask the training error with a W&B one
            warnings.warn(f"W&B finish failed after a training error: {finish_error!r}", RuntimeWarning)
        return False

    def log(self, metrics: dict, step: Optional[int] = None) -> None:
        """Log one history row; `step` should be the optimizer step so resumed runs continue it."""
        if self._run is None:
            return
        if self._finished:
            raise RuntimeError("Tracker.log called after finish()")
        self._run.log(metrics, step=step)

    def set_summary(self, metrics: dict) -> None:
        """Set final values (loss, n_params, flops, ...) in the run summary."""
        if self._run is None:
            return
        if self._finished:
            raise RuntimeError("Tracker.set_summary called after finish()")
        self._run.summary.update(scrub(metrics))

    def finish(self, exit_code: int = 0) -> None:
        """Finish the W&B run (non-zero exit_code marks it failed); later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        if self._run is None:
            return
        self._run.finish(exit_code=exit_code)
        if self.mode == "offline":
            _wait_for_exit_record(self.run_dir / f"run-{self._run.id}.wandb", FLUSH_TIMEOUT_S)

    @property
    def run_dir(self) -> Optional[Path]:
        """The local run folder holding run-<id>.wandb (offline-run-* or run-*), None when disabled."""
        return Path(self._run.sync_dir) if self._run is not None else None
