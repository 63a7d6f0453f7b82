"""The researcher's tools, provider-neutral: one definition list, rendered to Anthropic tool use
and to OpenAI function calling, and one dispatcher that validates the model's input and calls
``ResearchTools``. Descriptions come from prompts/tools.toml. More tools (e.g. the findings forum)
join with ``register_tool``; a tool whose ``available`` check fails is not offered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.prompting import prompt_table, render
from agent.proposers.base import ExperimentSpec, ResearchTools
from agent.proposers.views import (
    analysis_text,
    attempt_record,
    attempt_text,
    feedback_text,
    import_text,
    leaderboard_text,
)
from sandbox.errors import HarnessError
from sandbox.results import hide_heldout as scrub

# Errors a tool may raise that the model should hear about (a wrong attempt id, a bad spec).
TOOL_ERRORS: tuple[type[Exception], ...] = (HarnessError, ValueError, KeyError, LookupError)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunExperimentInput(_Input):
    name: str = Field(min_length=1, max_length=120, description="Idea name.")
    hypothesis: str = Field(min_length=1, description="Rationale.")
    code: str | None = Field(None, min_length=1, description="The idea file.")
    path: str | None = Field(None, min_length=1, description="A workspace file as the entry.")
    parent_id: str | None = Field(None, description="Attempt built on.")

    @model_validator(mode="after")
    def _one_source(self) -> RunExperimentInput:
        if (self.code is None) == (self.path is None):
            raise ValueError("give either code (the idea file) or path (a workspace file as the entry), not both")
        return self


class EditFilesInput(_Input):
    """The text editor's commands (Anthropic's ``text_editor_20250728`` client tool), on the
    researcher's workspace: ``view`` of a folder lists it."""

    command: Literal["view", "create", "str_replace", "insert"] = Field(description="What to do.")
    path: str = Field(description="A path relative to the workspace.")
    file_text: str | None = Field(None, description="create: the whole file.")
    old_str: str | None = Field(None, description="str_replace: the text to replace, occurring once.")
    new_str: str | None = Field(None, description="str_replace: its replacement.")
    insert_line: int | None = Field(None, description="insert: the line after which to insert (0: top).")
    insert_text: str | None = Field(None, description="insert: the text to insert.")
    view_range: list[int] | None = Field(None, description="view: [first, last] lines (last -1: to the end).")


class RunAnalysisInput(_Input):
    name: str = Field(min_length=1, max_length=120, description="Run name.")
    code: str | None = Field(None, min_length=1, description="Inline Python.")
    path: str | None = Field(None, min_length=1, description="Workspace file.")

    @model_validator(mode="after")
    def _one_source(self) -> RunAnalysisInput:
        if (self.code is None) == (self.path is None):
            raise ValueError("give either code (inline Python) or path (a workspace file), not both")
        return self


class ImportAttemptInput(_Input):
    attempt_id: str = Field(min_length=1, description="Attempt id.")


class ShowLeaderboardInput(_Input):
    limit: int = Field(10, ge=1, le=100, description="Rows.")


class ShowAttemptInput(_Input):
    attempt_id: str = Field(min_length=1, description="Attempt id.")


class FinishInput(_Input):
    summary: str = Field(min_length=1, description="Summary.")


class PostFindingInput(_Input):
    title: str = Field(min_length=1, max_length=200, description="The finding in one line.")
    body: str = Field(min_length=1, description="What was tried and shown.")
    attempt_id: str | None = Field(None, description="The attempt it refers to.")


class ReadFindingsInput(_Input):
    limit: int = Field(20, ge=1, le=200, description="How many findings.")


@dataclass
class ToolOutcome:
    """What one tool call produced: the text the model reads next."""

    text: str
    is_error: bool = False
    finished: bool = False
    record: dict[str, Any] | None = None  # an attempt row for the compaction table
    images: list[tuple[str, bytes]] = field(default_factory=list)  # (name, PNG) an analysis drew


Handler = Callable[[ResearchTools, Any], ToolOutcome]


