"""The local backend's prerequisites fail with a clear message."""

from __future__ import annotations

import pytest

from agentrl.sandbox import SandboxUnavailable, create, isolation


@pytest.mark.asyncio
async def test_missing_bubblewrap_is_a_clear_unavailable(monkeypatch):
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match=r"needs bubblewrap .*apt-get install -y bubblewrap"):
        await create("local")


def test_seccomp_program_jumps_stay_inside_it():
    program = isolation.seccomp_program()
    if program is None:
        pytest.skip("no filter written for this architecture")
    ops = [program[i : i + 8] for i in range(0, len(program), 8)]
    jumps = [(i, op) for i, op in enumerate(ops) if op[0] & 0x07 == 0x05]  # BPF_JMP class
    assert len(jumps) == 3 + len(isolation.BLOCKED_X86_64) + 2  # arch, x32, clone3; list; clone, its flags
    for index, op in jumps:
        assert index + 1 + max(op[2], op[3]) < len(ops)  # every branch lands on an instruction
    assert ops[-1][0] == ops[-2][0] == 0x06  # ends in returns: allow, deny
    assert len(ops) == 8 + len(isolation.BLOCKED_X86_64) + 5
