"""Amazon Bedrock's Converse and ConverseStream APIs, translated to and from OpenAI's format (see bedrock_wire),
every request signed with AWS Signature Version 4."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr

from turnout.backends.base import Chunk, register
from turnout.backends.bedrock_wire import (
    EXCEPTION_STATUS,
    EventDecoder,
    StreamException,
    StreamFault,
    StreamTranslator,
    from_converse,
    to_converse,
)
from turnout.backends.http import HTTPBackend
from turnout.backends.transport import Reply
from turnout.config import ConfigError, ConfigIssue, ModelConfig
from turnout.errors import (
    StreamInterruptedError,
    UpstreamError,
)
from turnout.jsonutil import dumps, dumps_str, loads
from turnout.params import Params, validate_params

if TYPE_CHECKING:
    from botocore.credentials import Credentials

SERVICE = "bedrock"  # the signing name; the endpoint's host says bedrock-runtime
SEGMENT_SAFE = "!$&'()*+,;=:@"  # RFC 3986 pchar, beside the unreserved characters quote() keeps anyway
# set by the signer or by the connection layer from the URL and the body, never taken from a plugin
UNSIGNABLE = frozenset({"host", "content-length", "transfer-encoding", "connection", "authorization", "x-amz-date",
                        "x-amz-security-token", "x-amz-content-sha256"})


class BedrockOptions(Params):
    region: str | None = Field(None, description="AWS region; default AWS_REGION, then AWS_DEFAULT_REGION")
    access_key_id: str | None = Field(None, description="default: the environment, then the shared AWS files")
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = Field(None, description="for temporary (STS) credentials")
    profile: str | None = Field(None, description="profile of the shared AWS files; default AWS_PROFILE, then default")


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def resolve_region(options: BedrockOptions, path: str) -> str:
    region = options.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError([ConfigIssue(f"{path}.region", "required: set it here, or AWS_REGION in the environment")])
    return region


def resolve_credentials(options: BedrockOptions, path: str) -> Credentials:
    """The options' keys, else the environment, else the shared credentials and config files. Never the
    instance-metadata or container providers: they reach the network, and a router answers only its backends."""
    from botocore.credentials import Credentials

    if options.access_key_id or options.secret_access_key:
        if not options.access_key_id or not _secret(options.secret_access_key):
            missing = "secret_access_key" if options.access_key_id else "access_key_id"
            raise ConfigError([ConfigIssue(f"{path}.{missing}", "required with "
                                           + ("access_key_id" if options.access_key_id else "secret_access_key"))])
        return Credentials(options.access_key_id, _secret(options.secret_access_key),
                           _secret(options.session_token) or None)
    from botocore.credentials import (
        ConfigProvider,
        EnvProvider,
        SharedCredentialProvider,
    )
    from botocore.exceptions import BotoCoreError

    profile = options.profile or os.environ.get("AWS_PROFILE") or "default"
    providers = [
        EnvProvider(),
        SharedCredentialProvider(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), profile),
        ConfigProvider(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"), profile),
    ]
    try:
        for provider in providers:
            found = provider.load()
            if found is not None:
                # frozen once: these sources hold long-lived keys, and a refresh would be I/O on the request path
                frozen = found.get_frozen_credentials()
                return Credentials(frozen.access_key, frozen.secret_key, frozen.token)
    except BotoCoreError as exc:  # a partial set (a key id without its secret), an unreadable file
        raise ConfigError([ConfigIssue(f"{path}.access_key_id", f"AWS credentials: {exc}")]) from None
    raise ConfigError([ConfigIssue(f"{path}.access_key_id", "no AWS credentials: set access_key_id and "
                                   "secret_access_key here, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the "
                                   "environment, or a profile in the shared AWS files")])


@register("bedrock")
class BedrockBackend(HTTPBackend):
    Options = BedrockOptions

    def __init__(self, name: str, config: ModelConfig, *, path: str = "") -> None:
        path = path or f"models.{name}"
        # credentials and region are checked before the base class opens a connection pool a failure would leak
        options = validate_params(BedrockOptions, config.options, f"{path}.options")
        if config.api_key is not None:
            raise ConfigError([ConfigIssue(f"{path}.api_key", "bedrock requests are signed with AWS credentials: "
                                           "set options.access_key_id and options.secret_access_key instead")])
        try:  # botocore signs, and decodes the event stream; imported only where a bedrock model is configured
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
        except ImportError:
            raise ConfigError([ConfigIssue(f"{path}.provider", "provider 'bedrock' needs botocore: "
                                           "pip install 'turnout[bedrock]'")]) from None
        self.region = resolve_region(options, f"{path}.options")
        self.credentials = resolve_credentials(options, f"{path}.options")
        super().__init__(name, config, path=path)
        # one signer for every request: it holds only the credentials, the service and the region
        self.signer = SigV4Auth(self.credentials, SERVICE, self.region)
        self._request_class = AWSRequest

    def secrets(self) -> tuple[str, ...]:
        # the key id is no secret to AWS, but it names the account: kept out of errors and logs as well
        return tuple(dict.fromkeys(s for s in (*super().secrets(), self.credentials.secret_key,
                                               self.credentials.token, self.credentials.access_key) if s))

    @cached_property
    def endpoint(self) -> str:
        return (self.config.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com").rstrip("/")

    def url(self, operation: str) -> str:
        # a model id may be an ARN (colons, slashes): one path segment, with only what a segment cannot hold
        # percent-encoded, so that both connection layers send the very path that was signed (aiohttp would
        # send a %3A as ":", and the signature would be over another path)
        return f"{self.endpoint}/model/{quote(self.upstream_model, safe=SEGMENT_SAFE)}/{operation}"

    def signed(self, url: str, content: bytes, extra: dict[str, str] | None) -> dict[str, str]:
        """The headers to send, every one of them signed (SigV4 is time-dependent: per request). A plugin's
        header that the backend sets itself, or that the connection layer drops, is left out: it would be
        signed with one value and sent with another."""
        own = {**self.config.headers, "content-type": "application/json"}
        taken = {k.lower() for k in own} | UNSIGNABLE
        headers = {**{k: v for k, v in (extra or {}).items() if k.lower() not in taken}, **own}
        request = self._request_class(method="POST", url=url, data=content, headers=headers)
        self.signer.add_auth(request)
        return dict(request.headers.items())

    async def send(self, operation: str, body: dict[str, Any], headers: dict[str, str] | None, *,
                   stream: bool) -> httpx.Response | Reply:
        url = self.url(operation)
        content = dumps(to_converse(body))
        return await self.post(url, content, stream=stream, headers=self.signed(url, content, headers))

    def error_from(self, response: httpx.Response | Reply, content: bytes) -> UpstreamError:
        """Bedrock's error ({"message"} and the kind in x-amzn-ErrorType), restated in OpenAI's shape so that
        the shared mapping scrubs every field of it."""
        kind = (response.headers.get("x-amzn-errortype") or "").split(":")[0] or None
        try:
            parsed = loads(content)
            message = parsed.get("message") or parsed.get("Message") if isinstance(parsed, dict) else None
        except ValueError:
            message = None
        if message is None:
            message = content[:8192].decode("utf-8", "replace") or response.reason_phrase
        return super().error_from(response, dumps({"error": {"message": str(message), "code": kind}}))

    async def complete(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.send("converse", {**body, "stream": False}, headers, stream=False)
        try:
            return from_converse(loads(response.content), self.upstream_model,
                                 response.headers.get("x-amzn-requestid"))
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(f"upstream '{self.name}' returned a body that is not a Converse response",
                                upstream_status=response.status_code, status=502) from None

    async def stream(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = await self.send("converse-stream", body, headers, stream=True)
        translator = StreamTranslator(self.upstream_model, include_usage, response.headers.get("x-amzn-requestid"))
        decoder = EventDecoder(self.config.max_response_bytes)
        # the role chunk alone is held back until the answer begins: an exception right after messageStart (a
        # throttle) then still fails the request before its first byte, and is retried like a 429
        held: list[Chunk] = []
        started = False
        try:
            async for block in response.aiter_bytes():
                batch, exc = self._translate(decoder, translator, block)
                batch, held = held + batch, []
                if exc is not None:
                    if translator.answering and batch:
                        yield batch
                    raise self.exception_error(exc, translator.answering) from None
                if not translator.answering:
                    held = batch
                elif batch:
                    started = True
                    yield batch
        except httpx.HTTPError as exc:
            raise self.read_failure(exc, started) from None
        finally:
            await response.aclose()
        if not translator.finished:
            raise StreamInterruptedError(f"upstream '{self.name}' ended the stream before it finished")
        if include_usage and not translator.stopped:  # no metadata event: say what is known, not nothing
            yield [dumps_str(translator.usage_chunk({}))]

    def _translate(self, decoder: EventDecoder, translator: StreamTranslator,
                   block: bytes) -> tuple[list[Chunk], StreamException | None]:
        """One network read's chunks, and the exception event that ended them, if one did."""
        batch: list[Chunk] = []
        try:
            for kind, event in decoder.feed(block):
                batch += [dumps_str(chunk) for chunk in translator.feed(kind, event)]
        except StreamException as exc:
            return batch, exc
        except StreamFault as exc:
            raise StreamInterruptedError(f"upstream '{self.name}' sent a malformed event stream ({exc})") from None
        except (AttributeError, TypeError):  # a field of the wrong JSON type
            raise StreamInterruptedError(f"upstream '{self.name}' sent a malformed event") from None
        return batch, None

    def exception_error(self, exc: StreamException, started: bool) -> UpstreamError:
        """An exception event, scrubbed. Before anything was relayed it counts as the HTTP error Bedrock would
        have answered with (a throttle is retried); after, the stream is broken off."""
        error = self.stream_error({"message": exc.message, "code": exc.kind})
        if started:
            return error
        status = EXCEPTION_STATUS.get(exc.kind, 500)
        return UpstreamError(error.message, upstream_status=status, code=error.code, param=error.param)
