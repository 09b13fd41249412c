"""The check library: detectors the ingestion and answer paths apply.

``generation.checks.injection``: injected instructions in chunks and questions
(``detect_injection``, ``detect_question_injection``, ``InjectionDetector``);
``generation.checks.pii``: personal data, by presidio offline (``PiiCheck``); per-collection
policies come next.
"""
