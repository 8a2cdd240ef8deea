"""Pure translation between OpenAI chat completions and Gemini's generateContent, both ways.

Field names follow the REST API (camelCase), as google-genai's `types.py` documents them. Gemini has no tool call
ids: it matches a functionResponse to its functionCall by name and order, so ids are made up here (or taken from
`functionCall.id` when Gemini sends one) and a tool message's name is found from the call it answers. Gemini 3
signs its function calls (`thoughtSignature`) and refuses a replayed call without its signature: it travels in
`tool_calls[].extra_content.google.thought_signature`, as in Google's own OpenAI-compatible endpoint. A client
that drops it (it rebuilds tool calls from id, name and arguments), or a call another model made before a fallback,
gets Google's documented sentinel instead, which tells Gemini to skip the check: a refused turn helps nobody.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from turnout.backends.gemini_schema import clean_schema
from turnout.backends.wire import call_arguments, content_text, data_url
from turnout.errors import InvalidRequestError

FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length",
    **dict.fromkeys(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                     "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR"), "content_filter"),
}
SKIP_SIGNATURE = "skip_thought_signature_validator"  # sent as this literal string, not base64 of it
# reasoning_effort as a thinking budget, the mapping Google's own OpenAI-compatible endpoint uses (Gemini 3 takes
# budgets too, and refuses a request that sets both a budget and a thinkingLevel)
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# the extension of a URL, for the mimeType Gemini requires on fileData (not `mimetypes`: it reads the host's
# mime.types on first use, blocking I/O on the loop, and answers differently from host to host)
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
              "gif": "image/gif", "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf",
              "wav": "audio/wav", "mp3": "audio/mp3"}


def _data_url(url: str, param: str) -> dict[str, Any]:
    mime_type, data = data_url(url, param)
    return {"inlineData": {"mimeType": mime_type, "data": data}}


def _url_part(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        return _data_url(url, param)
    if url.startswith(("http://", "https://")):
        ext = url.split("?")[0].rsplit(".", 1)[-1].lower()
        if ext not in MIME_TYPES:
            raise InvalidRequestError(
                "Gemini needs the media type of a URL, and this one's extension does not say it "
                f"(known: {', '.join(sorted(MIME_TYPES))}); send it as a base64 data: URL instead", param=param)
        return {"fileData": {"mimeType": MIME_TYPES[ext], "fileUri": url}}
    raise InvalidRequestError("the URL must be a data: URL or an http(s) URL", param=param)


def _part(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"text": part.get("text", "")}
    if kind == "image_url":
        image = part.get("image_url")
        return _url_part(image.get("url", "") if isinstance(image, dict) else "", f"{param}.image_url.url")
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        return {"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}}
    if kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:"):
        return _data_url(part["file"]["file_data"], f"{param}.file.file_data")
    raise InvalidRequestError(f"content part type '{kind}' is not supported by Gemini models (text, image_url, "
                              "input_audio, file with file_data)", param=f"{param}.type")


def _parts(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [_part(p, f"{param}[{i}]") for i, p in enumerate(content)]


def _function_call(call: dict[str, Any], param: str) -> dict[str, Any]:
    _, name, args = call_arguments(call, param)
    if not isinstance(args, dict):  # Gemini's args is an object (a protobuf Struct), as OpenAI's always are
        raise InvalidRequestError("tool call arguments must be a JSON object", param=f"{param}.function.arguments")
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
    if signature:
        part["thoughtSignature"] = signature
    return part


def _function_response(msg: dict[str, Any], names: dict[str, str], param: str) -> dict[str, Any]:
    name = names.get(msg.get("tool_call_id") or "") or msg.get("name")
    if not name:
        raise InvalidRequestError("Gemini needs the function's name: this tool message's tool_call_id matches no "
                                  "earlier assistant tool call", param=f"{param}.tool_call_id")
    text = content_text(msg.get("content"))
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    # Gemini takes an object only (a protobuf Struct): anything else is wrapped
    return {"functionResponse": {"name": name, "response": value if isinstance(value, dict) else {"result": value}}}


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    # one turn per role change: parallel calls' responses belong in one user turn
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    elif parts:
        contents.append({"role": role, "parts": parts})


def _contents(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name, for the tool messages that answer them
    for i, msg in enumerate(messages):
        role, param = msg.get("role"), f"messages[{i}]"
        if role in ("system", "developer"):
            system.append(content_text(msg.get("content")))
        elif role == "user":
            _append(contents, "user", _parts(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            parts = _parts(msg.get("content"), f"{param}.content")
            for j, call in enumerate(msg.get("tool_calls") or []):
                parts.append(_function_call(call, f"{param}.tool_calls[{j}]"))
                names[call.get("id", "")] = (call.get("function") or {}).get("name", "")
            _append(contents, "model", parts)
        elif role in ("tool", "function"):
            _append(contents, "user", [_function_response(msg, names, param)])
    return system, contents


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    for i, tool in enumerate(tools):
        if tool.get("type", "function") != "function":
            raise InvalidRequestError(f"tool type '{tool.get('type')}' is not supported by Gemini models",
                                      param=f"tools[{i}].type")
        fn = tool.get("function") or {}
        spec: dict[str, Any] = {"name": fn.get("name", "")}
        if fn.get("description"):
            spec["description"] = fn["description"]
        parameters = clean_schema(fn.get("parameters"))
        if isinstance(parameters, dict) and parameters.get("properties"):
            spec["parameters"] = parameters  # a function without arguments has none: Gemini refuses `{}`
        declarations.append(spec)
    return [{"functionDeclarations": declarations}]


def _allowed(choice: dict[str, Any]) -> tuple[str, list[str]]:
    """OpenAI's `allowed_tools` choice: its mode and the names it allows."""
    allowed = choice.get("allowed_tools") or {}
    names = [(t.get("function") or {}).get("name", "") for t in allowed.get("tools") or [] if isinstance(t, dict)]
    return allowed.get("mode", "auto"), names


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        mode, names = _allowed(choice)
        # allowedFunctionNames goes with ANY only; under auto the other tools are left out of the request instead
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names} if mode == "required"
                else {"mode": "AUTO"}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name", "")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if isinstance(choice, str) and choice in TOOL_CHOICE_MODES:
        return {"functionCallingConfig": {"mode": TOOL_CHOICE_MODES[choice]}}
    return None


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                         ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    if (limit := body.get("max_completion_tokens") or body.get("max_tokens")) is not None:
        config["maxOutputTokens"] = limit
    if stop := body.get("stop"):
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if (body.get("n") or 1) > 1:
        config["candidateCount"] = body["n"]
    if (budget := THINKING_BUDGETS.get(str(body.get("reasoning_effort")))) is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget}
    fmt = body.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = clean_schema(schema)
    return config


