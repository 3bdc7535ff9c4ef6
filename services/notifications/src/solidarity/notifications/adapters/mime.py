"""A mail's MIME text, written directly as it goes over SMTP: CRLF line ends, 7-bit only.

The structure never varies (text and HTML as alternatives; with a calendar invite, a
`text/calendar` alternative and an `invite.ics` attachment), so the bytes are written here
instead of built with `email.message.EmailMessage`: with the default policy it parses every
header it is given and folds it again on output, which was two thirds of the service's CPU
per mail. Bodies are quoted-printable (text) or base64 (calendar), lines at most 76
characters; header values that are not plain printable ASCII become RFC 2047 encoded words.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass

CRLF = b"\r\n"
_MAX_HEADER_LINE = 998  # RFC 5322's hard limit; List-Unsubscribe URLs are never folded
# An encoded word is at most 75 characters and a line that holds one at most 76 (RFC 2047):
# 39 bytes of UTF-8 make 52 of base64, "=?utf-8?b?...?=" 64, "Subject: " and one 73.
_WORD_BYTES = 39


class UnencodableHeaderError(ValueError):
    """A header value that cannot be written in 7-bit ASCII (an address with non-ASCII)."""


def unstructured(value: str) -> str:
    """An unstructured header value (a subject): as is when it is printable ASCII that no
    reader could take for an encoded word, else UTF-8 encoded words folded with CRLF SP."""
    plain = value.isascii() and value.isprintable() and "=?" not in value
    if plain and len(value) < _MAX_HEADER_LINE - 40:
        return value
    words: list[str] = []
    chunk = bytearray()
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(_encoded_word(bytes(chunk)))
            chunk.clear()
        chunk += encoded
    if chunk or not words:
        words.append(_encoded_word(bytes(chunk)))
    return "\r\n ".join(words)


def _encoded_word(data: bytes) -> str:
    return f"=?utf-8?b?{binascii.b2a_base64(data, newline=False).decode('ascii')}?="


def ascii_value(value: str) -> str:
    """A structured header value that must already be 7-bit (an address, a Message-ID)."""
    if not (value.isascii() and value.isprintable()):
        raise UnencodableHeaderError("a header value is not printable ASCII")
    return value


def ascii_address(address: str) -> str:
    """An address as it can go in a 7-bit header and an SMTP command without SMTPUTF8: a
    domain outside ASCII in its IDNA (punycode) form; a local part outside ASCII cannot be."""
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UnencodableHeaderError("an address's domain has no IDNA form") from exc
    return ascii_value(f"{local}{at}{domain}")


def quoted_printable(text: str) -> bytes:
    """UTF-8 text as quoted-printable with CRLF line ends (soft breaks at 76 characters)."""
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True)


def base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ended by CRLF."""
    return b"".join(
        binascii.b2a_base64(data[i : i + 57], newline=False) + CRLF for i in range(0, len(data), 57)
    )


@dataclass(frozen=True, slots=True)
class Part:
    """A leaf part: its headers (name, value) and its encoded body."""

    headers: Sequence[tuple[str, str]]
    body: bytes


def text_part(subtype: str, text: str) -> Part:
    return Part(
        (
            ("Content-Type", f'text/{subtype}; charset="utf-8"'),
            ("Content-Transfer-Encoding", "quoted-printable"),
        ),
        quoted_printable(text),
    )


def base64_part(headers: Sequence[tuple[str, str]], data: bytes) -> Part:
    return Part((*headers, ("Content-Transfer-Encoding", "base64")), base64_lines(data))


def _header_lines(headers: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in headers)


def _multipart(boundary: str, parts: Sequence[Part | Multipart]) -> bytes:
    # The CRLF before each delimiter belongs to the delimiter (RFC 2046): a body that ends with
    # a line break keeps it.
    out: list[bytes] = []
    for part in parts:
        out += [f"--{boundary}\r\n".encode("ascii"), _header_lines(part.headers), CRLF]
        out += [part.body if isinstance(part, Part) else part.render(), CRLF]
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Multipart:
    """A multipart/<subtype> of parts; `boundary` must not occur in them (see `boundary`)."""

    subtype: str
    boundary: str
    parts: Sequence[Part | Multipart]

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Content-Type", f'multipart/{self.subtype}; boundary="{self.boundary}"'),)

    def render(self) -> bytes:
        return _multipart(self.boundary, self.parts)


def boundary(tag: str, level: int) -> str:
    """A boundary that no part can contain: "=_" never occurs in quoted-printable (where "="
    starts a hex pair or a soft break) nor in base64, and a multipart holds only those."""
    return f"=_{tag}_{level}"


def message(
    headers: Sequence[tuple[str, str]],
    body: Multipart,
    trailing: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The whole message: `headers`, MIME-Version and the body's Content-Type, `trailing`."""
    return b"".join(
        (
            _header_lines(headers),
            b"MIME-Version: 1.0\r\n",
            _header_lines(body.headers),
            _header_lines(trailing),
            CRLF,
            body.render(),
        )
    )
