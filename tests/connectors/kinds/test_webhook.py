"""The webhook connector against a receiving server we do not own (a local HTTP server speaking
plain HTTP): signed requests with the idempotency key; answers classified; garbage kept."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.accounts import account_create, kind_instance
from connectors.models import Message
from connectors.protocol import OutgoingMessage, PauseAccountError, PermanentError, RetryableError
from connectors.services import message_enqueue

SECRET = "webhook-signing-secret-0123"


class Receiver(BaseHTTPRequestHandler):
    answers: list = []
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status, answer = type(self).answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    # The receiving server listens on 127.0.0.1: allowed here only, never by default.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.OUTBOUND_ALLOWED_PORTS = ["1024-65535"]
    Receiver.answers, Receiver.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def webhook(db, receiver):
    # A rate far above what the tests send: its bucket fills within the first millisecond, so two
    # dispatches one right after the other are never held by the rate limit (not what these test).
    return account_create(
        kind="webhook",
        name="ERP",
        values={"url": receiver, "signing_secret": SECRET},
        rate_per_second=100_000,
    )


def outgoing(key="order-1"):
    return OutgoingMessage(
        id=1, idempotency_key=key, recipient="42", content={"payload": {"a": 1}}, customer_id=42
    )


def test_requests_are_signed_and_carry_the_idempotency_key(webhook):
    Receiver.answers.append((200, b'{"id": "erp-77"}'))
    result = kind_instance(webhook).send(outgoing())
    headers, body = Receiver.received[0]
    assert result.provider_message_id == "erp-77"
    assert headers["Idempotency-Key"] == "order-1"
    assert headers["X-Signature"] == hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert json.loads(body)["content"] == {"payload": {"a": 1}}


@pytest.mark.parametrize(
    ("status", "answer", "error"),
    [
        (503, b"busy", RetryableError),
        (429, b"slow down", RetryableError),
        (401, b"bad signature", PauseAccountError),
        (400, b"no such customer", PermanentError),
        (200, b"\x89PNG\r\n not json", PermanentError),
    ],
)
def test_answers_are_classified_and_kept(webhook, status, answer, error):
    Receiver.answers.append((status, answer))
    with pytest.raises(error) as raised:
        kind_instance(webhook).send(outgoing())
    assert raised.value.raw == answer.decode("utf-8", "replace")


def test_a_garbage_answer_fails_one_message_and_the_dispatcher_goes_on(webhook, make_customer):
    Receiver.answers += [(200, b"<html>gateway</html>"), (200, b'{"id": "ok-2"}')]
    customer = make_customer()
    for key in ("one", "two"):
        message_enqueue(
            account=webhook, customer=customer, idempotency_key=key, body={"payload": '{"k": "v"}'}
        )
    from connectors import dispatcher

    dispatcher.dispatch_batch(account=webhook, limit=1)
    dispatcher.dispatch_batch(account=webhook, limit=1)
    first, second = Message.objects.get(idempotency_key="one"), Message.objects.get(idempotency_key="two")
    assert (first.status, first.provider_answer) == ("failed", "<html>gateway</html>")
    assert (second.status, second.provider_message_id) == ("sent", "ok-2")