@dataclass(frozen=True)
class ToolDef:
    name: str
    input_model: type[BaseModel]
    handler: Handler
    available: Callable[[ResearchTools], bool] = lambda tools: True
    # A client tool type the Anthropic API defines (Claude is trained on it): sent as this spec
    # instead of a custom tool with a schema; other providers get the plain function tool.
    anthropic_spec: dict[str, Any] | None = None


def _run_experiment(tools: ResearchTools, args: RunExperimentInput) -> ToolOutcome:
    workspace = tools.workspace
    if args.path is not None and workspace is None:
        raise ValueError("this session has no workspace: give the idea as code")
    code = args.code
    if code is None:  # the input's validator lets through code or a path, never neither
        assert workspace is not None and args.path is not None
        code = workspace.text(args.path)
    spec = ExperimentSpec(name=args.name, hypothesis=args.hypothesis, code=code,
                          parent_id=args.parent_id or None, path=args.path)
    feedback = tools.run_experiment(spec)
    return ToolOutcome(feedback_text(feedback, tools.budget_status()), record=attempt_record(feedback))


def _needed(value: Any, name: str, command: str) -> Any:
    if value is None:
        raise ValueError(f"{command} needs {name}")
    return value


def _edit_files(tools: ResearchTools, args: EditFilesInput) -> ToolOutcome:
    ws = tools.workspace
    if ws is None:
        raise HarnessError("this session has no workspace")
    if args.command == "view":
        return ToolOutcome(ws.view(args.path, args.view_range))
    if args.command == "create":
        return ToolOutcome(ws.create(args.path, _needed(args.file_text, "file_text", "create")))
    if args.command == "str_replace":
        return ToolOutcome(ws.str_replace(args.path, _needed(args.old_str, "old_str", "str_replace"),
                                          args.new_str or ""))
    text = args.insert_text if args.insert_text is not None else args.new_str  # older editor versions
    return ToolOutcome(ws.insert(args.path, _needed(args.insert_line, "insert_line", "insert"),
                                 _needed(text, "insert_text", "insert")))


def _run_analysis(tools: ResearchTools, args: RunAnalysisInput) -> ToolOutcome:
    reply = tools.run_analysis(args.name, args.code, args.path)
    return ToolOutcome(analysis_text(reply), is_error=reply.output.status != "ok",
                       images=[(f.name, f.png) for f in reply.output.figures])


def _import_attempt(tools: ResearchTools, args: ImportAttemptInput) -> ToolOutcome:
    return ToolOutcome(import_text(tools.import_attempt(args.attempt_id)))


def _show_leaderboard(tools: ResearchTools, args: ShowLeaderboardInput) -> ToolOutcome:
    return ToolOutcome(leaderboard_text(tools.leaderboard(limit=args.limit)))


def _show_attempt(tools: ResearchTools, args: ShowAttemptInput) -> ToolOutcome:
    return ToolOutcome(attempt_text(tools.show_attempt(args.attempt_id)))


def _finish(tools: ResearchTools, args: FinishInput) -> ToolOutcome:
    tools.finish(args.summary)
    return ToolOutcome(render("finished"), finished=True)


def _post_finding(tools: ResearchTools, args: PostFindingInput) -> ToolOutcome:
    posted = tools.post_finding(args.title, args.body, args.attempt_id)
    return ToolOutcome(render("finding_posted", finding_id=posted["id"]))


def _read_findings(tools: ResearchTools, args: ReadFindingsInput) -> ToolOutcome:
    findings = tools.read_findings(limit=args.limit)
    return ToolOutcome(render("findings", findings=[scrub(f) for f in findings]))


EDITOR_TOOL = "str_replace_based_edit_tool"  # the name the API fixes for its text editor tool
EDITOR_TYPE = "text_editor_20250728"  # anthropic/types/tool_text_editor_20250728_param.py
_REGISTRY: dict[str, ToolDef] = {}


def register_tool(tool: ToolDef) -> ToolDef:
    _REGISTRY[tool.name] = tool
    return tool


