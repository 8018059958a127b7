"""Example translations that open the conversation (few-shot priming).

A small instruct model told only to "translate" often answers in the source
language, copies it, or adds comments. Shown finished translations first, as
earlier turns of the same chat, it answers in kind. The examples sit in the
system-prompt prefix, which is encoded once per session: they cost nothing per
sentence.

The sentences are our own (written for Juno, no dataset's): line ``i`` of every
language is the same sentence. A language pair outside this table gets no
examples (zero-shot).
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "en": (
        "Thanks for joining us today; we will start with a short update from the research team.",
        "The new station, which opened in March, serves about 40,000 passengers a day.",
    ),
    "fr": (
        "Merci de vous joindre à nous aujourd'hui ; nous commencerons par une brève mise à jour "
        "de l'équipe de recherche.",
        "La nouvelle gare, qui a ouvert en mars, accueille environ 40 000 voyageurs par jour.",
    ),
    "de": (
        "Danke, dass Sie heute dabei sind; wir beginnen mit einem kurzen Update des "
        "Forschungsteams.",
        "Der neue Bahnhof, der im März eröffnet wurde, wird täglich von etwa 40.000 Fahrgästen "
        "genutzt.",
    ),
    "es": (
        "Gracias por acompañarnos hoy; empezaremos con una breve actualización del equipo de "
        "investigación.",
        "La nueva estación, que abrió en marzo, recibe unos 40.000 pasajeros al día.",
    ),
    "pt": (
        "Obrigado por estarem conosco hoje; vamos começar com uma breve atualização da equipe "
        "de pesquisa.",
        "A nova estação, inaugurada em março, recebe cerca de 40 mil passageiros por dia.",
    ),
    "it": (
        "Grazie per essere qui oggi; inizieremo con un breve aggiornamento del gruppo di ricerca.",
        "La nuova stazione, aperta a marzo, serve circa 40.000 passeggeri al giorno.",
    ),
}


def examples_for(source: str, target: str, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` (source, target) sentence pairs for two language codes."""
    if n < 0:
        raise ValueError(f"the number of examples must not be negative, got {n}")
    if source == target or source not in EXAMPLES or target not in EXAMPLES:
        return []
    return list(zip(EXAMPLES[source], EXAMPLES[target], strict=True))[:n]
