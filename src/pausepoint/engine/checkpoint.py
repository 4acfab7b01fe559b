"""The checkpoint: a plain JSON dict that lets any process resume a paused run.

A checkpoint holds data only: the shared state as JSON, every pending pause,
the execution tree so far, and the *continuation*, a small tree of frames that
says where each pending pause sits (which step of which sequence, which branch,
which subflow, which loop round). It never holds code, pickles, class instances
or import paths.

:func:`validate_checkpoint` checks the whole thing against the chart before
anything runs, so a bad checkpoint is refused with an error that names the
field, and the caller's dict is never changed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from pausepoint.errors import (
    ChartMismatchError,
    CheckpointFinishedError,
    CheckpointFormatError,
    CheckpointSignatureError,
    CheckpointVersionError,
)

from ._frames import (
    DeciderFrame,
    ForEachFrame,
    ForkFrame,
    PauseFrame,
    SequenceFrame,
    SubflowFrame,
    is_frame,
)
from ._json import NotJSONError, canonical_json, json_copy
from .chart import (
    ITEM_KEY,
    PATH_SEPARATOR,
    Decider,
    ForEach,
    LoopBack,
    Parallel,
    PausableStage,
    Selector,
    Step,
    Subflow,
)

if TYPE_CHECKING:
    from .chart import FlowChart, Node
    from .trace import TreeNode

__all__ = ["FORMAT_VERSION", "Checkpoint", "PendingPause", "sign_checkpoint", "validate_checkpoint"]

FORMAT_VERSION = 1
"""The checkpoint format this pausepoint writes; it reads this one and older."""


class PendingPause(TypedDict):
    """One pause the run waits on.

    Attributes:
        pause_id: Unique id of this pause; a stage pausing again gets a new one.
        stage_id: Path of the paused stage (``payment/approve`` inside a subflow).
        data: What the stage's ``execute`` returned.
        paused_at: When it paused (UNIX seconds).
        key: The business key it waits under, when its stage declares ``key=``.
        assignees: Who may answer (people or groups), when its stage names them.
        assign_error: Why the stage's ``assignees`` function gave no one, when it failed.
    """

    pause_id: str
    stage_id: str
    data: Any
    paused_at: float
    key: NotRequired[str]
    assignees: NotRequired[list[str]]
    assign_error: NotRequired[str]


class Checkpoint(TypedDict):
    """A paused run, as JSON. ``json.loads(json.dumps(cp)) == cp`` always holds.

    Attributes:
        format_version: Format of this dict; newer ones are refused by older readers.
        chart_name: Name of the chart that paused.
        chart_fingerprint: Structural fingerprint of that chart.
        run_id: The run's id, kept across every resume.
        status: ``"paused"``; ``"running"`` for a progress checkpoint (no pauses).
        input: The input the run was started with.
        shared_state: The state at the pause, encoded as JSON.
        paused_stage_id: Mirrors ``pauses[0]["stage_id"]``.
        pause_data: Mirrors ``pauses[0]["data"]``.
        pauses: Every pending pause; authoritative.
        execution_tree: The path taken so far (see :mod:`pausepoint.engine.trace`).
        continuation: Where each pending pause sits in the chart.
        started_at: When the run started (UNIX seconds).
        paused_at: When the run last paused.
        signature: HMAC-SHA256 of the rest, when the executor has a signing key.
    """

    format_version: int
    chart_name: str
    chart_fingerprint: str
    run_id: str
    status: Literal["paused", "running"]
    input: dict[str, Any]
    shared_state: dict[str, Any]
    paused_stage_id: str
    pause_data: Any
    pauses: list[PendingPause]
    execution_tree: list[TreeNode]
    continuation: SequenceFrame
    started_at: float
    paused_at: float
    signature: NotRequired[str]


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def sign_checkpoint(checkpoint: Mapping[str, Any], key: str | bytes) -> str:
    """Return the HMAC-SHA256 (hex) of a checkpoint without its ``signature`` field."""
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    return hmac.new(_key_bytes(key), canonical_json(body), hashlib.sha256).hexdigest()


_TOP_FIELDS: Mapping[str, type | tuple[type, ...]] = {
    "chart_name": str,
    "chart_fingerprint": str,
    "run_id": str,
    "status": str,
    "input": dict,
    "shared_state": dict,
    "paused_stage_id": str,
    "pauses": list,
    "execution_tree": list,
    "continuation": dict,
    "started_at": (int, float),
    "paused_at": (int, float),
}

_EXACT_TOP_FIELDS = {
    name: frozenset(expected if isinstance(expected, tuple) else (expected,))
    for name, expected in _TOP_FIELDS.items()
}

_FINISHED = ("completed", "failed")


def _check_top_field(
    checkpoint: Mapping[str, Any], name: str, expected_type: type | tuple[type, ...]
) -> None:
    if name not in checkpoint:
        raise CheckpointFormatError(f"checkpoint field {name!r} is missing", field=name)
    value = checkpoint[name]
    if not isinstance(value, expected_type) or isinstance(value, bool):
        raise CheckpointFormatError(
            f"checkpoint field {name!r} must be {_type_name(expected_type)}, found {_describe(value)}",
            field=name,
        )


def validate_checkpoint(
    checkpoint: Any, chart: FlowChart, signing_key: str | bytes | None, *, progress: bool = False
) -> dict[str, Any]:
    """Check a checkpoint completely against ``chart``; raise before anything runs.

    Returns:
        Fresh copies of its JSON fields (``input``, ``shared_state``, ``pauses``,
        ``execution_tree``, ``continuation`` ...), checked on the way, for the
        executor to own: the caller's checkpoint is never shared or changed.
        Beside them, ``paused_stages`` maps each pending pause's stage path to
        its stage, found while the continuation was checked against the chart.

    Args:
        checkpoint: What the caller passed.
        chart: The chart it must belong to.
        signing_key: When set, the signature must match.
        progress: Expect a progress checkpoint (``status == "running"``, no pauses).

    Raises:
        CheckpointFormatError: Not a dict, a missing or ill-typed field, an unknown stage.
        CheckpointVersionError: A newer ``format_version``.
        CheckpointSignatureError: Signing is on and the signature is missing or wrong.
        CheckpointFinishedError: The run already finished.
        ChartMismatchError: The checkpoint belongs to another chart.
    """
    if type(checkpoint) is not dict and not isinstance(
        checkpoint, Mapping
    ):  # no ABC check for a dict
        raise CheckpointFormatError(
            f"a checkpoint is a dict (from get_checkpoint() or json.loads), not a {type(checkpoint).__name__}"
        )
    status = checkpoint.get("status")
    if status in _FINISHED:
        raise CheckpointFinishedError(
            f"run {checkpoint.get('run_id')!r} already {status}: there is nothing to resume",
            field="status",
        )
    version = checkpoint.get("format_version")
    if type(version) is not int:
        raise CheckpointFormatError(
            f"checkpoint field 'format_version' must be an int, found {_describe(version)}",
            field="format_version",
        )
    if version > FORMAT_VERSION or version < 1:
        raise CheckpointVersionError(
            f"checkpoint format_version {version} is not readable by this pausepoint "
            f"(it reads 1..{FORMAT_VERSION}); upgrade pausepoint to resume it",
            found=version,
            supported=FORMAT_VERSION,
        )
    if signing_key is not None:
        signature = checkpoint.get("signature")
        if not isinstance(signature, str):
            raise CheckpointSignatureError(
                "checkpoint is not signed, but this executor requires signed checkpoints",
                field="signature",
            )
        try:
            expected = sign_checkpoint(checkpoint, signing_key)
        except (TypeError, ValueError) as exc:
            raise CheckpointFormatError(f"checkpoint is not JSON: {exc}") from None
        if not hmac.compare_digest(signature, expected):
            raise CheckpointSignatureError(
                "checkpoint signature does not match its content: it was changed after "
                "signing, or signed with another key",
                field="signature",
            )
    for name, exact in _EXACT_TOP_FIELDS.items():
        if type(checkpoint.get(name)) not in exact:  # else missing, ill-typed, or a subclass
            _check_top_field(checkpoint, name, _TOP_FIELDS[name])
    expected_status = "running" if progress else "paused"
    if status != expected_status:
        raise CheckpointFormatError(
            f"checkpoint field 'status' must be {expected_status!r}, found {status!r}",
            field="status",
        )
    if checkpoint["chart_fingerprint"] != chart.fingerprint:
        raise ChartMismatchError(
            f"this checkpoint belongs to another chart: it was made by chart "
            f"{checkpoint['chart_name']!r} (fingerprint {checkpoint['chart_fingerprint'][:12]}…), "
            f"this executor runs {chart.name!r} (fingerprint {chart.fingerprint[:12]}…)",
            expected=chart.fingerprint,
            found=checkpoint["chart_fingerprint"],
        )
    # every field the executor uses, copied once: a tuple or datetime from a non-JSON source is
    # refused here, and the executor works on the copies
    tree = _quick_tree_copy(checkpoint["execution_tree"])  # None, not an error, if it is not sure
    copies: dict[str, Any] = {}
    name = ""
    try:
        for name in ("input", "shared_state", "pause_data", "pauses"):
            copies[name] = json_copy(checkpoint.get(name), name)
        name = "execution_tree"
        copies[name] = json_copy(checkpoint[name], name) if tree is None else tree
        name = "continuation"
        copies[name] = json_copy(checkpoint[name], name)
    except NotJSONError as exc:
        raise CheckpointFormatError(
            f"checkpoint field {exc.path!r}: {exc.problem}", field=name
        ) from None
    if tree is None:
        _check_tree(copies["execution_tree"], "execution_tree")
    leaves: dict[str, str] = {}
    checker = _FrameChecker(leaves, progress=progress)
    copies["paused_stages"] = checker.stages
    checker.sequence(
        checkpoint["continuation"], chart.steps, "", checkpoint["execution_tree"], "continuation"
    )
    if progress:
        if checkpoint["pauses"] or leaves or not checker.found_next:
            raise CheckpointFormatError(
                "a progress checkpoint has no pauses and its continuation names the next stage",
                field="continuation",
            )
        return copies
    pauses = _check_pauses(copies["pauses"])
    if leaves != pauses:
        raise CheckpointFormatError(
            "checkpoint 'pauses' do not match its continuation: pauses list "
            f"{sorted(pauses)}, continuation holds {sorted(leaves)}",
            field="pauses",
        )
    if checkpoint["paused_stage_id"] != checkpoint["pauses"][0]["stage_id"]:
        raise CheckpointFormatError(
            "checkpoint field 'paused_stage_id' must equal pauses[0].stage_id "
            f"({checkpoint['pauses'][0]['stage_id']!r}), found {checkpoint['paused_stage_id']!r}",
            field="paused_stage_id",
        )
    if "pause_data" not in checkpoint:
        raise CheckpointFormatError("checkpoint field 'pause_data' is missing", field="pause_data")
    if checkpoint["pause_data"] != checkpoint["pauses"][0]["data"]:
        raise CheckpointFormatError(
            "checkpoint field 'pause_data' must equal pauses[0].data", field="pause_data"
        )
    return copies


_EXACT_NUMBERS = frozenset({int, float})
_NUMBERS = (int, float)  # for isinstance: a union (int | float) is rebuilt at every use


def _check_pauses(pauses: list[Any]) -> dict[str, str]:
    """Return ``{stage_id: pause_id}`` of a well-formed pauses list (a JSON copy: exact types)."""
    if not pauses:
        raise CheckpointFormatError(
            "checkpoint field 'pauses' is empty: no pause to resume", field="pauses"
        )
    found: dict[str, str] = {}
    for index, pause in enumerate(pauses):
        if (
            type(pause) is dict
            and len(pause) == 4  # no key, assignees or assign_error to check
            and type(pause.get("pause_id")) is str
            and type(pause.get("stage_id")) is str
            and type(pause.get("paused_at")) in _EXACT_NUMBERS
            and "data" in pause
            and pause["stage_id"] not in found
        ):
            found[pause["stage_id"]] = pause["pause_id"]
            continue  # the common case, checked without building a field path
        where = f"pauses[{index}]"
        if not isinstance(pause, dict):
            raise CheckpointFormatError(f"checkpoint field {where!r} must be a dict", field=where)
        for name, expected_type in (
            ("pause_id", str),
            ("stage_id", str),
            ("paused_at", (int, float)),
        ):
            if not isinstance(pause.get(name), expected_type) or isinstance(pause.get(name), bool):
                raise CheckpointFormatError(
                    f"checkpoint field '{where}.{name}' must be {_type_name(expected_type)}, "
                    f"found {_describe(pause.get(name))}",
                    field=f"{where}.{name}",
                )
        if "data" not in pause:
            raise CheckpointFormatError(
                f"checkpoint field '{where}.data' is missing", field=f"{where}.data"
            )
        for name in ("key", "assign_error"):
            if name in pause and not isinstance(pause[name], str):
                raise CheckpointFormatError(
                    f"checkpoint field '{where}.{name}' must be a str, found "
                    f"{_describe(pause[name])}",
                    field=f"{where}.{name}",
                )
        assignees = pause.get("assignees")
        if assignees is not None and (
            not isinstance(assignees, list) or not all(isinstance(a, str) for a in assignees)
        ):
            raise CheckpointFormatError(
                f"checkpoint field '{where}.assignees' must be a list of names, found "
                f"{_describe(assignees)}",
                field=f"{where}.assignees",
            )
        if pause["stage_id"] in found:
            raise CheckpointFormatError(
                f"checkpoint field {where!r}: stage {pause['stage_id']!r} is listed twice",
                field=where,
            )
        found[pause["stage_id"]] = pause["pause_id"]
    return found


_NODE_FIELDS: Mapping[str, type | tuple[type, ...]] = {
    "reads": list,
    "writes": list,
    "ms": (int, float),
    "error": str,
    "pause": dict,
    "resume": dict,
    "chose": list,
    "children": list,
    "round": int,
    "target": str,
    "seq": int,
    "notes": list,
    "attempts": list,
    "evidence": dict,
}
_EXACT_NODE_FIELDS: Mapping[str, frozenset[type]] = {
    name: frozenset(expected if isinstance(expected, tuple) else (expected,))
    for name, expected in _NODE_FIELDS.items()
}
"""``_NODE_FIELDS`` for JSON values, whose types are exact (a bool is no int here)."""
_EXACT_QUICK_FIELDS: Mapping[str, frozenset[type]] = {
    **dict.fromkeys(("id", "name", "kind", "status"), frozenset({str})),
    **_EXACT_NODE_FIELDS,
}
"""``_EXACT_NODE_FIELDS`` and the four every node has: the quick tree copy checks all in one loop."""
_STATUSES = frozenset({"running", "done", "paused", "resumed", "failed"})
_KINDS = frozenset(
    {"stage", "pausable", "decider", "selector", "parallel", "subflow", "loop", "foreach", "item"}
)


_JSON_SCALARS = frozenset({str, int, bool, type(None)})


class _Unsure(Exception):
    """Raised by the quick tree copy where only the full checks can tell what is wrong."""


def _quick_tree_copy(nodes: list[Any]) -> list[Any] | None:
    """Return a copy of a well-formed execution tree, checked in the same pass; else ``None``.

    What ``json_copy`` and :func:`_check_tree` do in two walks, done in one: the
    common case of every resume. It returns a copy only for a tree both would
    accept; on anything else it returns ``None``, and the caller copies and
    checks the slow way, which finds the error and names its field.
    """
    try:
        return _quick_nodes(nodes)
    except (_Unsure, NotJSONError, CheckpointFormatError, RecursionError):
        return None


def _quick_nodes(nodes: list[Any]) -> list[Any]:
    if type(nodes) is not list:
        raise _Unsure
    copied: list[Any] = []
    for node in nodes:
        if type(node) is not dict:
            raise _Unsure
        own: dict[str, Any] = {}
        for name, value in node.items():
            kind = type(value)
            expected = _EXACT_QUICK_FIELDS.get(name)  # id, name, kind and status too
            if expected is None:
                if type(name) is not str:  # JSON keys are strings
                    raise _Unsure
            elif kind not in expected:
                raise _Unsure
            if kind in _JSON_SCALARS or (kind is float and value - value == 0.0):  # finite
                own[name] = value
            elif name in _STRING_LISTS:  # a list, as checked above
                for item in value:
                    if type(item) is not str:
                        raise _Unsure
                own[name] = value[:]
            elif name == "children":
                own[name] = _quick_nodes(value)
            else:
                own[name] = json_copy(value)  # a phase, attempts, evidence, a field unknown here
        if (  # the four are strs if present, checked in the loop
            own.get("kind") not in _KINDS
            or own.get("status") not in _STATUSES
            or "id" not in own
            or "name" not in own
        ):
            raise _Unsure
        if "pause" in own or "resume" in own:
            _check_phase(own, "")
        if "attempts" in own:
            _check_attempts(own["attempts"], "")
        if "evidence" in own:
            _check_evidence(own["evidence"], "")
        copied.append(own)
    return copied


def _check_tree(nodes: list[Any], where: str) -> None:
    # Runs on every resume over the whole tree: the common case checks types
    # without building a field path; _explain_node builds one only for the error.
    for index, node in enumerate(nodes):
        if (
            type(node) is not dict
            or type(node.get("id")) is not str
            or type(node.get("name")) is not str
            or type(node.get("kind")) is not str
            or type(node.get("status")) is not str
            or node["kind"] not in _KINDS
            or node["status"] not in _STATUSES
        ):
            _explain_node(node, f"{where}[{index}]")
        for name, value in node.items():
            expected = _NODE_FIELDS.get(name)
            if expected is not None and (
                not isinstance(value, expected)
                or type(value) is bool
                or (
                    name in _STRING_LISTS
                    and isinstance(value, list)
                    and not all(type(item) is str for item in value)
                )
            ):
                _explain_field(name, expected, f"{where}[{index}]")
        if "pause" in node or "resume" in node:
            _check_phase(node, f"{where}[{index}]")
        if "attempts" in node:
            _check_attempts(node["attempts"], f"{where}[{index}].attempts")
        if "evidence" in node:
            _check_evidence(node["evidence"], f"{where}[{index}].evidence")
        if "children" in node:
            _check_tree(node["children"], f"{where}[{index}].children")


_STRING_LISTS = frozenset({"reads", "writes", "chose", "notes"})


def _explain_node(node: Any, here: str) -> None:
    """Raise the error for a tree node that is not a dict or lacks its identity."""
    if not isinstance(node, dict):
        raise CheckpointFormatError(f"checkpoint field {here!r} must be a dict", field=here)
    for name in ("id", "name", "kind", "status"):
        if not isinstance(node.get(name), str):
            raise CheckpointFormatError(
                f"checkpoint field '{here}.{name}' must be a str, found {_describe(node.get(name))}",
                field=f"{here}.{name}",
            )
    raise CheckpointFormatError(
        f"checkpoint field {here!r}: unknown kind {node['kind']!r} or status {node['status']!r}",
        field=here,
    )


def _explain_field(name: str, expected: type | tuple[type, ...], here: str) -> None:
    """Raise the error for an ill-typed field of a tree node."""
    if name in _STRING_LISTS:
        raise CheckpointFormatError(
            f"checkpoint field '{here}.{name}' must be a list of strings", field=f"{here}.{name}"
        )
    raise CheckpointFormatError(
        f"checkpoint field '{here}.{name}' must be {_type_name(expected)}", field=f"{here}.{name}"
    )


def _check_phase(node: dict[str, Any], here: str) -> None:
    pause = node.get("pause")
    if pause is not None and not (
        isinstance(pause.get("pause_id"), str)
        and isinstance(pause.get("summary"), str)
        and isinstance(pause.get("at"), _NUMBERS)
        and _optional_seq(pause)
    ):
        raise CheckpointFormatError(
            f"checkpoint field '{here}.pause' is malformed", field=f"{here}.pause"
        )
    resume = node.get("resume")
    if resume is not None and not (
        isinstance(resume.get("at"), _NUMBERS)
        and isinstance(resume.get("ms"), _NUMBERS)
        and all(
            isinstance(resume.get(k), list) and all(isinstance(i, str) for i in resume[k])
            for k in ("input_keys", "reads", "writes")
        )
        and _optional_seq(resume)
        and (
            "notes" not in resume
            or (
                isinstance(resume["notes"], list)
                and all(isinstance(i, str) for i in resume["notes"])
            )
        )
    ):
        raise CheckpointFormatError(
            f"checkpoint field '{here}.resume' is malformed", field=f"{here}.resume"
        )


def _optional_seq(phase: Mapping[str, Any]) -> bool:
    """Whether a pause's or resume's ``seq``, when present, is an event number (an int)."""
    seq = phase.get("seq", 0)
    return type(seq) is int


def _fits(value: Any, fields: Mapping[str, type | tuple[type, ...]]) -> bool:
    """Whether ``value`` is a dict whose listed fields have the listed types (bools apart)."""
    return isinstance(value, dict) and all(
        name in value
        and isinstance(value[name], expected)
        and (expected is bool or not isinstance(value[name], bool))
        for name, expected in fields.items()
    )


_ATTEMPT: Mapping[str, type | tuple[type, ...]] = {
    "phase": str,
    "attempt": int,
    "of": int,
    "error": str,
    "ms": (int, float),
    "seq": int,
}
_CHECK: Mapping[str, type | tuple[type, ...]] = {"key": str, "op": str, "ok": bool}
_MATCH: Mapping[str, type | tuple[type, ...]] = {"rule": int, "then": str, "checks": list}


def _check_attempts(attempts: list[Any], where: str) -> None:
    for index, attempt in enumerate(attempts):
        retry_in = attempt.get("retry_in", 0) if isinstance(attempt, dict) else None
        if (
            not _fits(attempt, _ATTEMPT)
            or not isinstance(retry_in, _NUMBERS)
            or isinstance(retry_in, bool)
        ):
            raise CheckpointFormatError(
                f"checkpoint field '{where}[{index}]' is malformed", field=f"{where}[{index}]"
            )


def _check_evidence(evidence: dict[str, Any], where: str) -> None:
    checks = evidence.get("checked", [])
    matched = evidence.get("matched")
    well_formed = (
        isinstance(evidence.get("chose"), list)
        and all(isinstance(key, str) for key in evidence["chose"])
        and isinstance(evidence.get("default"), bool)
        and isinstance(matched, list)
        and isinstance(checks, list)
        and all(
            _fits(match, _MATCH) and isinstance(match.get("label", ""), str) for match in matched
        )
        and all(
            _fits(check, _CHECK) and "expected" in check
            for check in [*checks, *(c for m in matched for c in m["checks"])]
        )
    )
    if not well_formed:
        raise CheckpointFormatError(f"checkpoint field {where!r} is malformed", field=where)


def _require(frame: Any, kind: type[Any], where: str) -> dict[str, Any]:
    """Check ``frame`` is a dict with every key the frame type ``kind`` requires."""
    if type(frame) is dict and kind.__required_keys__ <= frame.keys():
        return frame  # as is_frame(frame, kind), inline: every resume checks every frame
    if not isinstance(frame, dict):
        raise CheckpointFormatError(f"checkpoint field {where!r} must be a dict", field=where)
    if not is_frame(frame, kind):
        missing = sorted(kind.__required_keys__ - frame.keys())
        raise CheckpointFormatError(
            f"checkpoint field '{where}.{missing[0]}' is missing", field=f"{where}.{missing[0]}"
        )
    return frame


_SEQUENCE_KEYS = SequenceFrame.__required_keys__

_FRAME_OF: Mapping[type[Any], type[Any]] = {
    PausableStage: PauseFrame,
    Decider: DeciderFrame,
    Selector: ForkFrame,
    Parallel: ForkFrame,
    ForEach: ForEachFrame,
    Subflow: SubflowFrame,
}
"""The frame type a waiting node of each kind leaves (see :mod:`pausepoint.engine._frames`)."""


class _FrameChecker:
    """Walks the continuation beside the chart and the execution tree.

    Each frame is first checked against its type in :mod:`pausepoint.engine._frames`
    (the definitions the traversal writes), then against the chart and the tree.
    """

    def __init__(self, leaves: dict[str, str], *, progress: bool = False) -> None:
        self.leaves = leaves
        self.stages: dict[str, PausableStage] = {}  # the stage of each leaf, by path
        self.progress = progress
        self.found_next = False

    def sequence(
        self, frame: Any, steps: tuple[Step, ...], prefix: str, tree: list[Any], where: str
    ) -> None:
        if type(frame) is not dict or not frame.keys() >= _SEQUENCE_KEYS:
            frame = _require(frame, SequenceFrame, where)
        index = frame.get("i")
        if (
            type(index) is not int
            or not 0 <= index < len(steps)
            or isinstance(steps[index], LoopBack)
        ):
            raise CheckpointFormatError(
                f"checkpoint field '{where}.i' ({index!r}) names no stage of "
                f"{prefix.rstrip(PATH_SEPARATOR) or 'the chart'}",
                field=f"{where}.i",
            )
        loops = frame.get("loops")
        if "loops" in frame and (  # absent until a loop of this sequence runs
            not isinstance(loops, dict)
            or not all(
                isinstance(k, str)
                and k.isascii()  # "²".isdigit() is true, but int("²") fails
                and k.isdigit()
                and int(k) < len(steps)
                and isinstance(steps[int(k)], LoopBack)
                and type(v) is int
                and v >= 0
                for k, v in loops.items()
            )
        ):
            raise CheckpointFormatError(
                f"checkpoint field '{where}.loops' is malformed", field=f"{where}.loops"
            )
        node_frame = frame.get("node")
        if node_frame is None:
            if self.progress and "node" in frame and not self.found_next:
                self.found_next = True  # a progress checkpoint: start this step afresh
                return
            raise CheckpointFormatError(
                f"checkpoint field '{where}.node' is missing", field=f"{where}.node"
            )
        step = steps[index]
        assert not isinstance(step, LoopBack)
        self.node(node_frame, step, prefix, tree, f"{where}.node")

    def node(self, frame: Any, node: Node, prefix: str, tree: list[Any], where: str) -> None:
        path = prefix + node.id
        if not isinstance(frame, dict):
            raise CheckpointFormatError(f"checkpoint field {where!r} must be a dict", field=where)
        position = frame.get("t")
        if (
            type(position) is not int
            or not 0 <= position < len(tree)
            or tree[position].get("id") != path
        ):
            raise CheckpointFormatError(
                f"checkpoint field '{where}.t' does not point at stage {path!r} in the execution tree",
                field=f"{where}.t",
            )
        kind = _FRAME_OF.get(type(node))
        if kind is None:
            raise CheckpointFormatError(
                f"checkpoint field {where!r}: stage {path!r} is a plain stage and cannot be paused",
                field=where,
            )
        if not kind.__required_keys__ <= frame.keys():
            frame = _require(frame, kind, where)
        tree_node: dict[str, Any] = tree[position]
        if isinstance(node, PausableStage):
            if frame.get("stage_id") != path or not isinstance(frame.get("pause_id"), str):
                raise CheckpointFormatError(
                    f"checkpoint field {where!r}: expected the pause of stage {path!r}, "
                    f"found stage {frame.get('stage_id')!r}",
                    field=where,
                )
            self.leaves[path] = frame["pause_id"]
            self.stages[path] = node
            return
        children = tree_node.get("children")
        if not isinstance(children, list):
            raise CheckpointFormatError(
                f"checkpoint field '{where}': tree node of {path!r} has no children", field=where
            )
        if isinstance(node, ForEach):
            self._for_each(frame, node, path, children, where)
            return
        if isinstance(node, Subflow):
            if node.isolated and not isinstance(frame.get("state"), dict):
                raise CheckpointFormatError(
                    f"checkpoint field '{where}.state' must hold subflow {path!r}'s own state",
                    field=f"{where}.state",
                )
            self.sequence(
                frame.get("seq"), node.chart.steps, path + PATH_SEPARATOR, children, f"{where}.seq"
            )
            return
        if isinstance(node, Decider):
            key = frame.get("branch")  # may be a list: unhashable, so check its type first
            branch = node.branches.get(key) if isinstance(key, str) else None
            if branch is None:
                raise CheckpointFormatError(
                    f"checkpoint field '{where}.branch': decider {path!r} has no branch "
                    f"{frame.get('branch')!r}",
                    field=f"{where}.branch",
                )
            self.node(frame.get("node"), branch, prefix, children, f"{where}.node")
            return
        if isinstance(node, Selector | Parallel):
            branches = frame.get("branches")
            if not isinstance(branches, dict) or not branches:
                raise CheckpointFormatError(
                    f"checkpoint field '{where}.branches' must name the pending branches of {path!r}",
                    field=f"{where}.branches",
                )
            for key, branch_frame in branches.items():
                branch = node.branches.get(key)
                if branch is None:
                    raise CheckpointFormatError(
                        f"checkpoint field '{where}.branches': {node.kind} {path!r} has no branch {key!r}",
                        field=f"{where}.branches.{key}",
                    )
                self.node(branch_frame, branch, prefix, children, f"{where}.branches.{key}")

    def _for_each(
        self, frame: dict[str, Any], node: ForEach, path: str, children: list[Any], where: str
    ) -> None:
        items, done, total = frame.get("items"), frame.get("done"), frame.get("total")
        if (
            not isinstance(items, dict)
            or not items
            or not isinstance(done, dict)
            or type(total) is not int
            or not set(items).isdisjoint(done)
            or {*items, *done} != {str(index) for index in range(total)}
        ):
            raise CheckpointFormatError(
                f"checkpoint field {where!r}: for-each {path!r} must account for each of its "
                "items once, as pending ('items') or done ('done')",
                field=where,
            )
        for key, item_frame in items.items():
            here = f"{where}.items.{key}"
            if not isinstance(item_frame, dict) or not isinstance(item_frame.get("state"), dict):
                raise CheckpointFormatError(
                    f"checkpoint field {here!r} must hold the item's own state", field=here
                )
            position = item_frame.get("t")
            item: dict[str, Any] = (  # item records are made in item order: t is the index
                children[position]
                if type(position) is int and str(position) == key and position < len(children)
                else {}
            )
            item_id = item.get("id")
            if not isinstance(item.get("children"), list) or not _is_item_of(
                item_id, path, key if node.key is None else None
            ):
                raise CheckpointFormatError(
                    f"checkpoint field '{here}.t' does not point at item {key} of {path!r}",
                    field=f"{here}.t",
                )
            self.sequence(
                item_frame.get("seq"),
                node.body.steps,
                f"{item_id}{PATH_SEPARATOR}",
                item["children"],
                f"{here}.seq",
            )


def _is_item_of(item_id: Any, path: str, index: str | None) -> bool:
    """Whether ``item_id`` names an item of the for-each at ``path``.

    That is ``path[index]``, or with keyed items (``index`` None) ``path[<a valid key>]``.
    """
    if not isinstance(item_id, str):
        return False
    if index is not None:
        return item_id == f"{path}[{index}]"
    label = item_id[len(path) + 1 : -1]
    return item_id == f"{path}[{label}]" and ITEM_KEY.fullmatch(label) is not None


def _type_name(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, tuple):
        return "a number"
    return {"str": "a string", "dict": "an object", "list": "a list", "int": "an int"}.get(
        expected.__name__, expected.__name__
    )


def _describe(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r:.60}"
