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
        "On Tuesday, officials in the region said that heavy rain had damaged more than 200 homes "
        "and closed several roads.",
        "The bird, which lives only on a few islands in the Pacific, was first described by "
        "scientists in 1850.",
    ),
    "fr": (
        "Merci de vous joindre à nous aujourd'hui ; nous commencerons par une brève mise à jour "
        "de l'équipe de recherche.",
        "La nouvelle gare, qui a ouvert en mars, accueille environ 40 000 voyageurs par jour.",
        "Mardi, les autorités de la région ont déclaré que de fortes pluies avaient endommagé plus "
        "de 200 maisons et fermé plusieurs routes.",
        "L'oiseau, qui ne vit que sur quelques îles du Pacifique, a été décrit pour la première "
        "fois par des scientifiques en 1850.",
    ),
    "de": (
        "Danke, dass Sie heute dabei sind; wir beginnen mit einem kurzen Update des "
        "Forschungsteams.",
        "Der neue Bahnhof, der im März eröffnet wurde, wird täglich von etwa 40.000 Fahrgästen "
        "genutzt.",
        "Am Dienstag teilten Behörden in der Region mit, dass starker Regen mehr als 200 Häuser "
        "beschädigt und mehrere Straßen gesperrt habe.",
        "Der Vogel, der nur auf einigen Inseln im Pazifik lebt, wurde 1850 zum ersten Mal von "
        "Wissenschaftlern beschrieben.",
    ),
    "es": (
        "Gracias por acompañarnos hoy; empezaremos con una breve actualización del equipo de "
        "investigación.",
        "La nueva estación, que abrió en marzo, recibe unos 40.000 pasajeros al día.",
        "El martes, las autoridades de la región dijeron que las fuertes lluvias habían dañado más "
        "de 200 viviendas y cerrado varias carreteras.",
        "El ave, que solo vive en unas pocas islas del Pacífico, fue descrita por primera vez por "
        "científicos en 1850.",
    ),
    "pt": (
        "Obrigado por estarem conosco hoje; vamos começar com uma breve atualização da equipe "
        "de pesquisa.",
        "A nova estação, inaugurada em março, recebe cerca de 40 mil passageiros por dia.",
        "Na terça-feira, autoridades da região disseram que as fortes chuvas danificaram mais de "
        "200 casas e fecharam várias estradas.",
        "A ave, que vive apenas em algumas ilhas do Pacífico, foi descrita pela primeira vez por "
        "cientistas em 1850.",
    ),
    "it": (
        "Grazie per essere qui oggi; inizieremo con un breve aggiornamento del gruppo di ricerca.",
        "La nuova stazione, aperta a marzo, serve circa 40.000 passeggeri al giorno.",
        "Martedì le autorità della regione hanno dichiarato che le forti piogge avevano "
        "danneggiato più di 200 case e chiuso diverse strade.",
        "L'uccello, che vive solo su alcune isole del Pacifico, fu descritto per la prima volta "
        "dagli scienziati nel 1850.",
    ),
}


def examples_for(source: str, target: str, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` (source, target) sentence pairs for two language codes."""
    if n < 0:
        raise ValueError(f"the number of examples must not be negative, got {n}")
    if source == target or source not in EXAMPLES or target not in EXAMPLES:
        return []
    return list(zip(EXAMPLES[source], EXAMPLES[target], strict=True))[:n]
