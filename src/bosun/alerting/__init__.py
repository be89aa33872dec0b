"""Alerts: rules over the API's objects, their ``for:`` and ``keepFiringFor:`` life, grouped
and de-duplicated notifications to webhooks and email, silences, and the status users read.

The pieces are kept apart so that each can be tested alone: :mod:`.model` (an alert, the
rule-source Protocol), :mod:`.builtin` (rules over pods, nodes and HPAs), :mod:`.engine`
(pending -> firing -> resolved), :mod:`.config` (the ``bosun-alerting`` ConfigMap),
:mod:`.silences`, :mod:`.notify` (groups, timing, de-duplication), :mod:`.receivers`
(webhook, SMTP) and :mod:`.delivery` (retries with back-off). The control-plane component
that ties them together is :mod:`bosun.controllers.alerting`.
"""
