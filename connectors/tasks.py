from celery import shared_task

from connectors.dispatcher import dispatch_account_run
from connectors.dispatcher import dispatch_sweep as sweep
from connectors.receipts import callbacks_rejected_expire as rejected_expire
from connectors.sandbox import receipts_post


@shared_task
def dispatch_account(account_id: int) -> int:
    """Sends the account's due messages for a while (woken after a commit and by the sweep)."""
    return dispatch_account_run(account_id=account_id)


@shared_task
def dispatch_sweep() -> None:
    """Beat: leases that ran out become unknown; accounts with due messages get a dispatcher."""
    sweep()


@shared_task
def sandbox_receipts() -> int:
    """Beat: sandbox providers post the receipts that are due."""
    return receipts_post()


@shared_task
def callbacks_rejected_expire() -> int:
    """Beat: rejected callbacks past their retention are deleted."""
    return rejected_expire()
