"""Signed webhooks: subscriptions and job callbacks, delivered from the transactional outbox
(migration 0010) by a dispatcher in every process, as Standard Webhooks specifies."""
