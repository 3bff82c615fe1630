"""What `make run` does about virus scanning (common.local_clamd.plan)."""

from __future__ import annotations

from common import local_clamd
from common.settings import Settings


def test_only_official_signature_files_count(tmp_path):
    empty, custom, official = tmp_path / "empty", tmp_path / "custom", tmp_path / "official"
    for d in (empty, custom, official):
        d.mkdir()
    (custom / "test.hdb").write_text("44d88612fea8a8f36de82e1278abb02f:68:Eicar\n")
    (official / "daily.cld").write_bytes(b"ClamAV-VDB")
    assert local_clamd.signature_database((empty, custom)) is None
    assert local_clamd.signature_database((empty, official)) == official


def test_plan_follows_the_settings():
    off = local_clamd.plan(Settings(virus_scan="off"))
    assert off.clamd is None and "VIRUS_SCAN=off" in off.message
    given = local_clamd.plan(Settings(clamd_url="tcp://scanner:3310"))
    assert given.clamd is None and "tcp://scanner:3310" in given.message
    auto = local_clamd.plan(Settings(clamd_url=""))
    if local_clamd.clamd_executable() and local_clamd.signature_database():
        assert auto.clamd and auto.database
    else:  # this machine: one line saying scanning is off and how to turn it on
        assert auto.clamd is None
        assert "virus scanning is off" in auto.message and "freshclam" in auto.message


def test_config_reads_the_system_database_in_place(tmp_path):
    conf, sock = local_clamd.write_config(
        tmp_path / "clamd", tmp_path / "db", max_upload=50 * 1024 * 1024
    )
    text = conf.read_text()
    assert f"DatabaseDirectory {tmp_path / 'db'}\n" in text
    assert f"LocalSocket {sock}\n" in text and "StreamMaxLength 52428800\n" in text
    assert list((tmp_path / "clamd").glob("*.?db")) == []  # never a signature file of its own
