"""Alerts: rules over the API's objects, their ``for:`` and ``keepFiringFor:`` life, grouped
and de-duplicated notifications to webhooks and email, silences, and the status users read.

The pieces are kept apart so that each can be tested alone: :mod:`.model` (an alert, the
rule-source Protocol), :mod:`.builtin` (rules over pods, nodes and HPAs), :mod:`.engine`
(pending -> firing -> resolved), :mod:`.config` (the ``bosun-alerting`` ConfigMap),
:mod:`.silences`, :mod:`.notify` (groups, timing, de-duplication), :mod:`.receivers`
(webhook, SMTP) and :mod:`.delivery` (retries with back-off). Users' rules are Prometheus
rule files in labelled ConfigMaps (:mod:`.rulefile`, :mod:`.userrules`), evaluated through
the API server's query API (:mod:`.exprsource`); :mod:`.builtin_expr` holds the built-in rules
over the metrics history and :mod:`.clustercerts` the cluster's own certificates. The
control-plane component that ties them together is :mod:`bosun.controllers.alerting`.
"""
