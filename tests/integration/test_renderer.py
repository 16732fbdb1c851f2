"""The agent's renderer: queued renders share kustomize processes, results stay each unit's."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from agent.renderer import Renderer
from bench import workload
from fleet.models.kustomization import KustomizationSpec
from fleet.render import kustomize
from fleet.render.kustomize import RenderError
from tests.integration.test_render_batch import counting_kustomize, starts

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures("kustomize_built"),
]


def unit_spec(index: int) -> KustomizationSpec:
    return KustomizationSpec.model_validate(workload.kustomization(index, "1m")["spec"])


async def test_queued_renders_share_processes_and_get_their_own_objects(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    workload.write_repository(root, 40)
    binary, log = counting_kustomize(tmp_path)
    renderer = Renderer(1, max_batch=10, kustomize=binary)
    results: dict[int, list[str]] = {}

    async def render(index: int) -> None:
        rendered = await renderer.render(root, unit_spec(index), {})
        results[index] = [o["metadata"]["name"] for o in rendered.objects]

    async with anyio.create_task_group() as tasks:
        for index in range(40):
            tasks.start_soon(render, index)
    # One slot, forty units queued for it: batches of ten (the first may go alone, if it
    # got the slot before the others queued).
    assert 4 <= starts(log) <= 5
    for index in range(40):
        assert results[index] == [f"app-{index:04d}"] * 4
        expected = kustomize.render(root, unit_spec(index), {}).objects
        assert (await renderer.render(root, unit_spec(index), {})).objects == expected


async def test_a_unit_alone_renders_at_once_and_errors_reach_their_unit(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    workload.write_repository(root, 2)
    binary, log = counting_kustomize(tmp_path)
    renderer = Renderer(2, kustomize=binary)
    assert len((await renderer.render(root, unit_spec(0), {})).objects) == 4
    assert starts(log) == 1
    missing = KustomizationSpec.model_validate(
        {"interval": "1m", "path": "./apps/nowhere", "prune": True}
    )
    outcomes: list[object] = []

    async def render(spec: KustomizationSpec) -> None:
        try:
            outcomes.append(len((await renderer.render(root, spec, {})).objects))
        except RenderError as error:
            outcomes.append(error.message)

    async with anyio.create_task_group() as tasks:
        for spec in (unit_spec(1), missing, unit_spec(0)):
            tasks.start_soon(render, spec)
    assert sorted(map(str, outcomes)) == ["4", "4", "path not found in the repository"]


async def test_a_cancelled_unit_does_not_strand_the_others(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    workload.write_repository(root, 12)
    renderer = Renderer(1, max_batch=4)
    done: list[int] = []

    async def render(index: int) -> None:
        await renderer.render(root, unit_spec(index), {})
        done.append(index)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for index in range(12):
                tasks.start_soon(render, index)
            with anyio.CancelScope() as doomed:
                doomed.cancel()
                await renderer.render(root, unit_spec(0), {})
    assert sorted(done) == list(range(12))
    assert not renderer._waiting  # nothing left queued
