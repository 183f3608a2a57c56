"""`kpi send` (kpi_helpers.mail): the brief as the body with inline charts, the report attached, delivered to a
mail server the test runs on localhost (aiosmtpd is not a dependency: a small SMTP server below speaks enough of
RFC 5321 for smtplib), or written as an .eml by --dry-run."""

from __future__ import annotations

import base64
import contextlib
import email
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from conftest import SampleReport

from kpi_helpers import brief, mail, outdir
from kpi_helpers.cli import main

METRICS = {
    "quarter": "2026Q3",
    "currency": "USD",
    "revenue": 900.0,
    "revenue_target": 1000.0,
    "leads": 120,
    "previous_quarter": {"quarter": "2026Q2", "leads": 100, "revenue": 800.0},
}
CONCLUSION = "<p><strong>2026Q3 revenue was $900</strong>, 90% of its target.</p>"


class _Smtp(socketserver.StreamRequestHandler):
    """One SMTP session: EHLO (offering AUTH PLAIN, and STARTTLS when the server has a certificate),
    STARTTLS, AUTH, MAIL, RCPT, DATA, QUIT. ``server.commands`` records each verb, with ``+tls`` when it
    arrived encrypted."""

    def reply(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())

    def handle(self) -> None:
        server: SmtpServer = self.server  # type: ignore[assignment]
        self.reply("220 localhost test server")
        data: list[bytes] | None = None
        while line := self.rfile.readline():
            if data is not None:
                if line.rstrip(b"\r\n") == b".":
                    server.messages.append(b"".join(data))
                    data = None
                    self.reply("250 2.0.0 queued")
                else:
                    data.append(line[1:] if line.startswith(b"..") else line)
                continue
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            encrypted = isinstance(self.connection, ssl.SSLSocket)
            server.commands.append(verb + ("+tls" if encrypted else ""))
            if verb == "EHLO":
                offer = ["250-STARTTLS"] if server.tls is not None and not encrypted else []
                self.reply("250-localhost", *offer, "250-AUTH PLAIN", "250 8BITMIME")
            elif verb == "STARTTLS" and server.tls is not None and not encrypted:
                self.reply("220 2.0.0 ready to start TLS")
                try:
                    self.connection = server.tls.wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client did not trust the certificate and hung up
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb", buffering=0)
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).decode().split("\0")
                server.logins.append((user, password))
                self.reply("235 2.7.0 accepted")
            elif verb == "RCPT":
                server.recipients.append(re.search(r"<(.*)>", command).group(1))
                self.reply("250 2.1.5 OK")
            elif verb in ("MAIL", "RSET", "NOOP", "HELO"):
                self.reply("250 OK")
            elif verb == "DATA":
                data = []
                self.reply("354 end with .")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SmtpServer(socketserver.ThreadingTCPServer):
    """The test server on 127.0.0.1: plain, offering STARTTLS (``tls``), or TLS from the first byte
    (``tls`` and ``implicit``, as on port 465)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None, implicit: bool = False) -> None:
        super().__init__(("127.0.0.1", port), _Smtp)
        self.tls, self.implicit = tls, implicit
        self.messages: list[bytes] = []
        self.commands: list[str] = []
        self.logins: list[tuple[str, str]] = []
        self.recipients: list[str] = []

    def get_request(self) -> tuple[socket.socket, object]:
        conn, addr = super().get_request()
        if self.implicit and self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
        return conn, addr

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that refuses the certificate ends its session abruptly; the test checks what was sent

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def running(server: SmtpServer) -> Iterator[SmtpServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running(SmtpServer()) as server:
        yield server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.fixture(scope="module")
def brief_html() -> str:
    return brief.render(brief.build_brief("2026Q3", METRICS, CONCLUSION))


@pytest.fixture
def quarter(tmp_path: Path, brief_html: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A quarter folder as `kpi report --pdf` leaves it (the files mail reads, and the manifest)."""
    for name in ("KPI_SMTP", "KPI_SMTP_USER", "KPI_SMTP_PASSWORD", "KPI_MAIL_FROM"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "reports" / "2026Q3"
    folder.mkdir(parents=True)
    (folder / "brief.html").write_text(brief_html, encoding="utf-8")
    (folder / "index.html").write_text(f"<footer>{outdir.INDEX_MARK} 2026-11-05</footer>")
    (folder / "report.html").write_text("<!DOCTYPE html><title>2026Q3 report</title><p>one file</p>")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4\n% the report\n%%EOF\n")
    outdir.write_manifest(folder, outdir.manifest_of(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=default)  # type: ignore[return-value]


def _check_message(msg: EmailMessage, folder: Path, attached: str, words: str = "2026Q3 revenue was $900") -> None:
    """The brief as HTML with its chart inline by cid, the same brief as text, the report attached."""
    assert msg["Subject"] == "2026Q3 in brief · Marketing KPI kit"
    assert msg["X-Mailer"].startswith("Marketing KPI kit ")
    html = msg.get_body(("html",)).get_content()
    assert "2026Q3 in brief" in html and "data:image" not in html
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert len(cids) == 1
    related = {part["Content-ID"].strip("<>"): part for part in msg.walk() if part["Content-ID"]}
    chart = related[cids[0]]
    assert chart.get_content_type() == "image/png" and chart.get_content_disposition() == "inline"
    original = re.search(r"data:image/png;base64,([^\"']+)", (folder / "brief.html").read_text()).group(1)
    assert chart.get_content() == base64.b64decode(original)
    text = msg.get_body(("plain",)).get_content()
    assert "2026Q3 in brief" in text and words in text and "<" not in text
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == f"marketing-kpis-2026Q3{Path(attached).suffix}"
    assert attachment.get_content_disposition() == "attachment"
    content = attachment.get_content()
    assert (content if isinstance(content, bytes) else content.encode()) == (folder / attached).read_bytes()


def test_kpi_send_delivers_the_brief_with_the_pdf(quarter: Path, smtp: SmtpServer, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KPI_SMTP_USER", "kpi-mailer")
    monkeypatch.setenv("KPI_SMTP_PASSWORD", "s3cret-from-env")
    to = ["cmo@example.com", "Chief Financial Officer <cfo@example.com>"]
    args = ["send", str(quarter), "--to", *to, "--smtp", smtp.address, "--from", "KPI <kpi@example.com>"]
    assert main(args) == 0
    assert smtp.logins == [("kpi-mailer", "s3cret-from-env")]
    assert smtp.recipients == ["cmo@example.com", "cfo@example.com"]
    (raw,) = smtp.messages
    msg = _parse(raw)
    _check_message(msg, quarter, "report.pdf")
    assert msg["To"] == "cmo@example.com, Chief Financial Officer <cfo@example.com>"
    out = capsys.readouterr()
    assert "sent `2026Q3 in brief" in out.out and "marketing-kpis-2026Q3.pdf" in out.out
    assert b"s3cret" not in raw and "s3cret" not in out.out + out.err


def test_without_a_pdf_the_one_file_is_attached(quarter: Path, smtp: SmtpServer, monkeypatch) -> None:
    (quarter / "report.pdf").unlink()
    outdir.write_manifest(quarter, outdir.manifest_of(quarter))
    monkeypatch.setenv("KPI_SMTP", smtp.address)  # the server from the environment
    monkeypatch.setenv("KPI_MAIL_FROM", "kpi@example.com")
    assert main(["send", str(quarter), "--to", "cmo@example.com"]) == 0
    assert "AUTH" not in smtp.commands  # no credentials in the environment: no login
    msg = _parse(smtp.messages[0])
    _check_message(msg, quarter, "report.html")
    assert next(msg.iter_attachments()).get_content_type() == "text/html"


def test_a_dry_run_writes_the_eml_and_sends_nothing(quarter: Path, smtp: SmtpServer, capsys) -> None:
    args = ["send", str(quarter), "--to", "cmo@example.com", "--smtp", smtp.address, "--from", "kpi@example.com"]
    assert main([*args, "--dry-run"]) == 0
    eml = Path.cwd() / "kpi-2026Q3.eml"
    _check_message(_parse(eml.read_bytes()), quarter, "report.pdf")
    assert smtp.messages == [] and smtp.commands == []
    assert f"wrote {eml}" in capsys.readouterr().out
    assert main([*args, "--dry-run"]) == 0  # the kit's own .eml is replaced
    eml.write_text("my draft")
    assert main([*args, "--dry-run"]) == 2  # a file of the user's is not
    assert eml.read_text() == "my draft"
    assert "is not a message the kit wrote" in capsys.readouterr().err


def test_the_newest_quarter_is_sent_as_latest(quarter: Path, smtp: SmtpServer) -> None:
    older = quarter.parent / "2026Q2"
    shutil.copytree(quarter, older)
    (quarter.parent / "notes").mkdir()
    assert mail.resolve_folder(quarter.parent / "latest") == quarter
    assert main(["send", str(quarter.parent / "latest"), "--to", "a@example.com", "--smtp", smtp.address,
                 "--from", "kpi@example.com"]) == 0  # fmt: skip
    assert _parse(smtp.messages[0])["Subject"].startswith("2026Q3 in brief")


def _edit_brief(folder: Path) -> None:
    (folder / "brief.html").write_text("<title>2026Q3</title><p>numbers someone typed</p>")


def _not_a_report(folder: Path) -> None:
    (folder / ".kpi-manifest.json").unlink()
    (folder / "index.html").write_text("<p>my page</p>")


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (_edit_brief, [], r"`brief.html` \(changed since the kit wrote it\): not sent"),
        (_not_a_report, [], "is not a quarter the kit rendered"),
        (None, ["--to", "cmo@example.com\nBcc: everyone@example.com"], "is not a mail address"),
        (None, ["--to", "not an address"], "is not a mail address"),
        (None, ["--smtp", "localhost:99999"], r"port 99999 is outside 1-65535"),
    ],
    ids=["edited-brief", "not-a-report", "header-injection", "bad-address", "bad-port"],
)
def test_what_cannot_be_sent_is_refused_before_connecting(
    quarter: Path, smtp: SmtpServer, capsys, change, extra: list[str], message: str
) -> None:
    if change is not None:
        change(quarter)
    args = ["send", str(quarter), "--to", "cmo@example.com", "--smtp", smtp.address, "--from", "kpi@example.com"]
    assert main([*args, *extra]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert smtp.commands == []


def test_no_sender_is_refused(quarter: Path, capsys) -> None:
    assert main(["send", str(quarter), "--to", "cmo@example.com", "--dry-run"]) == 2
    assert "pass `--from ADDR` or set `KPI_MAIL_FROM`" in capsys.readouterr().err


def test_a_password_is_not_sent_unencrypted_to_another_machine(
    quarter: Path, smtp: SmtpServer, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(mail, "_LOCAL", frozenset())  # as if the test server were another machine
    monkeypatch.setenv("KPI_SMTP_USER", "kpi-mailer")
    monkeypatch.setenv("KPI_SMTP_PASSWORD", "s3cret-from-env")
    args = ["send", str(quarter), "--to", "cmo@example.com", "--smtp", smtp.address, "--from", "kpi@example.com"]
    assert main(args) == 1
    assert "offers no encryption (STARTTLS), so the password" in capsys.readouterr().err
    assert "AUTH" not in smtp.commands and smtp.messages == []


def _send_with_login(server: SmtpServer, quarter: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(mail, "_LOCAL", frozenset())  # as if the test server were another machine
    monkeypatch.setenv("KPI_SMTP_USER", "kpi-mailer")
    monkeypatch.setenv("KPI_SMTP_PASSWORD", "s3cret-from-env")
    args = ["send", str(quarter), "--to", "cmo@example.com", "--smtp", server.address, "--from", "kpi@example.com"]
    return main(args)


def test_starttls_is_used_when_offered_and_the_password_goes_encrypted(
    quarter: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test certificate, as a real CA's
    with running(SmtpServer(tls=_server_tls(certificate))) as server:
        assert _send_with_login(server, quarter, monkeypatch) == 0
    assert server.commands[:3] == ["EHLO", "STARTTLS", "EHLO+tls"]
    assert "AUTH+tls" in server.commands and "AUTH" not in server.commands
    assert server.logins == [("kpi-mailer", "s3cret-from-env")]
    _check_message(_parse(server.messages[0]), quarter, "report.pdf")


def test_a_certificate_the_machine_does_not_trust_is_refused(
    quarter: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A server whose certificate no trusted authority signed (a man in the middle, say) gets neither
    the password nor the report."""
    with running(SmtpServer(tls=_server_tls(certificate))) as server:
        assert _send_with_login(server, quarter, monkeypatch) == 1
    assert "cannot send through" in capsys.readouterr().err
    assert server.logins == [] and server.messages == []


def test_port_465_speaks_tls_from_the_start(
    quarter: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    try:
        server = SmtpServer(port=465, tls=_server_tls(certificate), implicit=True)
    except OSError as exc:  # not root, or the port is taken
        pytest.skip(f"cannot listen on 127.0.0.1:465 here ({exc.strerror})")
    with running(server):
        assert _send_with_login(server, quarter, monkeypatch) == 0
    assert server.commands[0] == "EHLO+tls" and "STARTTLS" not in server.commands
    assert server.logins == [("kpi-mailer", "s3cret-from-env")]
    _check_message(_parse(server.messages[0]), quarter, "report.pdf")


def test_an_unreachable_server_fails_the_run(quarter: Path, capsys) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["send", str(quarter), "--to", "cmo@example.com", "--smtp", f"127.0.0.1:{port}", "--from", "k@example.com"]
    assert main(args) == 1
    assert f"cannot send through `127.0.0.1:{port}`" in capsys.readouterr().err


@pytest.mark.slow
def test_the_sample_report_by_mail(sample_report: SampleReport, smtp: SmtpServer) -> None:
    folder = sample_report.folder
    args = ["send", str(folder), "--to", "cmo@example.com", "--smtp", smtp.address, "--from", "kpi@example.com"]
    assert main(args) == 0
    msg = _parse(smtp.messages[0])
    _check_message(msg, folder, "report.pdf", words="2026Q3 revenue was $3,073,915")
    assert "Largest movements on 2026Q2" in msg.get_body(("html",)).get_content()
