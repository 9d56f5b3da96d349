"""Operations out and in: webhooks (events from a durable outbox) and the pre-create hook.

* ``events.py``   what happened, as outbox rows written in the transaction of the change;
* ``signing.py``  Standard Webhooks signatures and secrets;
* ``outbox.py``   the SQL of endpoints and deliveries (claim, settle, list, resend);
* ``sender.py``   the background task that delivers, retries and gives up;
* ``hook.py``     the synchronous pre-create hook (``--hook-url``);
* ``tls.py``      the one TLS context of their HTTP clients.
"""
