"""Check a CSV file's bytes and choose the text encoding to read it with.

Dutch organisations export CSV files as UTF-8, with or without a byte order
mark (BOM), or as Windows-1252 (cp1252) from older Excel versions. With the
schema's ``csv.encoding = "auto"`` a file is read as UTF-8 unless it is not
valid UTF-8, and then as cp1252. Two cases are rejected instead of guessed:

* a file that is valid UTF-8 with non-ASCII characters up to some point and
  invalid after it, because it mixes two encodings and cp1252 would silently
  turn its UTF-8 characters into mojibake such as "Ã©";
* a file containing NUL bytes or starting with a UTF-16 BOM, because it is
  binary or UTF-16 text, which the importer does not read.

The scan reads the file once in blocks, so it needs constant memory, and
computes the SHA-256 hash of the bytes on the way.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from station.csv_errors import CsvError, CsvImportError

__all__ = ["EncodingSetting", "FileScan", "HashingReader", "scan_file"]

EncodingSetting = Literal["auto", "utf-8", "utf-8-sig", "cp1252"]

BLOCK_SIZE = 1 << 20

# Python's cp1252 codec leaves these five bytes undefined.
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass
class FileScan:
    """The size, hash and encoding found by one pass over a file's bytes."""

    size: int
    sha256: str
    encoding: str
    """``utf-8`` or ``utf-8-sig`` (with a BOM), or ``cp1252``."""
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Position:
    offset: int
    line: int
    byte: int


class _LineCounter:
    """Line-break counter (LF, CRLF or a lone CR) over consecutive blocks."""

    def __init__(self) -> None:
        self.breaks = 0
        self._ends_with_cr = False

    def line_at(self, block: bytes, index: int) -> int:
        """Return the 1-based line of byte `index` in the current block."""
        return 1 + self.breaks + _count_breaks(block[:index], self._ends_with_cr)

    def advance(self, block: bytes) -> None:
        self.breaks += _count_breaks(block, self._ends_with_cr)
        self._ends_with_cr = block.endswith(b"\r")


def _count_breaks(data: bytes, after_cr: bool) -> int:
    count = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    if after_cr and data.startswith(b"\n"):
        count -= 1  # the CR of this CRLF was counted in the previous block
    return count


def scan_file(path: Path, setting: EncodingSetting) -> FileScan:
    """Hash the file at `path` and choose its encoding under `setting`.

    Raises
    ------
    CsvImportError
        If the file is empty, binary, UTF-16, or not valid in the encoding
        that `setting` fixes or that auto-detection chose.
    """
    digest = hashlib.sha256()
    lines = _LineCounter()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    size = 0
    head = b""
    first_nul: _Position | None = None
    first_non_ascii: _Position | None = None
    first_cp1252_undefined: _Position | None = None
    first_utf8_invalid: _Position | None = None

    with path.open("rb") as file:
        while block := file.read(BLOCK_SIZE):
            digest.update(block)
            if len(head) < 4:
                head += block[:4]
            if first_nul is None and (index := block.find(b"\x00")) >= 0:
                first_nul = _position(block, index, size, lines)
            if first_non_ascii is None:
                first_non_ascii = _first_match(_NON_ASCII, block, size, lines)
            if first_cp1252_undefined is None:
                first_cp1252_undefined = _first_match(
                    _CP1252_UNDEFINED, block, size, lines
                )
            if first_utf8_invalid is None:
                first_utf8_invalid = _decode_utf8(decoder, block, size, lines)
            size += len(block)
            lines.advance(block)

    if first_utf8_invalid is None:
        first_utf8_invalid = _decode_utf8_end(decoder, size, lines)

    has_bom = head.startswith(codecs.BOM_UTF8)
    _check_text_file(path, size, head, has_bom, first_nul)
    encoding, warnings = _choose_encoding(
        path,
        setting,
        has_bom,
        first_non_ascii,
        first_utf8_invalid,
        first_cp1252_undefined,
    )
    return FileScan(size, digest.hexdigest(), encoding, warnings)


def _position(block: bytes, index: int, start: int, lines: _LineCounter) -> _Position:
    return _Position(start + index, lines.line_at(block, index), block[index])


def _first_match(
    pattern: re.Pattern[bytes], block: bytes, start: int, lines: _LineCounter
) -> _Position | None:
    match = pattern.search(block)
    if match is None:
        return None
    return _position(block, match.start(), start, lines)


