"""The sftp sink against a real sshd on loopback (its own host key, one authorized key)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from tests.support.sink_servers import KEY_PASSPHRASE, SshServer, new_ssh_server

from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.sinks.files import file_stem
from tcwebhook.sinks.sftp import SftpSink

from .conftest import make_event

pytestmark = pytest.mark.anyio


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    """The ERP's pick-up folder on the SFTP server (the server is local, so the test reads it)."""
    folder = tmp_path / "inbound"
    folder.mkdir()
    return folder


def sftp_sink(server: SshServer, remote_dir: Path, **overrides: Any) -> SftpSink:
    options: dict[str, Any] = {
        "port": server.port,
        "username": server.username,
        "private_key": server.client_key,
        "passphrase": KEY_PASSPHRASE,
        "known_hosts": server.known_hosts,
        "remote_dir": str(remote_dir),
        "timeout": 10.0,
    }
    options.update(overrides)
    return SftpSink("erp", "127.0.0.1", **options)


class TestDelivery:
    """One file per event, renamed into place, never overwritten; one connection for many files."""

    async def test_file_in_place_and_redelivery(self, ssh_server: SshServer, drop: Path) -> None:
        sink = sftp_sink(ssh_server, drop)
        event = make_event()
        try:
            assert "is a folder" in await sink.probe()
            await sink.deliver(event)
            target = drop / (file_stem(event) + ".json")
            assert target.read_bytes() == event.body
            target.write_bytes(b"picked up and changed by the ERP")
            await sink.deliver(event)  # a redelivery: recognised by name, nothing overwritten
            assert target.read_bytes() == b"picked up and changed by the ERP"
            second = replace(event, event_id="01JEVENT0000000000000000CD", seq=43)
            await sink.deliver(second)
            connection = sink._conn
            await sink.deliver(replace(event, event_id="01JEVENT0000000000000000EF", seq=44))
            assert sink._conn is connection  # kept open between deliveries
        finally:
            await sink.close()
        assert sorted(os.listdir(drop)) == sorted(
            file_stem(e) + ".json"
            for e in (event, second, replace(event, event_id="01JEVENT0000000000000000EF", seq=44))
        )

    async def test_leftover_of_a_crashed_upload_is_replaced(self, ssh_server: SshServer, drop: Path) -> None:
        event = make_event()
        name = file_stem(event) + ".json"
        (drop / f".{name}.tmp").write_bytes(b'{"half an upl')  # what a kill between upload and rename leaves
        sink = sftp_sink(ssh_server, drop)
        try:
            await sink.deliver(event)
        finally:
            await sink.close()
        assert os.listdir(drop) == [name]
        assert (drop / name).read_bytes() == event.body

    async def test_filename_pattern(self, ssh_server: SshServer, drop: Path) -> None:
        sink = sftp_sink(ssh_server, drop, filename="{kind}-{number}-{seq}-{eventId}{ext}")
        try:
            await sink.deliver(make_event())
        finally:
            await sink.close()
        assert os.listdir(drop) == ["order-PO-2025-000123-000000042-01JEVENT0000000000000000AB.json"]

    def test_filename_must_name_the_event(self, ssh_server: SshServer, drop: Path) -> None:
        with pytest.raises(StartupError, match=r"^Sink 'erp': filename must contain \{eventId\} or \{stem\}"):
            sftp_sink(ssh_server, drop, filename="{number}.json")
        with pytest.raises(StartupError, match=r"^Sink 'erp': filename: \{orderNumber\} is not a field"):
            sftp_sink(ssh_server, drop, filename="{orderNumber}-{eventId}")


