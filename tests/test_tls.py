"""TLS over tcpio transports (ssl= on connect and serve), asyncio and uvloop.

The certificate is made here (self-signed, throwaway) and the oracle is
Python's ssl module: the client verifies the chain and the host name, both
sides see the same cipher, and a client that does not trust the certificate
fails verification.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import tempfile

import pytest
from fake_core import KINDS, both_loops, make_pair, stream_echo, write_and_read_back

SERVER_IP = "10.0.0.1"

# every test runs on the fake core and on real Stacks over a MemoryWire
pytestmark = pytest.mark.parametrize("kind", KINDS)


def make_cert(ip: str = SERVER_IP, name: str = "tcpio.test") -> tuple[bytes, bytes]:
    """A throwaway self-signed certificate (PEM cert, PEM key) for ``ip``/``name``."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def tls_contexts(ip: str = SERVER_IP) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting the server's throwaway cert)."""
    cert_pem, key_pem = make_cert(ip)
    with tempfile.TemporaryDirectory() as d:
        cert_file, key_file = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cert_file, "wb") as f:
            f.write(cert_pem)
        with open(key_file, "wb") as f:
            f.write(key_pem)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
    return server_ctx, client_ctx


@both_loops
async def test_tls_echo_streams(kind: str) -> None:
    server_ctx, client_ctx = tls_contexts()
    srv, cli = await make_pair(kind, sndbuf=8192, rcvbuf=16384)
    async with await srv.start_server(stream_echo, SERVER_IP, 443, ssl=server_ctx):
        reader, writer = await cli.open_connection(SERVER_IP, 443, ssl=client_ctx)
        ssl_object = writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        assert writer.get_extra_info("peername") == (SERVER_IP, 443)
        payload = os.urandom(300_000)
        assert await write_and_read_back(reader, writer, payload) == payload
        writer.close()
        await writer.wait_closed()


@both_loops
async def test_tls_server_hostname_checked(kind: str) -> None:
    server_ctx, client_ctx = tls_contexts()
    srv, cli = await make_pair(kind)
    async with await srv.start_server(stream_echo, SERVER_IP, 443, ssl=server_ctx):
        # the certificate names tcpio.test too: verifying that name works
        _, writer = await cli.open_connection(SERVER_IP, 443, ssl=client_ctx,
                                              server_hostname="tcpio.test")
        writer.close()
        # a name the certificate does not carry fails verification
        with pytest.raises(ssl.SSLCertVerificationError):
            await cli.open_connection(SERVER_IP, 443, ssl=client_ctx,
                                      server_hostname="other.test")


@both_loops
async def test_untrusted_certificate_fails(kind: str) -> None:
    server_ctx, _ = tls_contexts()
    srv, cli = await make_pair(kind)
    async with await srv.start_server(stream_echo, SERVER_IP, 443, ssl=server_ctx):
        with pytest.raises(ssl.SSLCertVerificationError):
            await cli.open_connection(SERVER_IP, 443, ssl=ssl.create_default_context())


@both_loops
async def test_server_hostname_without_ssl_is_refused(kind: str) -> None:
    _, cli = await make_pair(kind)
    with pytest.raises(ValueError):
        await cli.open_connection(SERVER_IP, 443, server_hostname="x")


def starttls_server(upgrade_server):  # type: ignore[no-untyped-def]
    """A STARTTLS-style handler: plaintext line, upgrade, echo a line over TLS."""
    done = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await upgrade_server(writer)
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()
            done.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - hand it to the test
            done.set_exception(exc)

    return handler, done


@both_loops
@pytest.mark.parametrize("how", ["writer.start_tls", "tcpio.streams.start_tls"])
async def test_starttls_upgrade_in_place(kind: str, how: str) -> None:
    """``StreamWriter.start_tls`` (3.11) goes through ``loop.start_tls``: the
    default loop accepts our transport as a kernel one (_start_tls_compatible);
    uvloop refuses foreign transports, so there ``tcpio.streams.start_tls``
    is the way (it works on both)."""
    from tcpio import streams

    loop = asyncio.get_running_loop()
    if how == "writer.start_tls" and not isinstance(loop, asyncio.BaseEventLoop):
        pytest.skip("uvloop's start_tls refuses transports it did not make")
    server_ctx, client_ctx = tls_contexts()
    srv, cli = await make_pair(kind)

    async def upgrade(writer, ctx, **kw):  # type: ignore[no-untyped-def]
        if how == "writer.start_tls":
            await writer.start_tls(ctx, **kw)
        else:
            await streams.start_tls(writer, ctx, **kw)

    handler, done = starttls_server(lambda w: upgrade(w, server_ctx))
    async with await srv.start_server(handler, SERVER_IP, 25):
        reader, writer = await cli.open_connection(SERVER_IP, 25)
        try:
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO\n"
            await upgrade(writer, client_ctx, server_hostname=SERVER_IP)
            assert isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
            writer.write(b"secret\n")
            assert await reader.readline() == b"secret\n"
            await done
        finally:
            writer.close()      # else the server's wait_closed waits for it
