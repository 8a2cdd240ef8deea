"""Agent frameworks that speak the Responses API, pointed at a real turnout: the OpenAI Agents SDK, pydantic-ai's
OpenAIResponsesModel and LangChain's ChatOpenAI(use_responses_api=True). Each calls a tool and finishes."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.server.test_responses_door import config


@pytest.fixture
def server(serve, upstream):
    return serve(config(upstream.url))


def test_openai_agents_sdk_runs_a_tool_and_finishes(server, upstream_requests):
    from agents import (
        Agent,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # no export to OpenAI's tracing endpoint
    calls = []

    @function_tool
    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        calls.append((city, unit))
        return f"18 degrees {unit} in {city}"

    model = OpenAIResponsesModel(model="auto", openai_client=AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x",
                                                                           max_retries=0))
    agent = Agent(name="weather", instructions="Answer about the weather.", tools=[get_weather], model=model)
    result = Runner.run_sync(agent, "weather in Paris #tool")
    assert calls == [("Paris", "celsius")]
    assert result.final_output == "echo: weather in Paris #tool"
    sent = upstream_requests()[-1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "Answer about the weather."}
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_mock_1", "content": "18 degrees celsius in Paris"}


def test_pydantic_ai_responses_model_with_a_tool(server, upstream_requests):
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIResponsesModel("auto", provider=OpenAIProvider(base_url=f"{server.url}/v1", api_key="x"))
    agent = Agent(model)
    calls = []

    @agent.tool_plain
    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return f"18 {unit}"

    result = agent.run_sync("weather in Paris #tool")
    assert calls == ["Paris"] and result.output == "echo: weather in Paris #tool"
    assert upstream_requests()[-1]["body"]["messages"][-1]["content"] == "18 celsius"


def test_langchain_chat_openai_with_the_responses_api(server, upstream_requests):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="auto", base_url=f"{server.url}/v1", api_key="x", use_responses_api=True, max_retries=0)
    answer = llm.invoke("hello from langchain")
    assert answer.text == "echo: hello from langchain"
    assert answer.usage_metadata["input_tokens"] == 5 and answer.usage_metadata["output_tokens"] == 4

    @tool
    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        return "18"

    message = llm.bind_tools([get_weather]).invoke("weather in Paris #tool")
    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"] == {"city": "Paris", "unit": "celsius"}
    assert message.tool_calls[0]["id"] == "call_mock_1"
    streamed = "".join(chunk.text for chunk in llm.stream("stream from langchain"))
    assert streamed == "echo: stream from langchain"
    assert upstream_requests()[-1]["body"]["stream"] is True


def test_openai_agents_sdk_default_model_is_the_responses_api(server, upstream_requests):
    """The SDK's own default: a model given by name, the client set once with set_default_openai_client; the
    SDK then speaks the Responses API, which turnout routes."""
    import agents
    from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    calls = []

    @function_tool
    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return "18"

    since = time.time()
    previous = agents.models._openai_shared.get_default_openai_client()
    set_default_openai_client(AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0),
                              use_for_tracing=False)
    try:
        agent = Agent(name="weather", instructions="Answer about the weather.", tools=[get_weather], model="auto")
        result = Runner.run_sync(agent, "weather in Paris #tool")
    finally:
        agents.models._openai_shared.set_default_openai_client(previous)
    assert calls == ["Paris"] and result.final_output == "echo: weather in Paris #tool"
    records = httpx.get(f"{server.url}/v1/router/outcomes", params={"since": since}).json()["data"]
    doors = {r["door"] for r in records}
    assert doors == {"responses"}  # the SDK's default spoke the Responses API; turnout translated it for the mock