class TestRefusals:
    """What the operator must fix is permanent (and refused at start-up); an absent server is transient
    and a lost connection is opened again."""

    async def test_key_not_authorized(self, ssh_server: SshServer, drop: Path, tmp_path: Path) -> None:
        other = tmp_path / "other_key"
        other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
        sink = sftp_sink(ssh_server, drop, private_key=other, passphrase=None)
        try:
            with pytest.raises(PermanentError, match="refused the credentials"):
                await sink.deliver(make_event())
            with pytest.raises(StartupError, match=r"^Sink 'erp': .*fix username and password/private_key\.$"):
                await sink.probe()
        finally:
            await sink.close()

    async def test_host_key_not_pinned(self, ssh_server: SshServer, drop: Path, tmp_path: Path) -> None:
        pinned = tmp_path / "known_hosts"
        stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[:2]
        pinned.write_text(f"[127.0.0.1]:{ssh_server.port} {' '.join(stranger)}\n")
        sink = sftp_sink(ssh_server, drop, known_hosts=pinned)
        try:
            with pytest.raises(PermanentError, match="not the one in known_hosts"):
                await sink.deliver(make_event())
            with pytest.raises(StartupError, match="add the server's key to known_hosts"):
                await sink.probe()
        finally:
            await sink.close()
        assert os.listdir(drop) == []

    async def test_missing_remote_dir(self, ssh_server: SshServer, drop: Path) -> None:
        sink = sftp_sink(ssh_server, drop / "missing")
        try:
            with pytest.raises(StartupError, match=r"remote_dir '.*missing' is not a folder .*create it"):
                await sink.probe()
            with pytest.raises(PermanentError, match="No such file"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    @pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
    async def test_permission_denied(self, ssh_server: SshServer, drop: Path) -> None:
        os.chmod(drop, 0o500)
        sink = sftp_sink(ssh_server, drop)
        try:
            with pytest.raises(PermanentError, match=r"(?i)permission denied"):
                await sink.deliver(make_event())
        finally:
            await sink.close()
            os.chmod(drop, 0o700)

    async def test_server_down_then_back(self, drop: Path) -> None:
        server = new_ssh_server()
        try:
            sink = sftp_sink(server, drop)
            try:
                await sink.deliver(make_event())
                server.stop()
                with pytest.raises(TransientError, match=r"127\.0\.0\.1"):
                    await sink.deliver(replace(make_event(), event_id="01JEVENT0000000000000000CD", seq=43))
                with pytest.raises(StartupError, match="start the server or fix host and port"):
                    await sink.probe()
                server.start()
                await sink.deliver(replace(make_event(), event_id="01JEVENT0000000000000000CD", seq=43))
            finally:
                await sink.close()
        finally:
            server.destroy()
        assert len(os.listdir(drop)) == 2

    async def test_connection_lost_while_idle_is_reopened(self, drop: Path) -> None:
        # A server restart between two deliveries: no request was waiting to see the connection
        # go, so the next delivery must notice it and connect again, not fail on the dead session.
        server = new_ssh_server()
        try:
            sink = sftp_sink(server, drop)
            try:
                await sink.deliver(make_event())
                connection = sink._conn
                assert connection is not None
                await asyncio.to_thread(server.stop)
                async with asyncio.timeout(10):
                    await connection.wait_closed()
                await asyncio.to_thread(server.start)
                for seq in (43, 44):
                    await sink.deliver(replace(make_event(), event_id=f"01JEVENT00000000000000000{seq}", seq=seq))
                assert sink._conn is not connection
            finally:
                await sink.close()
        finally:
            server.destroy()
        assert len(os.listdir(drop)) == 3


class TestSettings:
    """Unusable key files are refused when the sink is built."""

    def test_missing_key_files(self, ssh_server: SshServer, drop: Path, tmp_path: Path) -> None:
        unreadable_key = tmp_path / "absent"
        with pytest.raises(StartupError, match=r"^Sink 'erp': cannot read known_hosts .*ssh-keyscan"):
            sftp_sink(ssh_server, drop, known_hosts=unreadable_key)
        with pytest.raises(StartupError, match=r"^Sink 'erp': cannot read private_key"):
            sftp_sink(ssh_server, drop, private_key=unreadable_key)

    def test_wrong_passphrase(self, ssh_server: SshServer, drop: Path) -> None:
        with pytest.raises(StartupError, match="check the file and passphrase"):
            sftp_sink(ssh_server, drop, passphrase="not-it")
