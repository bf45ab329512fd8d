"""The ``Swarm`` signature in memory (no Redis): JSON round trip, validation, member normalization, ids.

The app used here is installed against an unreachable Redis: anything that does I/O fails loudly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, chain, chord, group, signature
from celery.canvas import Signature
from pydantic import ValidationError

from mageflow_celery import (
    MageflowError,
    NotSerializableError,
    StateStoreError,
    Swarm,
    SwarmClosedError,
    SwarmConfig,
    TooManyTasksError,
    install,
    swarm,
)
from mageflow_celery.keys import (
    FINAL_STEP,
    MemberRef,
    callback_task_id,
    member_task_id,
    parse_member_task_id,
    step_task_id,
)

#: Nothing listens here: a call that talks to Redis raises.
UNREACHABLE = "redis://127.0.0.1:9/0"


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("unit", set_as_current=False, broker="memory://", backend="cache+memory://")
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    install(app, redis_url=UNREACHABLE)

    @app.task(name="t.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.collect", shared=False)
    def collect(results: list[Any]) -> None:
        return None

    yield app
    app.close()


def _swarm(app: Celery, **kwargs: Any) -> Swarm:
    add = app.tasks["t.add"]
    defaults: dict[str, Any] = {
        "tasks": [add.s(1, 2), add.s(3, 4)],
        "success_callbacks": [app.tasks["t.collect"].s()],
        "error_callbacks": [app.tasks["t.collect"].si([])],
        "config": SwarmConfig(max_concurrency=2, stop_after_n_failures=1),
        "task_name": "unit-swarm",
        "app": app,
        "tenant": "acme",
    }
    return swarm(**{**defaults, **kwargs})


# -- JSON round trip ---------------------------------------------------------------------------------


def test_a_swarm_survives_a_json_round_trip_as_an_equal_swarm(app: Celery) -> None:
    # Given a swarm with members, callbacks, config, a name and bound kwargs
    s = _swarm(app)

    # When it goes through JSON and back through celery.signature
    back = signature(json.loads(json.dumps(s)), app=app)

    # Then it is a Swarm equal to the original, with the same members, callbacks and config
    assert isinstance(back, Swarm)
    assert back == s
    assert [t.task for t in back.tasks] == ["t.add", "t.add"]
    assert [tuple(t.args) for t in back.tasks] == [(1, 2), (3, 4)]
    assert [c.task for c in back.success_callbacks] == ["t.collect"]
    assert back.error_callbacks[0].immutable
    assert back.config == SwarmConfig(max_concurrency=2, stop_after_n_failures=1)
    assert back.swarm_name == "unit-swarm"
    assert back.bound_kwargs == {"tenant": "acme"}


def test_a_frozen_swarm_keeps_its_id_through_a_json_round_trip(app: Celery) -> None:
    # Given a frozen swarm
    s = _swarm(app)
    s.freeze()

    # When it goes through JSON
    back = signature(json.loads(json.dumps(s)), app=app)

    # Then the copy denotes the same swarm
    assert isinstance(back, Swarm)
    assert back.id == s.id


# -- laziness (S1) -----------------------------------------------------------------------------------


def test_building_freezing_and_cloning_a_swarm_does_no_io(app: Celery) -> None:
    # Given an app whose state Redis is unreachable
    # When a swarm is built, frozen, cloned and made fresh
    s = _swarm(app)
    result = s.freeze()
    clone, fresh = s.clone(), s.fresh()

    # Then all of it worked in memory: ids are assigned, the clone keeps it, the fresh copy has none
    assert result.id == s.id
    assert isinstance(clone, Swarm) and clone.id == s.id
    assert isinstance(fresh, Swarm) and fresh.id is None

    # And the first stateful call is the one that reaches for Redis
    with pytest.raises(StateStoreError):
        s.apply_async()


def test_freeze_assigns_an_id_once_and_keeps_it(app: Celery) -> None:
    # Given an unfrozen swarm
    s = _swarm(app)
    assert s.id is None

    # When it is frozen twice
    first, second = s.freeze().id, s.freeze().id

    # Then the id is assigned once and lives in the options, as Celery's freeze does
    assert first == second == s.options["task_id"]


def test_a_swarm_id_containing_the_member_separator_still_gives_unambiguous_member_ids(app: Celery) -> None:
    # Given a swarm frozen with an id containing '~' (a nested swarm's id is its member id)
    s = _swarm(app)
    sid = s.freeze("outer~3~deadbeef").id

    # Then its members' ids parse back to it, and the id itself is no member of a swarm "outer"
    assert parse_member_task_id(member_task_id(sid, 5)) == MemberRef(sid, 5, FINAL_STEP)
    assert parse_member_task_id(sid) is None


# -- SwarmConfig validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"max_concurrency": 0},
        {"max_concurrency": -3},
        {"max_concurrency": "many"},
        {"stop_after_n_failures": 0},
        {"max_task_allowed": 0},
        {"lease_s": 0.5},
        {"on_lost": "ignore"},
        {"dispatch_timeout_s": 0},
        {"results": "all"},
        {"summary_max_failures": -1},
        {"idle_ttl_s": 0},
        {"result_ttl_s": 0},
        {"no_such_field": 1},
    ],
)
def test_invalid_swarm_config_values_raise_a_validation_error(app: Celery, fields: dict[str, Any]) -> None:
    # Given an invalid config value, when a SwarmConfig is built (directly or from a dict in swarm())
    # Then pydantic's ValidationError (a ValueError) is raised
    with pytest.raises(ValidationError) as info:
        SwarmConfig(**fields)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValidationError):
        swarm(tasks=[app.tasks["t.add"].s(1, 1)], config=fields, app=app)


def test_swarm_config_has_the_documented_defaults_and_is_frozen() -> None:
    # Given a default config
    cfg = SwarmConfig()

    # Then its values are those of the spec, and it cannot be changed
    assert (cfg.max_concurrency, cfg.stop_after_n_failures, cfg.max_task_allowed) == (30, None, None)
    assert (cfg.revoke_on_failure, cfg.lease_s, cfg.on_lost, cfg.dispatch_timeout_s) == (False, 60, "retry", 900)
    assert (cfg.results, cfg.summary_max_failures, cfg.idle_ttl_s, cfg.result_ttl_s) == ("succeeded", 100, 604800, None)
    with pytest.raises(ValidationError):
        cfg.max_concurrency = 3  # type: ignore[misc]


# -- members -----------------------------------------------------------------------------------------


def test_members_may_be_signatures_task_objects_task_names_and_chains(app: Celery) -> None:
    # Given members in every accepted form
    add = app.tasks["t.add"]
    members: list[Any] = [add.s(1, 2), add, "t.add", "unknown.by.this.app", chain(add.s(1, 1), add.s(5))]

    # When a swarm is built from them
    s = swarm(tasks=members, app=app)

    # Then each became one member signature (the chain stays one member)
    tasks = s.tasks
    assert [t.task for t in tasks[:4]] == ["t.add", "t.add", "t.add", "unknown.by.this.app"]
    assert tasks[4].get("subtask_type") == "chain"
    assert [step["task"] for step in tasks[4].tasks] == ["t.add", "t.add"]


def test_a_member_signature_keeps_its_own_callbacks_but_not_its_place_in_a_canvas(app: Celery) -> None:
    # Given a frozen signature with a link and a link_error, in a group
    sig = app.tasks["t.add"].s(1, 2)
    sig.freeze(group_id="g")
    sig.link(app.tasks["t.collect"].s())
    sig.link_error(app.tasks["t.collect"].si())

    # When it becomes a member
    member = swarm(tasks=[sig], app=app).tasks[0]

    # Then the member keeps its link and link_error (N2: Celery runs them after its own outcome) but no
    # task id or group of its own (its id is derived from the swarm); the original is untouched
    assert [cb["task"] for cb in member.options["link"]] == ["t.collect"]
    assert [cb["task"] for cb in member.options["link_error"]] == ["t.collect"]
    assert "task_id" not in member.options and "group_id" not in member.options
    assert sig.options["task_id"]


def test_groups_chords_and_chains_holding_them_become_nested_swarms_and_json_round_trip(app: Celery) -> None:
    # Given a group, a chord, a swarm, and a chain holding a group, as members
    add, collect = app.tasks["t.add"], app.tasks["t.collect"]
    s = swarm(
        tasks=[
            group(add.s(1, 1), add.s(2, 2)),
            chord([add.s(1, 1), add.s(2, 2), add.s(3, 3)], collect.s()),
            swarm(tasks=[add.s(1, 1)], config=SwarmConfig(max_concurrency=7), app=app),
            chain(add.s(1, 1), group(add.s(2), add.s(3))),
        ],
        app=app,
    )
    g, c, nested, ch = s.tasks

    # Then a group is a nested swarm running all its parts at once and failing at the first failure
    assert isinstance(g, Swarm)
    assert (g.config.max_concurrency, g.config.stop_after_n_failures, g.definition["closed"]) == (2, 1, True)
    assert [t["task"] for t in g.definition["tasks"]] == ["t.add", "t.add"]
    # And a chord is a chain of its header as such a nested swarm, then its body
    assert c.get("subtask_type") == "chain"
    header, body = (signature(t, app=app) for t in c.tasks)
    assert isinstance(header, Swarm) and header.config.max_concurrency == 3 and body.task == "t.collect"
    # And a swarm stays itself; a chain's group step becomes a nested swarm step
    assert isinstance(nested, Swarm) and nested.config.max_concurrency == 7
    assert [signature(t, app=app).get("subtask_type") for t in ch.tasks] == [None, "swarm"]
    # And the whole definition survives a JSON round trip
    assert Signature.from_dict(json.loads(json.dumps(s)), app=app) == s


@pytest.mark.parametrize("bad", [42, object(), None])
def test_members_that_are_not_tasks_are_refused(app: Celery, bad: Any) -> None:
    # Given something that is no signature, task or name, when it is a member, then MageflowError is raised
    with pytest.raises(MageflowError):
        swarm(tasks=[bad], app=app)


def test_members_the_serializer_cannot_encode_are_refused(app: Celery) -> None:
    # Given a member whose argument JSON cannot encode
    add = app.tasks["t.add"]

    # When the swarm is built, then NotSerializableError (also a TypeError) names the problem
    with pytest.raises(NotSerializableError) as info:
        swarm(tasks=[add.s(1, 2), add.s(object(), 2)], app=app)
    assert isinstance(info.value, TypeError)
    assert "json" in str(info.value)


def test_more_tasks_than_max_task_allowed_are_refused_at_once(app: Celery) -> None:
    # Given 3 tasks and max_task_allowed=2
    add = app.tasks["t.add"]

    # When the swarm is built, then TooManyTasksError (a SwarmClosedError) is raised; exactly 2 are accepted
    with pytest.raises(TooManyTasksError) as info:
        swarm(tasks=[add.s(i, i) for i in range(3)], config=SwarmConfig(max_task_allowed=2), app=app)
    assert isinstance(info.value, SwarmClosedError)
    assert len(swarm(tasks=[add.s(i, i) for i in range(2)], config={"max_task_allowed": 2}, app=app).tasks) == 2


def test_swarm_reserved_names_are_not_bound_kwargs(app: Celery) -> None:
    # Given a swarm built with reserved names and other keywords
    s = swarm(tasks=["t.add"], kwargs={"a": 1}, options={"queue": "q"}, immutable=True, task_name="n", app=app, b=2)

    # Then only the other keywords (and kwargs=) are bound kwargs; options and immutability apply to the swarm
    assert s.bound_kwargs == {"a": 1, "b": 2}
    assert s.options["queue"] == "q"
    assert s.immutable
    assert s.swarm_name == "n"


# -- id scheme ---------------------------------------------------------------------------------------


def test_member_step_and_callback_ids_derive_from_the_swarm_id_and_parse_back() -> None:
    # Given a swarm id (a uuid, as Celery makes them)
    sid = "6f1c0f5e-8f43-4d55-9d2a-1f3b8c2d7e10"

    # Then a member id and a chain step id parse back to the swarm, the index and the step; the last step
    # of a chain member has the member id (FINAL_STEP)
    mid = member_task_id(sid, 7)
    assert mid.startswith(f"{sid}~7~") and len(mid) == len(sid) + 11
    assert parse_member_task_id(mid) == MemberRef(sid, 7, FINAL_STEP)
    assert parse_member_task_id(step_task_id(sid, 7, 0)) == MemberRef(sid, 7, 0)
    assert parse_member_task_id(step_task_id(sid, 7, 3)) == MemberRef(sid, 7, 3)
    # a nested swarm's id is a member id: its own members parse back to it
    assert parse_member_task_id(member_task_id(mid, 2)) == MemberRef(mid, 2, FINAL_STEP)

    # And callback ids and ids of ordinary tasks are no member ids, even when they contain "~" (the check)
    assert callback_task_id(sid, "s", 0) == f"{sid}~s0"
    assert parse_member_task_id(callback_task_id(sid, "s", 0)) is None
    assert parse_member_task_id(callback_task_id(sid, "e", 1)) is None
    forged = mid[:-1] + ("0" if mid[-1] != "0" else "1")
    for other in (sid, None, "", "~3", "abc~", "abc~x", "job~1", "job~1~2", "a~1~deadbeef", forged, f"{sid}~7"):
        assert parse_member_task_id(other) is None, other