def _sign_unsigned(contents: list[dict[str, Any]]) -> None:
    # Gemini 3 checks the first functionCall of each model turn (parallel calls after it carry no signature)
    for content in contents:
        calls = [p for p in content["parts"] if "functionCall" in p] if content["role"] == "model" else []
        if calls and not calls[0].get("thoughtSignature"):
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def to_gemini(body: dict[str, Any], sign_unsigned: bool = True) -> dict[str, Any]:
    """An OpenAI chat completion request as a Gemini generateContent request (the model is in the URL).
    `sign_unsigned`: a replayed call that came back without its thought signature gets SKIP_SIGNATURE."""
    system, contents = _contents(body.get("messages") or [])
    if sign_unsigned:
        _sign_unsigned(contents)
    out: dict[str, Any] = {"contents": contents}
    if any(system):
        out["systemInstruction"] = {"parts": [{"text": s} for s in system if s]}
    tools, choice = body.get("tools") or [], body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        names = set(_allowed(choice)[1])
        tools = [t for t in tools if (t.get("function") or {}).get("name") in names]
    if tools:
        out["tools"] = _tools(tools)
        if (tool_config := _tool_config(choice)) is not None:
            out["toolConfig"] = tool_config
    if config := _generation_config(body):
        out["generationConfig"] = config
    return out


