"""The clients that speak chat completions keep working through a real turnout: LangChain's ChatOpenAI, pydantic-ai's
OpenAIChatModel, the OpenAI Agents SDK's chat-completions model, and the `llm` CLI. Each is routed (model "auto")
and the tool-calling ones call a tool and finish."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import base_config


@pytest.fixture
def server(serve, upstream):
    return serve(base_config(upstream.url))


def test_langchain_chat_openai(server, upstream_requests):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="auto", base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    assert llm.invoke("hello from langchain").content == "echo: hello from langchain"
    assert "".join(c.content for c in llm.stream("streamed hello")) == "echo: streamed hello"

    @tool
    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        return "18"

    message = llm.bind_tools([get_weather]).invoke("weather in Paris #tool")
    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"] == {"city": "Paris", "unit": "celsius"}
    assert upstream_requests()[-1]["path"] == "/v1/chat/completions"


def test_pydantic_ai_chat_model_with_a_tool(server, upstream_requests):
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    agent = Agent(OpenAIChatModel("auto", provider=OpenAIProvider(base_url=f"{server.url}/v1", api_key="x")))
    calls = []

    @agent.tool_plain
    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return f"18 {unit}"

    result = agent.run_sync("weather in Paris #tool")
    assert calls == ["Paris"] and result.output == "echo: weather in Paris #tool"
    assert upstream_requests()[-1]["body"]["messages"][-1] == {"role": "tool", "tool_call_id": "call_mock_1",
                                                               "content": "18 celsius"}


def test_openai_agents_sdk_chat_completions_model(server):
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # no export to OpenAI's tracing endpoint
    calls = []

    @function_tool
    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return "18"

    model = OpenAIChatCompletionsModel(model="auto", openai_client=AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="x", max_retries=0))
    agent = Agent(name="weather", instructions="Answer about the weather.", tools=[get_weather], model=model)
    result = Runner.run_sync(agent, "weather in Paris #tool")
    assert calls == ["Paris"] and result.final_output == "echo: weather in Paris #tool"


def test_llm_cli(server, tmp_path: Path):
    """Simon Willison's `llm`, with turnout declared as an OpenAI-compatible model in its extra-openai-models.yaml."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: turnout\n  model_name: auto\n  api_base: {server.url}/v1\n")
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path), "OPENAI_API_KEY": "x"}
    done = subprocess.run([sys.executable, "-m", "llm", "-m", "turnout", "--no-log", "hello from llm"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "echo: hello from llm"
