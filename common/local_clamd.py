"""A local ClamAV daemon for `make run`, when the machine has one and its signatures.

`make run` scans uploads with a real clamd when `clamd` is installed AND the system signature
database is present (`main.cvd`/`.cld` etc. from `freshclam` in /var/lib/clamav): it starts its
own clamd on a socket under var/clamd, reading the system database in place. Otherwise it says
in one line that virus scanning is off and how to turn it on. It never writes a signature file
of its own: a scanner with made-up signatures would claim files clean that it cannot judge.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from common.settings import Settings

# Where distributions keep freshclam's database (Debian/Ubuntu/Fedora, Homebrew).
SYSTEM_DATABASES = (
    Path("/var/lib/clamav"),
    Path("/usr/local/var/lib/clamav"),
    Path("/opt/homebrew/var/lib/clamav"),
)
SIGNATURE_PATTERNS = ("*.cvd", "*.cld", "*.cud")
CLAMD_LOCATIONS = ("/usr/sbin/clamd", "/usr/local/sbin/clamd", "/opt/homebrew/sbin/clamd")
HOW_TO_TURN_ON = (
    "install clamav-daemon and run freshclam (or set CLAMD_URL); VIRUS_SCAN=off hides this line"
)


@dataclass(frozen=True)
class Plan:
    """What `make run` does about virus scanning: start `clamd` with `database`, or not."""

    message: str
    clamd: str | None = None
    database: Path | None = None


def signature_database(candidates: tuple[Path, ...] = SYSTEM_DATABASES) -> Path | None:
    """The first directory holding official ClamAV signature files, or None."""
    for directory in candidates:
        if any(any(directory.glob(p)) for p in SIGNATURE_PATTERNS):
            return directory
    return None


def clamd_executable() -> str | None:
    return shutil.which("clamd") or next((p for p in CLAMD_LOCATIONS if Path(p).exists()), None)


def plan(settings: Settings) -> Plan:
    if settings.virus_scan == "off":
        return Plan("virus scanning is off (VIRUS_SCAN=off): uploads are marked 'skipped'")
    if settings.clamd_url:
        return Plan(f"virus scanning with the clamd at {settings.clamd_url}")
    exe, database = clamd_executable(), signature_database()
    if exe is None or database is None:
        missing = "clamd is not installed" if exe is None else "no ClamAV signatures"
        return Plan(
            f"virus scanning is off ({missing}; uploads are marked 'skipped'): {HOW_TO_TURN_ON}"
        )
    return Plan(
        f"starting clamd with the signatures in {database} (~1.5 GB of memory, ~30 s to load; "
        "uploads stay pending until it answers)",
        clamd=exe,
        database=database,
    )


def write_config(rundir: Path, database: Path, *, max_upload: int) -> tuple[Path, Path]:
    """clamd.conf for a foreground clamd on a unix socket in rundir; returns (conf, socket)."""
    rundir.mkdir(parents=True, exist_ok=True)
    sock = rundir / "clamd.sock"
    sock.unlink(missing_ok=True)  # left by a clamd that was killed
    conf = rundir / "clamd.conf"
    conf.write_text(
        f"LocalSocket {sock}\n"
        "LocalSocketMode 600\n"
        f"DatabaseDirectory {database}\n"
        f"TemporaryDirectory {rundir}\n"
        f"LogFile {rundir / 'clamd.log'}\n"
        "Foreground yes\n"
        # Uploads are at most UPLOAD_MAX_BYTES: a lower stream limit would fail their scans.
        f"StreamMaxLength {max(max_upload, 25 * 1024 * 1024)}\n"
    )
    return conf, sock