def usage_of(meta: dict[str, Any]) -> dict[str, Any]:
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts  # thinking is billed as output
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if meta.get("cachedContentTokenCount"):
        out["prompt_tokens_details"] = {"cached_tokens": meta["cachedContentTokenCount"]}
    if thoughts:
        out["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return out


def tool_call(part: dict[str, Any]) -> dict[str, Any]:
    """A functionCall part as an OpenAI tool call (arguments as a JSON text)."""
    fn = part["functionCall"]
    call: dict[str, Any] = {"id": fn.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                            "function": {"name": fn.get("name", ""), "arguments": json.dumps(fn.get("args") or {})}}
    if part.get("thoughtSignature"):
        call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return call


def finish_reason(reason: str | None, called: bool) -> str:
    mapped = FINISH_REASONS.get(reason or "STOP", "stop")
    return "tool_calls" if called and mapped == "stop" else mapped


def block_message(feedback: dict[str, Any]) -> str:
    return f"Gemini blocked the prompt ({feedback.get('blockReason')})"


def from_gemini(response: dict[str, Any], model: str) -> dict[str, Any]:
    """A Gemini GenerateContentResponse as an OpenAI chat completion."""
    choices = []
    for i, candidate in enumerate(response.get("candidates") or []):
        parts = (candidate.get("content") or {}).get("parts") or []
        texts = [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]
        calls = [tool_call(p) for p in parts if isinstance(p.get("functionCall"), dict)]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": candidate.get("index", i), "message": message, "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls))})
    feedback = response.get("promptFeedback") or {}
    if not choices and feedback.get("blockReason"):
        # a 200 with finish_reason content_filter (as Azure OpenAI filters), not an error: a stream can only say
        # it this way once it has started, and both modes should say the same; `refusal` tells the reason
        choices.append({"index": 0, "logprobs": None, "finish_reason": "content_filter",
                        "message": {"role": "assistant", "content": "", "refusal": block_message(feedback)}})
    return {
        "id": response.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.get("modelVersion") or model,
        "choices": choices,
        "usage": usage_of(response.get("usageMetadata") or {}),
    }


class StreamTranslator:
    """Turns Gemini stream events (each a whole GenerateContentResponse) into OpenAI chunk dicts.

    Gemini sends no start or end event: the role chunk comes with the first event, a candidate's finish chunk
    with its `finishReason`, and the usage chunk (usageMetadata is cumulative: the last one counts) from `close`,
    once the stream has ended."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.id, self.model, self.created = f"chatcmpl-{uuid.uuid4().hex}", model, int(time.time())
        self.started = False
        self.usage: dict[str, Any] = {}
        self.calls: dict[int, int] = {}  # candidate index → tool calls sent so far
        self.open: set[int] = set()  # candidates that have begun and not finished
        self.finished = False  # every candidate that began has a finish reason

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _begin(self, event: dict[str, Any]) -> None:
        self.started = True
        self.id = event.get("responseId") or self.id
        self.model = event.get("modelVersion") or self.model

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.started:
            self._begin(event)
        self.usage = event.get("usageMetadata") or self.usage
        out: list[dict[str, Any]] = []
        candidates = event.get("candidates") or []
        for i, candidate in enumerate(candidates):
            out += self._candidate(candidate.get("index", i), candidate)
        feedback = event.get("promptFeedback") or {}
        if not candidates and feedback.get("blockReason"):
            out += [self._chunk(0, {"role": "assistant", "content": "", "refusal": block_message(feedback)}),
                    self._chunk(0, {}, "content_filter")]
            self.finished = True
        return out

    def _candidate(self, index: int, candidate: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        if index not in self.calls:
            self.calls[index] = 0
            self.open.add(index)
            out.append(self._chunk(index, {"role": "assistant", "content": ""}))
        for part in (candidate.get("content") or {}).get("parts") or []:
            if isinstance(part.get("text"), str) and part["text"] and not part.get("thought"):
                out.append(self._chunk(index, {"content": part["text"]}))
            elif isinstance(part.get("functionCall"), dict):
                # Gemini streams a call whole, never its arguments in pieces: one delta carries it all
                out.append(self._chunk(index, {"tool_calls": [{"index": self.calls[index], **tool_call(part)}]}))
                self.calls[index] += 1
        if candidate.get("finishReason") and index in self.open:
            self.open.discard(index)
            self.finished = not self.open
            out.append(self._chunk(index, {}, finish_reason(candidate["finishReason"], self.calls[index] > 0)))
        return out

    def close(self) -> list[dict[str, Any]]:
        """What follows the last event: the usage chunk, when the request asked for one."""
        if not self.include_usage:
            return []
        return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [], "usage": usage_of(self.usage)}]
