"""The sender against scripted loopback HTTPS servers: retry rule, requests, TLS refusals."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog

from tcwebhook.backoff import Backoff
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.simulator.calls import BodyFormat, WebhookRequest, plan_requests
from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.samples import Family, SampleFactory, parse_selection
from tcwebhook.simulator.sender import (
    CONNECTION_ERROR,
    TLS_REFUSED,
    Outcome,
    SendAttempt,
    Sender,
    Verdict,
    classify,
    require_https,
    sender_backoff,
)
from tcwebhook.simulator.stats import Tally
from tcwebhook.simulator.trust import SELF_SIGNED_MESSAGE
from tcwebhook.transport.certs import client_context

from .conftest import StartServer
from .servers import DroppingFront, Pki

FAST = sender_backoff(max_retries=3, initial_wait=0.01, max_wait=0.05)


@dataclass
class Recorder:
    """Observer that keeps every announced back-off and finished outcome."""

    waits: list[float] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def attempted(self, outcome: Outcome, attempt: SendAttempt, next_wait: float | None) -> None:
        if next_wait is not None:
            self.waits.append(next_wait)

    def finished(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def send_all(
    ca: Path,
    requests: Iterable[WebhookRequest],
    *,
    backoff: Backoff = FAST,
    timeout: float = 5.0,
    concurrency: int = 1,
    credentials: Credentials | None = None,
) -> tuple[Tally, Recorder]:
    recorder = Recorder()

    async def main() -> Tally:
        sender = Sender(
            ssl_context=client_context(ca),
            credentials=credentials,
            backoff=backoff,
            timeout=timeout,
            max_connections=concurrency,
            observer=recorder,
        )
        async with sender:
            return await sender.run(requests, concurrency=concurrency)

    return asyncio.run(main()), recorder


def samples(url: str, count: int = 1, events: str = "order", **kwargs: object) -> list[WebhookRequest]:
    factory = SampleFactory(seed=7)
    return list(plan_requests(factory.stream(parse_selection(events), count), count, url=url, **kwargs))  # type: ignore[arg-type]


class TestClassify:
    """Contract §2: 2xx done; 4xx and 500 final; > 500 and no answer retried."""

    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_done(self, status: int) -> None:
        assert classify(status) is Verdict.DONE

    @pytest.mark.parametrize("status", [100, 301, 302, 400, 401, 403, 404, 409, 422, 429, 499, 500])
    def test_final(self, status: int) -> None:
        assert classify(status) is Verdict.FINAL

    @pytest.mark.parametrize("status", [501, 502, 503, 504, 599, None])
    def test_retry(self, status: int | None) -> None:
        assert classify(status) is Verdict.RETRY


class TestRetryRule:
    """Exactly the documented rule: > 500 and no answer retried; 4xx and 500 final; 2xx done."""

    @pytest.mark.parametrize("step", [502, 503, 504, 599, "drop"])
    def test_retried(self, pki: Pki, serve: StartServer, good_context: object, step: int | str) -> None:
        server = serve(good_context, [step, 200])
        tally, recorder = send_all(pki.ca_path, samples(server.url))
        assert len(server.wait_for(2)) == 2
        (outcome,) = recorder.outcomes
        assert outcome.accepted and outcome.result == "200" and outcome.retries == 1
        assert tally.all_accepted

    def test_timeout_is_retried(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context, ["hang", 202])
        server.hang_seconds = 2.0
        _, recorder = send_all(pki.ca_path, samples(server.url), timeout=0.3)
        (outcome,) = recorder.outcomes
        assert [a.error for a in outcome.attempts] == ["timeout", None]
        assert outcome.accepted and outcome.result == "202"

    @pytest.mark.parametrize("code", [500, 400, 401, 403, 404, 409, 422])
    def test_not_retried(self, pki: Pki, serve: StartServer, good_context: object, code: int) -> None:
        server = serve(good_context, [code], default=200)
        tally, recorder = send_all(pki.ca_path, samples(server.url))
        (outcome,) = recorder.outcomes
        # The send is over: any retry would already have arrived.
        assert len(server.arrivals) == 1
        assert outcome.result == str(code) and not outcome.accepted and outcome.retries == 0
        assert recorder.waits == []
        assert not tally.all_accepted

    @pytest.mark.parametrize("code", [200, 201, 202, 204])
    def test_2xx_done(self, pki: Pki, serve: StartServer, good_context: object, code: int) -> None:
        server = serve(good_context, [code])
        _, recorder = send_all(pki.ca_path, samples(server.url))
        assert len(server.arrivals) == 1 and recorder.outcomes[0].accepted

    def test_redirect_not_followed(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context, [302])
        _, recorder = send_all(pki.ca_path, samples(server.url))
        assert len(server.arrivals) == 1
        assert recorder.outcomes[0].result == "302" and not recorder.outcomes[0].accepted

    def test_backoff_grows(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context, [503, 502, 504, 503, 200])
        backoff = sender_backoff(max_retries=5, initial_wait=0.08, max_wait=10)
        _, recorder = send_all(pki.ca_path, samples(server.url), backoff=backoff)
        arrivals = server.wait_for(5)
        assert recorder.waits == [0.08, 0.16, 0.32, 0.64]
        gaps = [b.at - a.at for a, b in itertools.pairwise(arrivals)]
        for gap, wait in zip(gaps, recorder.waits, strict=True):
            assert wait - 0.005 <= gap < wait + 0.25, (gaps, recorder.waits)
        assert gaps == sorted(gaps)
        assert recorder.outcomes[0].accepted

    def test_max_retries_respected(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context, default=503)
        _, recorder = send_all(pki.ca_path, samples(server.url), backoff=FAST)
        (outcome,) = recorder.outcomes
        assert len(server.arrivals) == FAST.max_attempts
        assert outcome.result == "503" and not outcome.accepted
        assert outcome.detail == "gave up after 3 retries"

    def test_max_wait_caps_each_wait(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context, default=503)
        backoff = sender_backoff(max_retries=4, initial_wait=0.02, max_wait=0.05)
        _, recorder = send_all(pki.ca_path, samples(server.url), backoff=backoff)
        assert recorder.waits == [0.02, 0.04, 0.05, 0.05]
        assert len(server.arrivals) == 5

    def test_reset_before_handshake_is_retried(
        self, pki: Pki, serve: StartServer, good_context: ssl.SSLContext
    ) -> None:
        server = serve(good_context)
        with DroppingFront(server.port, drop=1) as front:
            tally, recorder = send_all(pki.ca_path, samples(front.url))
        (outcome,) = recorder.outcomes
        assert [a.error for a in outcome.attempts] == [CONNECTION_ERROR, None]
        assert outcome.accepted and tally.refusal is None

    def test_connection_refused_is_retried(self, pki: Pki) -> None:
        requests = samples("https://localhost:9/hook")  # discard port: nothing listens
        backoff = sender_backoff(max_retries=2, initial_wait=0.01, max_wait=30)
        _, recorder = send_all(pki.ca_path, requests, backoff=backoff)
        (outcome,) = recorder.outcomes
        assert outcome.result == CONNECTION_ERROR and len(outcome.attempts) == 3


class TestRequests:
    """What arrives: headers, bodies, GET forms, one kept-alive connection per sender task."""

    def test_bearer_json(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context)
        requests = samples(server.url, count=3, events="mix")
        send_all(pki.ca_path, requests, credentials=Credentials.parse(token="tok-123456"))
        arrivals = server.wait_for(3)
        for request, arrival in zip(requests, arrivals, strict=True):
            assert arrival.method == "POST" and arrival.target == "/hook"
            assert arrival.headers["authorization"] == "Bearer tok-123456"
            assert arrival.headers["content-type"] == "application/json"
            assert arrival.headers["user-agent"].startswith("tcwebhook-send")
            assert arrival.body == request.body
            assert json.loads(arrival.body)["meta"]["messageId"] == request.message_id

    def test_basic_txml(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context)
        requests = samples(server.url, count=2, events="shipment", fmt=BodyFormat.TXML)
        send_all(pki.ca_path, requests, credentials=Credentials.parse(basic="tradecloud:pa:ss"))
        for arrival in server.wait_for(2):
            expected = "Basic " + base64.b64encode(b"tradecloud:pa:ss").decode()
            assert arrival.headers["authorization"] == expected
            assert arrival.headers["content-type"] == "application/xml"
            parsed = parse_webhook("shipments", arrival.body, arrival.headers["content-type"])
            assert parsed.event_name.startswith("Shipment")

    @pytest.mark.parametrize(
        ("events", "id_in", "expected"),
        [
            ("order", "path", "/hook/{order}"),
            ("order", "query", "/hook?orderId={order}"),
            ("shipment", "path", "/hook/{shipment}"),
            ("shipment", "query", "/hook?shipmentId={shipment}"),
        ],
    )
    def test_get_variant(
        self, pki: Pki, serve: StartServer, good_context: object, events: str, id_in: str, expected: str
    ) -> None:
        server = serve(good_context)
        factory = SampleFactory(seed=3)
        event = next(factory.stream(parse_selection(events), 1))
        requests = list(plan_requests(iter([event]), 1, url=server.url, get=True, id_in=id_in))  # type: ignore[arg-type]
        send_all(pki.ca_path, requests)
        (arrival,) = server.wait_for(1)
        assert arrival.method == "GET" and arrival.body == b""
        assert arrival.target == expected.format(order=event.order_id, shipment=event.shipment_id)

    def test_keep_alive(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context)
        send_all(pki.ca_path, samples(server.url, count=10))
        assert {a.connection for a in server.wait_for(10)} == {1}

    def test_concurrency_and_summary(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context, [503, 400], default=202)
        tally, _ = send_all(pki.ca_path, samples(server.url, count=40, events="mix"), concurrency=4)
        arrivals = server.wait_for(41)
        assert len({a.connection for a in arrivals}) <= 4
        message_ids = [json.loads(a.body)["meta"]["messageId"] for a in arrivals]
        assert len(set(message_ids)) == 40  # one retry repeats its message id
        summary = tally.summary(planned=40)
        assert summary["sent"] == 40 and summary["attempts"] == 41 and summary["retries"] == 1
        assert summary["status"] == {"202": 39, "400": 1}
        assert summary["accepted"] == 39 and summary["not_accepted"] == 1
        assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"] <= summary["latency_ms"]["max"]
        assert not tally.all_accepted

    def test_duplicates_repeat_a_body(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context)
        factory = SampleFactory(seed=1)
        requests = list(
            plan_requests(factory.stream(parse_selection("order"), 30), 30, url=server.url, duplicate_rate=0.5)
        )
        tally, _ = send_all(pki.ca_path, requests)
        ids = [json.loads(a.body)["meta"]["messageId"] for a in server.wait_for(30)]
        assert tally.duplicates == len(ids) - len(set(ids)) > 0

    def test_secret_not_logged(self, pki: Pki, serve: StartServer, good_context: object) -> None:
        server = serve(good_context, [503, 401])
        credentials = Credentials.parse(token="very-secret-token-42")
        with structlog.testing.capture_logs() as logs:
            _, recorder = send_all(pki.ca_path, samples(server.url), credentials=credentials)
        assert "very-secret-token-42" not in repr(logs) + repr(recorder.outcomes) + repr(credentials)


class TestTlsRefusal:
    """Refused certificates stop the run with a sentence saying why, as Tradecloud would refuse."""

    def refusal(self, pki: Pki, serve: StartServer, context: object, count: int = 3) -> Tally:
        server = serve(context)
        tally, _ = send_all(pki.ca_path, samples(server.url, count=count))
        assert [a for a in server.arrivals if a.method != "HEAD"] == []  # HEAD: the plain-HTTP probe
        assert tally.events == 1 and tally.results == {TLS_REFUSED: 1}
        assert tally.summary(planned=count)["not_sent"] == count - 1
        return tally

    def test_self_signed(self, pki: Pki, serve: StartServer) -> None:
        assert self.refusal(pki, serve, pki.self_signed()).refusal == SELF_SIGNED_MESSAGE

    def test_missing_intermediate(self, pki: Pki, serve: StartServer) -> None:
        refusal = self.refusal(pki, serve, pki.missing_intermediate()).refusal
        assert refusal is not None and "not trusted, chain incomplete" in refusal

    def test_expired(self, pki: Pki, serve: StartServer) -> None:
        refusal = self.refusal(pki, serve, pki.expired()).refusal
        assert refusal is not None and "expired on" in refusal

    def test_wrong_host(self, pki: Pki, serve: StartServer) -> None:
        refusal = self.refusal(pki, serve, pki.wrong_host()).refusal
        assert refusal is not None and "is for wrong.example, not localhost" in refusal

    def test_tls11_only(self, pki: Pki, serve: StartServer) -> None:
        refusal = self.refusal(pki, serve, pki.tls11_only()).refusal
        assert refusal is not None and "offers only TLS 1.1" in refusal

    def test_plain_http_port(self, pki: Pki, serve: StartServer) -> None:
        refusal = self.refusal(pki, serve, None).refusal
        assert refusal is not None and "plain HTTP" in refusal

    def test_https_only(self) -> None:
        with pytest.raises(ValueError, match="only calls HTTPS"):
            require_https("http://localhost/hook")


def test_samples_family_route() -> None:
    """Shipment events go to the shipment URL when one is given."""
    factory = SampleFactory(seed=5)
    requests = list(
        plan_requests(
            factory.stream(parse_selection("mix"), 96), 96, url="https://h/orders", shipment_url="https://h/shipments"
        )
    )
    for request in requests:
        is_shipment = request.label.startswith("Shipment")
        assert request.url == ("https://h/shipments" if is_shipment else "https://h/orders")
    assert Family.SHIPMENT.envelope_key == "shipment"
