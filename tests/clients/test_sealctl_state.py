"""sealctl's state directory (``clients.sealctl.hub.State``): the files it keeps between runs."""
from __future__ import annotations

import threading

from clients.sealctl import hub as hubapi


def test_two_writers_saving_state_at_once_leave_a_whole_file(tmp_path):
    """Two sealctl runs may save the same state file at the same moment (the nonce after each
    answer): each writes its own temporary file and renames it, so neither fails and the file is
    always one whole version, readable only by its owner."""
    state = hubapi.State(str(tmp_path / "state"))
    errors = []

    def writer(tag: str):
        try:
            for i in range(300):
                state.save("dpop-nonce.json", {"https://hub.example": f"{tag}-{i}-" + "x" * 2000})
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    saved = state.load("dpop-nonce.json")
    assert saved["https://hub.example"].endswith("-299-" + "x" * 2000)
    path = tmp_path / "state" / "dpop-nonce.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["dpop-nonce.json"]  # no temporary left
