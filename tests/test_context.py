"""tracer.context(...): values carried by every call started inside, sync and async, in tasks."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from asynctelemetry import AsyncTracer, ConfigError


async def test_sync_and_async_blocks_set_session_route_and_attributes() -> None:
    """Both block forms apply; outside the block nothing is carried."""
    async with AsyncTracer(in_memory=True) as tracer:
        with tracer.context(session_id="s1", route_name="r1", team="blue"):
            async with tracer.llm_call(model="gpt-4o"):
                pass
        async with tracer.context(session_id="s2"):
            async with tracer.llm_call(model="gpt-4o"):
                pass
        async with tracer.llm_call(model="gpt-4o"):
            pass
        first, second, outside = tracer.spans
    assert (first.session_id, first.route_name, first.attributes) == ("s1", "r1", {"team": "blue"})
    assert (second.session_id, second.route_name) == ("s2", None)
    assert (outside.session_id, outside.route_name, outside.attributes) == (None, None, {})


async def test_explicit_arguments_win_and_blocks_nest() -> None:
    """An inner block overrides what it sets and inherits the rest; llm_call arguments win."""
    async with AsyncTracer(in_memory=True) as tracer:
        with tracer.context(session_id="outer", route_name="r", a=1, b="x"):
            with tracer.context(session_id="inner", b="y"):
                async with tracer.llm_call(model="m"):
                    pass
                async with tracer.llm_call(model="m", session_id="mine", route_name="own", a=9):
                    pass
            async with tracer.llm_call(model="m"):
                pass
        nested, explicit, restored = tracer.spans
    assert (nested.session_id, nested.route_name, nested.attributes) == (
        "inner",
        "r",
        {"a": 1, "b": "y"},
    )
    assert (explicit.session_id, explicit.route_name) == ("mine", "own")
    assert explicit.attributes == {"a": 9, "b": "y"}
    assert (restored.session_id, restored.attributes) == ("outer", {"a": 1, "b": "x"})


async def test_tasks_created_inside_inherit_and_others_do_not() -> None:
    """A task created inside the block carries its values even after the block ended; a task
    created before it does not."""
    async with AsyncTracer(in_memory=True) as tracer:
        gate = asyncio.Event()

        async def call(name: str) -> None:
            await gate.wait()
            async with tracer.llm_call(model=name):
                pass

        before = asyncio.create_task(call("before"))
        with tracer.context(session_id="s1"):
            inside = asyncio.create_task(call("inside"))
        gate.set()
        await asyncio.gather(before, inside)
        sessions = {record.request_model: record.session_id for record in tracer.spans}
    assert sessions == {"before": None, "inside": "s1"}


async def test_the_same_block_can_be_reentered() -> None:
    """One context object entered twice (nested) restores each level on exit."""
    async with AsyncTracer(in_memory=True) as tracer:
        block = tracer.context(session_id="s")
        with block, block:
            pass
        async with tracer.llm_call(model="m"):
            pass
        assert tracer.spans[0].session_id is None
    assert block.session_id == "s" and block.route_name is None


async def test_exit_in_another_context_does_not_raise() -> None:
    """Entered in one context, left in a copy of it (a generator resumed elsewhere): no error."""
    async with AsyncTracer() as tracer:
        block = tracer.context(session_id="s")
        block.__enter__()
        contextvars.copy_context().run(block.__exit__, None, None, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"session_id": 5}, id="session not text"),
        pytest.param({"route_name": ["r"]}, id="route not text"),
        pytest.param({"team": object()}, id="attribute of a bad type"),
        pytest.param({"ratio": float("nan")}, id="non-finite attribute"),
        pytest.param({"note": "x" * 5000}, id="attribute too long"),
        pytest.param({"user_id": 7}, id="user not text"),
        pytest.param({"tags": "beta"}, id="tags as one string"),
        pytest.param({"tags": ("ok", "")}, id="empty tag"),
        pytest.param({"tags": ("x" * 257,)}, id="tag too long"),
        pytest.param({"tags": [f"t{i}" for i in range(65)]}, id="too many tags"),
    ],
)
async def test_bad_values_are_refused_at_once(kwargs: dict[str, object]) -> None:
    """A value no record may hold is a ConfigError when the block is made, not at a call."""
    async with AsyncTracer() as tracer:
        with pytest.raises(ConfigError):
            tracer.context(**kwargs)  # type: ignore[arg-type]


async def test_user_and_tags_follow_calls_into_tasks_and_nest() -> None:
    """``user_id`` and ``tags`` reach every call inside, across awaits and into tasks; an inner
    block's user wins and its tags add to the outer ones (each once, outer first)."""
    async with AsyncTracer(in_memory=True) as tracer:
        with tracer.context(user_id="u1", tags=("a", "b")):

            async def in_task() -> None:
                await asyncio.sleep(0)
                async with tracer.llm_call(model="m-task"):
                    pass

            async with tracer.context(user_id="u2", tags=["b", "c"]):
                await asyncio.create_task(in_task())
            async with tracer.llm_call(model="m-outer"):
                pass
        async with tracer.llm_call(model="m-none"):
            pass
        got = {c.model: (c.user_id, c.tags) for c in tracer.spans}
    assert got == {
        "m-task": ("u2", ("a", "b", "c")),
        "m-outer": ("u1", ("a", "b")),
        "m-none": (None, ()),
    }


async def test_the_message_of_a_failure_is_kept_bounded_and_cancellation_has_none() -> None:
    """The exception's text becomes ``error_message`` (cut to MAX_ERROR_MESSAGE with an
    ellipsis); ``call.fail(..., message=)`` sets one; a cancelled call has none."""
    from asynctelemetry._record import MAX_ERROR_MESSAGE

    async with AsyncTracer(in_memory=True) as tracer:
        with pytest.raises(RuntimeError):
            async with tracer.llm_call(model="long"):
                raise RuntimeError("x" * 5000)
        async with tracer.llm_call(model="handled") as call:
            call.fail("RateLimitError", status_code=429, message="slow down")
        with pytest.raises(KeyError):
            async with tracer.llm_call(model="empty"):
                raise KeyError

        async def cancelled() -> None:
            async with tracer.llm_call(model="cancelled"):
                await asyncio.sleep(10)

        task = asyncio.create_task(cancelled())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        got = {c.model: c for c in tracer.spans}
    long = got["long"].error_message
    assert long is not None and len(long) == MAX_ERROR_MESSAGE and long.endswith("…")
    assert (got["handled"].status, got["handled"].error_message) == ("error", "slow down")
    assert got["empty"].error_message is None and got["empty"].error_type == "KeyError"
    assert got["cancelled"].status == "cancelled" and got["cancelled"].error_message is None