def _decode_utf8(
    decoder: codecs.IncrementalDecoder, block: bytes, start: int, lines: _LineCounter
) -> _Position | None:
    # The decoder keeps an incomplete multi-byte sequence from the end of the
    # previous block and decodes it together with this one, so an error offset
    # counts from the first of those pending bytes.
    pending = decoder.getstate()[0]
    try:
        decoder.decode(block)
    except UnicodeDecodeError as error:
        index = error.start - len(pending)
        if index < 0:
            return _Position(start + index, lines.line_at(block, 0), pending[index])
        return _position(block, index, start, lines)
    return None


def _decode_utf8_end(
    decoder: codecs.IncrementalDecoder, size: int, lines: _LineCounter
) -> _Position | None:
    pending = decoder.getstate()[0]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        # The file ends inside a multi-byte sequence.
        return _Position(size - len(pending), lines.breaks + 1, pending[0])
    return None


def _check_text_file(
    path: Path, size: int, head: bytes, has_bom: bool, first_nul: _Position | None
) -> None:
    if size == 0 or (has_bom and size == len(codecs.BOM_UTF8)):
        raise _file_error(
            path,
            None,
            "the file is empty; export the dataset again with a header line "
            "and at least one row",
        )
    if head.startswith(_UTF16_BOMS):
        raise _file_error(
            path,
            None,
            "the file is UTF-16 text, which the importer does not read; save "
            'it as "CSV UTF-8" or as a cp1252 CSV file',
        )
    if first_nul is not None:
        raise _file_error(
            path,
            first_nul.line,
            f"NUL byte at offset {first_nul.offset}; the file is binary or "
            "UTF-16, not a CSV text file",
        )


def _choose_encoding(
    path: Path,
    setting: EncodingSetting,
    has_bom: bool,
    first_non_ascii: _Position | None,
    first_utf8_invalid: _Position | None,
    first_cp1252_undefined: _Position | None,
) -> tuple[str, list[str]]:
    utf8_name = "utf-8-sig" if has_bom else "utf-8"
    if setting in ("utf-8", "utf-8-sig"):
        if first_utf8_invalid is not None:
            raise _byte_error(
                path,
                first_utf8_invalid,
                f'is not valid UTF-8, but the schema sets csv.encoding = "{setting}"; '
                'export the file as UTF-8, or set csv.encoding to "cp1252" or "auto"',
            )
        return utf8_name, []

    if setting == "cp1252":
        if has_bom:
            raise _file_error(
                path,
                1,
                "the file starts with a UTF-8 byte order mark, but the schema "
                'sets csv.encoding = "cp1252"; set csv.encoding to "utf-8" or '
                '"auto"',
            )
        if first_cp1252_undefined is not None:
            raise _byte_error(
                path,
                first_cp1252_undefined,
                "is not defined in cp1252, but the schema sets csv.encoding = "
                '"cp1252"; export the file again and set csv.encoding to its '
                "encoding",
            )
        return "cp1252", []

    if first_utf8_invalid is None:
        return utf8_name, []
    if (
        first_non_ascii is not None
        and first_non_ascii.offset < first_utf8_invalid.offset
    ):
        raise _byte_error(
            path,
            first_utf8_invalid,
            "is not valid UTF-8, although the text before it is UTF-8 with "
            f"non-ASCII characters (from line {first_non_ascii.line}); the "
            "file mixes encodings, so export it again as UTF-8",
        )
    if first_cp1252_undefined is not None:
        raise _byte_error(
            path,
            first_cp1252_undefined,
            "is valid neither in UTF-8 nor in cp1252; export the file again as UTF-8",
        )
    warning = (
        "the file is not valid UTF-8 (first at line "
        f"{first_utf8_invalid.line}), so it was read as cp1252 (Windows-1252)"
    )
    return "cp1252", [warning]


def _file_error(path: Path, line: int | None, message: str) -> CsvImportError:
    return CsvImportError(path, [CsvError(line, None, message)], 1)


def _byte_error(path: Path, position: _Position, problem: str) -> CsvImportError:
    return _file_error(
        path,
        position.line,
        f"byte 0x{position.byte:02x} at offset {position.offset} {problem}",
    )


class HashingReader(io.RawIOBase):
    """A binary file reader that computes the SHA-256 hash of what it reads.

    The importer reads the file a second time to parse it. Comparing this
    hash with the one from :func:`scan_file` detects a file that changed
    between the two passes, such as an export that is still being written.
    """

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._file.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0

    def close(self) -> None:
        self._file.close()
        super().close()
