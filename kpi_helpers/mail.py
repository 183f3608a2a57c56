"""``kpi send OUT/<quarter> --to ADDR...``: the quarter's brief by mail, with the report attached.

The message (:func:`compose`):

- the body is the brief (``brief.html``) as HTML, its charts as inline images referenced by
  ``cid:`` (mail clients block ``data:`` images), with the same brief as plain text for clients
  that show no HTML;
- attached is ``report.pdf`` when the quarter was rendered with ``--pdf``, else the one file
  ``report.html``;
- the subject is the brief's title (``2026Q3 in brief · Marketing KPI kit``).

Only a quarter the kit rendered is sent, and only files it wrote, unchanged since (its manifest):
an edited brief is refused, not mailed.

Delivery (:func:`deliver`): ``--smtp HOST:PORT`` (default ``KPI_SMTP``, else ``localhost:25``). Port
465 speaks TLS from the start; any other port upgrades with STARTTLS when the server offers it.
Credentials come from the environment only, ``KPI_SMTP_USER`` and ``KPI_SMTP_PASSWORD``, never from
a file or the command line (where ``ps`` and shell history would show them), and a password is never
sent over an unencrypted connection except to this machine. The sender is ``--from`` (default
``KPI_MAIL_FROM``). ``OUT/latest`` names the newest quarter rendered in ``OUT``. ``--dry-run``
writes the message as ``kpi-<quarter>.eml`` in the current folder instead (it replaces only an
``.eml`` the kit wrote).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import re
import smtplib
import ssl
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from pathlib import Path

from . import __version__, fileio, outdir
from .brief import BRIEF
from .exceptions import DeliveryError, MailError
from .onefile import REPORT
from .pdf import PDF

__all__ = ["MAILER", "compose", "deliver", "eml_path", "parse_server", "resolve_folder", "send", "write_eml"]

#: the ``X-Mailer`` header of the kit's messages (how a dry run recognises its own ``.eml``)
MAILER = f"{outdir.KIT_NAME} {__version__}"
DEFAULT_SERVER = "localhost:25"
#: seconds to wait for the mail server
TIMEOUT = 60.0
_DATA_PNG = re.compile(r"""src=(["'])data:image/png;base64,([A-Za-z0-9+/=\s]+)\1""")
_LOCAL = frozenset({"localhost", "127.0.0.1", "::1"})


def resolve_folder(folder: str | Path) -> Path:
    """``OUT/<quarter>`` as given, or for ``OUT/latest`` (no such folder) the newest quarter the kit rendered
    in ``OUT``, so that a scheduled run can send what ``kpi report --quarter latest`` just rendered."""
    from .pages import quarter_sort_key

    path = Path(folder)
    if path.name != "latest" or path.exists() or not path.parent.is_dir():
        return path
    rendered = [
        f for f in path.parent.iterdir() if quarter_sort_key(f.name)[0] and outdir.is_report(f)
    ]  # quarters only: another report index inside OUT (`--out reports/web-only`) is no quarter
    if not rendered:
        raise MailError(f"`{path.parent}` holds no rendered quarter; run `kpi report --out {path.parent}` first")
    return max(rendered, key=lambda f: quarter_sort_key(f.name))


def _report_folder(folder: Path) -> Path:
    """``folder`` when it is a quarter the kit rendered with a brief, its files as the kit wrote them."""
    if not folder.is_dir() or not outdir.is_report(folder):
        raise MailError(f"`{folder}` is not a quarter the kit rendered; pass `OUT/<quarter>` of `kpi report`")
    if not (folder / BRIEF).is_file():
        raise MailError(f"`{folder}` has no `{BRIEF}` (rendered by an older kit); render the quarter again")
    changed = [f for f in outdir.foreign_files(folder) if f.split("`")[1] in (BRIEF, PDF, REPORT)]
    if changed:
        raise MailError(
            f"`{folder}`: {', '.join(changed)}: not sent; render the quarter again for files the kit stands behind"
        )
    return folder


def _address(text: str, what: str) -> str:
    """One address, checked (``name@example.com``); a display name is allowed (``Ann <ann@example.com>``)."""
    name, addr = email.utils.parseaddr(text)
    if not addr or "\n" in text or "\r" in text:
        raise MailError(f"{what} `{text}` is not a mail address; expected `name@example.com`")
    try:
        return str(Address(display_name=name, addr_spec=addr))
    except (ValueError, IndexError) as exc:  # the header parser's own complaint
        raise MailError(f"{what} `{text}` is not a mail address ({exc}); expected `name@example.com`") from exc


def _plain(html: str) -> str:
    """The brief as text: its words, one block per line, without the markup."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup.find_all(["style", "title", "img"]):
        hidden.decompose()
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line) + "\n"


def compose(folder: str | Path, to: Sequence[str], sender: str) -> EmailMessage:
    """The mail of a rendered quarter (module docstring); :class:`MailError` when it cannot be sent."""
    folder = _report_folder(Path(folder))
    recipients = [_address(a, "`--to`") for a in to]
    if not recipients:
        raise MailError("`--to` names nobody; pass one or more addresses")
    sender = _address(sender, "`--from`")
    html = (folder / BRIEF).read_text(encoding="utf-8")
    images: dict[str, bytes] = {}

    def inline(match: re.Match[str]) -> str:
        data = base64.b64decode(re.sub(r"\s+", "", match.group(2)))
        cid = f"{hashlib.sha256(data).hexdigest()[:24]}@kpi-kit"
        images[cid] = data
        return f"src={match.group(1)}cid:{cid}{match.group(1)}"

    html = _DATA_PNG.sub(inline, html)
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    subject = _plain(title.group(1)).strip() if title else f"{folder.name} · {outdir.KIT_NAME}"

    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rsplit("@", 1)[-1].rstrip(">") or None)
    msg["X-Mailer"] = MAILER
    msg.set_content(_plain(html))
    msg.add_alternative(html, subtype="html")
    body = msg.get_body(("html",))
    assert isinstance(body, MIMEPart)  # the part just added
    for n, (cid, data) in enumerate(images.items(), start=1):
        body.add_related(
            data, maintype="image", subtype="png", cid=f"<{cid}>", disposition="inline", filename=f"chart-{n}.png"
        )
    attachment = folder / PDF if (folder / PDF).is_file() else folder / REPORT
    maintype, subtype = ("application", "pdf") if attachment.suffix == ".pdf" else ("text", "html")
    msg.add_attachment(
        attachment.read_bytes(),
        maintype=maintype,
        subtype=subtype,
        filename=f"marketing-kpis-{folder.name}{attachment.suffix}",
    )
    return msg


def parse_server(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:25`` for IPv6; the port defaults to 25).

    >>> parse_server("smtp.example.com:587"), parse_server("[::1]:2525"), parse_server("mail")
    (('smtp.example.com', 587), ('::1', 2525), ('mail', 25))
    """
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", text.strip())
    if not match:
        raise MailError(f"`--smtp` `{text}` is not `HOST:PORT` (for example `smtp.example.com:587`)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4) or 25)
    if not 0 < port < 65536:
        raise MailError(f"`--smtp` `{text}`: port {port} is outside 1-65535")
    return host, port


def deliver(msg: EmailMessage, server: str, *, timeout: float = TIMEOUT) -> None:
    """Send ``msg`` through ``server`` (``HOST:PORT``); credentials from the environment (module docstring)."""
    host, port = parse_server(server)
    user, password = os.environ.get("KPI_SMTP_USER", ""), os.environ.get("KPI_SMTP_PASSWORD", "")
    try:
        client = (
            smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
            if port == 465
            else smtplib.SMTP(host, port, timeout=timeout)
        )
        with client:
            client.ehlo()
            encrypted = port == 465
            if not encrypted and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
                encrypted = True
            if user:
                if not encrypted and host not in _LOCAL:
                    raise DeliveryError(
                        f"`{host}:{port}` offers no encryption (STARTTLS), so the password in `KPI_SMTP_PASSWORD` "
                        "was not sent; use the server's TLS port (465 or 587)"
                    )
                client.login(user, password)
            refused = client.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"`{host}:{port}` refused the login of `KPI_SMTP_USER`: {_said(exc)}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"`{host}:{port}` refused every recipient: {', '.join(exc.recipients)}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"cannot send through `{host}:{port}`: {_said(exc)}") from exc
    if refused:
        raise DeliveryError(f"`{host}:{port}` refused {', '.join(refused)}; the others were sent")


def _said(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {text}"
    return str(exc) or type(exc).__name__


def eml_path(folder: str | Path) -> Path:
    """Where ``--dry-run`` writes the message: ``kpi-<quarter>.eml`` in the current folder."""
    return Path.cwd() / f"kpi-{Path(folder).name}.eml"


def write_eml(msg: EmailMessage, path: Path) -> Path:
    """Write ``msg`` to ``path`` (atomically); refuse to replace a file that is not an ``.eml`` the kit wrote."""
    if path.exists() or path.is_symlink():
        try:
            with open(path, "rb") as handle:
                head = handle.read(8192)
        except OSError:
            head = b""
        if path.is_symlink() or not path.is_file() or b"\nX-Mailer: " + outdir.KIT_NAME.encode() not in head:
            raise MailError(f"`{path}` exists and is not a message the kit wrote; move it away and run again")
    fileio.write_atomic(path, msg.as_bytes())
    return path


def send(folder: str | Path, to: Sequence[str], *, server: str | None, sender: str | None, dry_run: bool) -> str:
    """``kpi send``: compose the quarter's mail and deliver it, or write it (``dry_run``); say what was done."""
    sender = sender or os.environ.get("KPI_MAIL_FROM", "")
    if not sender:
        raise MailError("no sender: pass `--from ADDR` or set `KPI_MAIL_FROM`")
    folder = resolve_folder(folder)
    msg = compose(folder, to, sender)
    attached = next(msg.iter_attachments()).get_filename()
    if dry_run:
        return f"wrote {write_eml(msg, eml_path(folder))} (not sent; attached {attached})"
    server = server or os.environ.get("KPI_SMTP", "") or DEFAULT_SERVER
    deliver(msg, server)
    return f"sent `{msg['Subject']}` to {msg['To']} through {server} (attached {attached})"
