"""The rate-limit mapper (``secton-harness ratelimit``): its own package inside the load
job because its transport is a Locust ``FastHttpUser`` (only ``loadtests/`` may import
locust/gevent), yet it shares no module with the load test itself.

Modules: ``command`` (CLI), ``driver`` (scope order, rests, verification), ``phases``
(burst, cooldown, recovery, refill searches), ``transport`` (paced, bounded, recorded
requests), ``infer`` (figures from observations), ``policy`` (``--expect``), ``output``
(``ratelimit.json`` and the card).
"""
