"""Upload vetting: what a file really is, whether we accept it, and whether ClamAV likes it.

`scan(fileobj, declared_type=..., clamd=...)` is what the worker calls on a stored upload; it
returns a `Verdict` (clean, or rejected with a reason code) and raises `ScanError` only when
no verdict could be reached (`ScannerUnavailable` is the retryable kind). The declared
Content-Type is never trusted: the type comes from the bytes, and the declared one must agree.
All of this is blocking I/O and CPU work meant for a worker or a thread.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Literal

# Re-exported: with the codes below, the full vocabulary of a rejected Verdict's reason.
from common.images import TOO_MANY_PIXELS as TOO_MANY_PIXELS
from common.images import UNDECODABLE_IMAGE as UNDECODABLE_IMAGE
from common.images import ImageRejected as ImageRejected

HEAD_SIZE = 64 * 1024  # bytes sniffed; enough for a CSV header and a few rows
DEFAULT_MAX_PIXELS = 40_000_000  # ~120 MB decoded as RGB
DEFAULT_MAX_FRAMES = 100
_MAX_LINE = 1024 * 1024  # a "text" line longer than this is treated as binary

IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
ALLOWED_TYPES = frozenset({*IMAGE_FORMATS, "application/pdf", "text/plain", "text/csv"})
TEXT_TYPES = frozenset({"text/plain", "text/csv"})

# Reason codes of a rejected Verdict ("malware:<signature>" for ClamAV hits), besides the
# image ones above.
TYPE_MISMATCH = "type_mismatch"
NOT_ALLOWED = "not_allowed"
MALWARE_PREFIX = "malware:"

# The signatures of the binary kinds we accept, and nothing else: anything unlisted is refused
# by default. (A general detector such as puremagic knows a thousand kinds only to refuse them,
# ranks several guesses per file, e.g. PDF tied with FDF, and does not help with text.)
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),  # at offset 0 only, stricter than readers that skip junk
)
# C0 controls other than \t \n \v \f \r: their presence means binary, not text.
_BINARY_RE = re.compile(r"[\x00-\x08\x0e-\x1f]")
_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-pdf": "application/pdf",
    "application/csv": "text/csv",
    "text/comma-separated-values": "text/csv",
    "application/vnd.ms-excel": "text/csv",  # what Windows browsers send for a .csv
}


class ScanError(Exception):
    """No verdict could be reached. Not retryable unless `retryable` says so."""

    code = "scan_error"
    retryable = False


class ScannerUnavailable(ScanError):
    """clamd unreachable, timed out or failed transiently: retry the task later."""

    code = "scanner_unavailable"
    retryable = True


VirusScan = Literal["clean", "infected", "skipped"]


@dataclass(frozen=True)
class Verdict:
    status: Literal["clean", "rejected"]
    content_type: str | None  # detected from the bytes (None: unrecognised)
    reason: str | None = None  # one of the reason codes above when rejected
    detail: str = ""  # human-readable, safe to log
    # What ClamAV said: "clean", "infected", "skipped" (no scanner: an explicit choice), or
    # None when the cheaper checks rejected the file before it reached ClamAV.
    virus_scan: VirusScan | None = None

    @property
    def clean(self) -> bool:
        return self.status == "clean"


@dataclass(frozen=True)
class ScanPolicy:
    allowed_types: frozenset[str] = ALLOWED_TYPES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    frames: int


def normalize_type(content_type: str | None) -> str | None:
    """'Image/JPG; q=1' -> 'image/jpeg'; octet-stream or empty -> None (no claim made)."""
    if not content_type:
        return None
    base = content_type.split(";", 1)[0].strip().lower()
    if base in ("", "application/octet-stream"):
        return None
    return _TYPE_ALIASES.get(base, base)


def is_allowed(content_type: str | None, allowed: frozenset[str] = ALLOWED_TYPES) -> bool:
    return normalize_type(content_type) in allowed


def sniff(head: bytes, *, complete: bool = False) -> str | None:
    """Content type from the first bytes of a file, or None if unrecognised.

    `complete` says head is the whole file (otherwise a cut-off last line is ignored).
    Knows the allowlisted kinds, and HTML/SVG so that they can be refused by name.
    """
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    text = _decode_text(head, complete)
    if text is None:
        return None
    markup = text.lstrip("\ufeff \t\r\n").lower()
    if markup.startswith("<"):  # stored XSS if ever served inline
        if "<svg" in markup[:4096]:
            return "image/svg+xml"
        if any(tag in markup[:4096] for tag in ("<!doctype html", "<html", "<script", "<body")):
            return "text/html"
    if _csv_delimiter(text if complete else text[: text.rfind("\n") + 1], min_cols=2):
        return "text/csv"
    return "text/plain"


def _decode_text(head: bytes, complete: bool) -> str | None:
    if not head:
        return None
    try:  # an incremental decoder tolerates a multibyte character cut at the end of head
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return None
    return None if _BINARY_RE.search(text) else text


def _csv_delimiter(text: str, *, min_cols: int, min_rows: int = 2) -> str | None:
    """Delimiter giving every row the same column count (>= min_cols), or None."""
    for delimiter in ",;\t":
        try:
            rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(rows) >= min_rows and len(widths) == 1 and widths.pop() >= min_cols:
            return delimiter
    return None


def check_image(
    source: bytes | IO[bytes],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    formats: Iterable[str] | None = None,
) -> ImageInfo:
    """Decode every frame with Pillow or raise ImageRejected (undecodable / too many pixels),
    within the limits of common.images.opened_image; `formats` pins the decoder to the sniffed
    format."""
    from common.images import opened_image  # Pillow: only where images are checked

    with opened_image(source, max_pixels=max_pixels, formats=formats) as im:
        width, height = im.size
        frames = getattr(im, "n_frames", 1)
        if frames > max_frames:
            raise ImageRejected(TOO_MANY_PIXELS, f"{frames} frames > {max_frames}")
        for index in range(frames):
            im.seek(index)
            im.load()  # truncated or corrupt data fails here
        return ImageInfo(str(im.format), width, height, frames)


def scan(
    source: bytes | IO[bytes],
    *,
    declared_type: str | None,
    clamd: ClamdClient | None,
    policy: ScanPolicy = ScanPolicy(),  # frozen, so sharing the default is safe
) -> Verdict:
    """Vet a whole file (a seekable binary file, e.g. a SpooledTemporaryFile, or bytes).

    Cheap checks run first; ClamAV only sees files that passed them. `clamd=None` skips the
    virus scan and must be an explicit choice (development without clamd).
    """
    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
    fp.seek(0)
    head = _read_up_to(fp, HEAD_SIZE)
    complete = len(head) < HEAD_SIZE or not fp.read(1)
    detected = sniff(head, complete=complete)
    declared = normalize_type(declared_type)

    def rejected(reason: str, detail: str = "") -> Verdict:
        return Verdict("rejected", detected, reason, detail)

    if detected is None or detected not in policy.allowed_types:
        return rejected(NOT_ALLOWED, f"content is {detected or 'unrecognised'}")
    # CSV is text: either may be declared for the other, if the whole file bears it out.
    text_pair = declared in TEXT_TYPES and detected in TEXT_TYPES
    if declared is not None and declared != detected and not text_pair:
        return rejected(TYPE_MISMATCH, f"declared {declared}, content is {detected}")
    final = declared if declared in TEXT_TYPES else detected

    if final in TEXT_TYPES:
        problem = _verify_text(fp, head, as_csv=final == "text/csv")
        if problem and declared is None and final == "text/csv":  # CSV-looking head only
            final = "text/plain"
            problem = _verify_text(fp, head, as_csv=False)
        if problem:
            return rejected(TYPE_MISMATCH, f"not {final}: {problem}")
    elif final in IMAGE_FORMATS:
        fp.seek(0)
        try:
            check_image(
                fp,
                max_pixels=policy.max_pixels,
                max_frames=policy.max_frames,
                formats=[IMAGE_FORMATS[final]],
            )
        except ImageRejected as exc:
            return rejected(exc.reason, exc.detail)

    if clamd is None:
        return Verdict("clean", final, virus_scan="skipped")
    fp.seek(0)
    signature = clamd.instream(_chunks(fp))
    if signature:
        return Verdict(
            "rejected", detected, MALWARE_PREFIX + signature, "ClamAV detection", "infected"
        )
    return Verdict("clean", final, virus_scan="clean")


def _read_up_to(fp: IO[bytes], n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n and (chunk := fp.read(n - len(buf))):
        buf += chunk
    return bytes(buf)


def _chunks(fp: IO[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    while chunk := fp.read(size):
        yield chunk


def _verify_text(fp: IO[bytes], head: bytes, *, as_csv: bool) -> str | None:
    """Check the WHOLE file is UTF-8 text (and consistent CSV): a text head could hide a
    binary tail. Returns what is wrong, or None. Memory is bounded by _MAX_LINE."""
    fp.seek(0)
    wrapper = io.TextIOWrapper(fp, encoding="utf-8", errors="strict", newline="")
    try:
        if not as_csv:
            while piece := wrapper.read(HEAD_SIZE):
                if _BINARY_RE.search(piece):
                    return "control characters"
            return None
        # The header line fixes the dialect; every later row must match its width.
        header = head.split(b"\n", 1)[0]
        delimiter = max(",;\t", key=lambda d: header.count(d.encode()))  # ties: ","
        widths = {len(row) for row in csv.reader(_text_lines(wrapper), delimiter=delimiter) if row}
        return None if len(widths) == 1 else f"inconsistent column counts {sorted(widths)[:5]}"
    except UnicodeDecodeError:
        return "not UTF-8"
    except (csv.Error, _NotText) as exc:
        return str(exc)[:200]
    finally:
        wrapper.detach()  # leave the caller's file open


class _NotText(Exception):
    pass


def _text_lines(wrapper: io.TextIOWrapper) -> Iterator[str]:
    while line := wrapper.readline(_MAX_LINE):
        if _BINARY_RE.search(line):
            raise _NotText("control characters")
        if len(line) >= _MAX_LINE and not line.endswith("\n"):
            raise _NotText("line too long")
        yield line


@dataclass(frozen=True)
class ClamdClient:
    """Minimal clamd client: INSTREAM over a unix socket path or a (host, port) TCP address."""

    address: str | tuple[str, int]
    timeout: float = 30.0  # per socket operation; a hung clamd becomes ScannerUnavailable
    chunk_size: int = 64 * 1024  # must stay below clamd's StreamMaxLength

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> ClamdClient:
        """'unix:///run/clamav/clamd.ctl', '/path/to.sock' or 'tcp://host:3310'."""
        if url.startswith("tcp://"):
            host, _, port = url.removeprefix("tcp://").rstrip("/").rpartition(":")
            return cls((host.strip("[]"), int(port)), timeout=timeout)
        return cls(url.removeprefix("unix://"), timeout=timeout)

    def _connect(self) -> socket.socket:
        try:
            if isinstance(self.address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.address)
                except BaseException:
                    sock.close()
                    raise
                return sock
            return socket.create_connection(self.address, timeout=self.timeout)
        except OSError as exc:
            raise ScannerUnavailable(f"cannot connect to clamd at {self.address}: {exc}") from exc

    def ping(self) -> None:
        with self._connect() as sock:
            reply = self._exchange(sock, [b"zPING\0"])
        if reply != "PONG":
            raise ScannerUnavailable(f"unexpected clamd reply to PING: {reply!r}")

    def version(self) -> str:
        """'ClamAV 1.0.7/27480/Mon Dec  1 08:30:00 2026': engine, signature version and date."""
        with self._connect() as sock:
            return self._exchange(sock, [b"zVERSION\0"])[:200]

    def instream(self, chunks: Iterable[bytes]) -> str | None:
        """Stream bytes to clamd; return the signature name if infected, None if clean."""
        with self._connect() as sock:
            reply = self._exchange(sock, self._frames(chunks))
        if reply.endswith(" FOUND"):
            name = reply.removeprefix("stream:").removesuffix(" FOUND").strip()
            return re.sub(r"[^A-Za-z0-9._:/+-]", "_", name)[:200] or "unknown"
        if reply == "stream: OK":
            return None
        if "size limit exceeded" in reply:  # retrying cannot help: configuration problem
            raise ScanError(f"clamd refused the stream: {reply}")
        raise ScannerUnavailable(f"clamd error: {reply[:200]!r}")

    def _frames(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        yield b"zINSTREAM\0"
        for chunk in chunks:
            for start in range(0, len(chunk), self.chunk_size):
                part = chunk[start : start + self.chunk_size]
                yield struct.pack(">I", len(part)) + part
        yield struct.pack(">I", 0)  # end of stream

    def _exchange(self, sock: socket.socket, frames: Iterable[bytes]) -> str:
        """Send frames, then read the NUL-terminated reply ('z' commands)."""
        try:
            for frame in frames:
                try:
                    sock.sendall(frame)
                except (BrokenPipeError, ConnectionResetError):
                    break  # clamd hung up early (e.g. size limit); its reply says why
            reply = bytearray()
            while not reply.endswith(b"\0") and len(reply) < 4096:
                data = sock.recv(4096)
                if not data:
                    break
                reply += data
        except OSError as exc:  # includes socket timeouts
            raise ScannerUnavailable(f"clamd I/O failed: {exc}") from exc
        if not reply:
            raise ScannerUnavailable("clamd closed the connection without a reply")
        return reply.rstrip(b"\0\n").decode("utf-8", "replace")