for _tool in (
    ToolDef("run_experiment", RunExperimentInput, _run_experiment),
    ToolDef("run_analysis", RunAnalysisInput, _run_analysis, available=lambda tools: hasattr(tools, "run_analysis")),
    ToolDef("import_attempt", ImportAttemptInput, _import_attempt,
            available=lambda tools: getattr(tools, "workspace", None) is not None and hasattr(tools, "import_attempt")),
    ToolDef("show_leaderboard", ShowLeaderboardInput, _show_leaderboard),
    ToolDef("show_attempt", ShowAttemptInput, _show_attempt),
    ToolDef("finish", FinishInput, _finish),
    ToolDef("post_finding", PostFindingInput, _post_finding),
    ToolDef("read_findings", ReadFindingsInput, _read_findings),
    ToolDef(EDITOR_TOOL, EditFilesInput, _edit_files,
            available=lambda tools: getattr(tools, "workspace", None) is not None,
            anthropic_spec={"type": EDITOR_TYPE, "name": EDITOR_TOOL}),
):
    register_tool(_tool)


def available_tools(tools: ResearchTools) -> list[ToolDef]:
    """The tools offered in this session, in a stable order."""
    return [t for t in _REGISTRY.values() if t.available(tools)]


def _json_type(prop: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    kept = {k: v for k, v in options[0].items() if k in ("type", "minimum", "maximum", "minLength", "enum", "items")}
    return kept


def input_schema(tool: ToolDef) -> dict[str, Any]:
    """JSON schema of a tool's input, with the parameter descriptions from prompts/tools.toml."""
    texts = prompt_table("tools").get(tool.name, {})
    params = texts.get("parameters", {})
    schema = tool.input_model.model_json_schema()
    properties = {}
    for name, prop in schema["properties"].items():
        if name not in params:
            raise HarnessError(f"prompts/tools.toml has no description of {tool.name}.{name}: add one")
        properties[name] = {**_json_type(prop), "description": params[name]}
    return {"type": "object", "properties": properties, "required": schema.get("required", []),
            "additionalProperties": False}


def description(tool: ToolDef) -> str:
    text = prompt_table("tools").get(tool.name, {}).get("description")
    if not text:
        raise HarnessError(f"prompts/tools.toml has no description of tool {tool.name}: add one")
    return " ".join(text.split())


def anthropic_tools(defs: list[ToolDef]) -> list[dict[str, Any]]:
    return [dict(t.anthropic_spec) if t.anthropic_spec else
            {"name": t.name, "description": description(t), "input_schema": input_schema(t)} for t in defs]


def openai_tools(defs: list[ToolDef]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": description(t),
                                              "parameters": input_schema(t)}} for t in defs]


def usage_line(tool: ToolDef) -> str:
    schema = tool.input_model.model_json_schema()
    required = set(schema.get("required", []))
    args = [f"{n}{'' if n in required else '?'}: {_json_type(p).get('type', 'any')}"
            for n, p in schema["properties"].items()]
    return f"{tool.name}({', '.join(args)})"


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "input"
        problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def dispatch(tools: ResearchTools, defs: list[ToolDef], name: str, arguments: Any,
             parse_error: str | None = None) -> ToolOutcome:
    """Validate one tool call and run it. Malformed input and tool errors come back as error
    results the model can act on; BudgetStop and unexpected exceptions propagate."""
    tool = next((t for t in defs if t.name == name), None)
    if tool is None:
        known = ", ".join(t.name for t in defs)
        return ToolOutcome(render("tool_error", tool=name, message=f"unknown tool; use one of {known}",
                                  usage=""), is_error=True)
    if parse_error is None and not isinstance(arguments, dict):
        parse_error = f"arguments must be a JSON object, got {type(arguments).__name__}"
    if parse_error is not None:
        return ToolOutcome(render("tool_error", tool=name, message=parse_error, usage=usage_line(tool)),
                           is_error=True)
    try:
        args = tool.input_model.model_validate(arguments)
    except ValidationError as exc:
        return ToolOutcome(render("tool_error", tool=name, message=_validation_message(exc),
                                  usage=usage_line(tool)), is_error=True)
    try:
        return tool.handler(tools, args)
    except TOOL_ERRORS as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        return ToolOutcome(render("tool_error", tool=name, message=message, usage=""), is_error=True)
