"""Events out (issue 14 item 5): what fetchdeck tells the world when a task finishes or fails.

One module per channel, and the dispatcher that owns delivery:
- notifier.py: `Notifier`, subscribed to the engine's bus; queues, retries with backoff, logs every
  attempt in the task's log, gives pending deliveries a grace period at shutdown;
- report.py: `TaskReport`, the one typed description of a finished task every channel uses;
- apprise_channel.py: Apprise notifications (`[notify] urls`, a task's `notify_urls`), in a thread;
- webhook.py: the generic webhook signed with HMAC-SHA256 (`[webhook] url`, `secret`);
- hooks.py: the post-finish command (`[hooks] on_success`, `on_failure`), never through a shell;
- delivery.py: one delivery's attempts and their task log lines (SaveAny's webhook uses it too);
- channel.py: the channel contract and `DeliveryFailed`.
"""

from core.notify.channel import DeliveryFailed
from core.notify.delivery import deliver
from core.notify.hooks import command_line, environment
from core.notify.notifier import Notifier
from core.notify.report import Outcome, TaskReport
from core.notify.webhook import SIGNATURE_HEADER, sign, verify

__all__ = ["SIGNATURE_HEADER", "DeliveryFailed", "Notifier", "Outcome", "TaskReport", "command_line",
           "deliver", "environment", "sign", "verify"]
