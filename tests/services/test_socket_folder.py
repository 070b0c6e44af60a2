"""`agentrl env up`'s socket folder, checked with the server's own Unix path check (no Docker)."""

from __future__ import annotations

import re

import pytest

from agentrl.env.container import EnvContainerError, socket_folder


def test_the_longest_socket_path_of_the_folder_is_checked(tmp_path):
    # DIR/1/env.sock is 11 bytes longer than DIR: make it exactly the limit, 107 bytes.
    folder = tmp_path / ("d" * (107 - len(str(tmp_path)) - 1 - len("/1/env.sock")))
    assert len(str(folder / "1" / "env.sock")) == 107
    assert socket_folder(folder, 2) == (folder, False) and folder.is_dir()  # made, not a temporary one
    with pytest.raises(EnvContainerError) as caught:
        socket_folder(folder, 11)  # DIR/10/env.sock: one byte over
    assert str(caught.value) == f"--dir: socket path {folder}/10/env.sock is 108 bytes; the limit is 107"


def test_a_temporary_folder_is_made_when_none_is_given():
    path, made = socket_folder(None, 4)
    try:
        assert made and path.is_dir() and re.fullmatch(r"agentrl-env-.+", path.name)
    finally:
        path.rmdir()
