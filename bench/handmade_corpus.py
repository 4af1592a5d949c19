"""A hand-made corpus for combined queries and compositional descriptions (bench/queries_boolean.py).

Fifty sentences, each mention tagged by hand with every description it answers: ``river`` and
``river in Africa`` for the Nile, ``city`` and ``capital city`` for Cairo. Context words are in the
text only sometimes ("Cairo is the capital of Egypt", but "Nairobi hosts ..."), as in real text.
"""

from __future__ import annotations

R, RA, RE = "river", "river in Africa", "river in Europe"
C, CAP, CG, CA = "city", "capital city", "city in Germany", "city in Africa"
L, LA = "lake", "lake in Africa"
POL, PARTY, CO, TEAM, COUNTRY = "politician", "political party", "company", "sports team", "country"

SENTENCES = [
    ("The Nile flows north through Egypt before reaching the Mediterranean Sea.",
     [("Nile", {R, RA}), ("Egypt", {COUNTRY}), ("Mediterranean Sea", set())]),
    ("Fishermen on the Congo River trade in Kinshasa every morning.",
     [("Congo River", {R, RA}), ("Kinshasa", {C, CAP, CA})]),
    ("The Niger bends through Mali near Timbuktu.", [("Niger", {R, RA}), ("Mali", {COUNTRY}), ("Timbuktu", {C, CA})]),
    ("Victoria Falls lies on the Zambezi between Zambia and Zimbabwe.",
     [("Victoria Falls", set()), ("Zambezi", {R, RA}), ("Zambia", {COUNTRY}), ("Zimbabwe", {COUNTRY})]),
    ("Kipling wrote of the great grey-green, greasy Limpopo River.", [("Kipling", set()), ("Limpopo River", {R, RA})]),
    ("The Okavango never reaches the sea; it drains into the Kalahari.", [("Okavango", {R, RA}), ("Kalahari", set())]),
    ("Barges carry coal along the Danube from Vienna to Budapest.",
     [("Danube", {R, RE}), ("Vienna", {C, CAP}), ("Budapest", {C, CAP})]),
    ("The Rhine passes Cologne on its way to the North Sea.",
     [("Rhine", {R, RE}), ("Cologne", {C, CG}), ("North Sea", set())]),
    ("Tourists take boats on the Thames past the Houses of Parliament.",
     [("Thames", {R, RE}), ("Houses of Parliament", set())]),
    ("Paris grew up on both banks of the Seine.", [("Paris", {C, CAP}), ("Seine", {R, RE})]),
    ("The Elbe floods Hamburg's harbour every few winters.", [("Elbe", {R, RE}), ("Hamburg", {C, CG})]),
    ("The Volga is the longest river in Europe.", [("Volga", {R, RE}), ("Europe", set())]),
    ("The Amazon carries more water than any other river.", [("Amazon", {R})]),
    ("Steamboats once crowded the Mississippi at New Orleans.", [("Mississippi", {R}), ("New Orleans", {C})]),
    ("The Three Gorges Dam blocks the Yangtze in central China.",
     [("Three Gorges Dam", set()), ("Yangtze", {R}), ("China", {COUNTRY})]),
    ("Pilgrims bathe in the Ganges at Varanasi.", [("Ganges", {R}), ("Varanasi", {C})]),
    ("The Mekong delta feeds much of Vietnam.", [("Mekong", {R}), ("Vietnam", {COUNTRY})]),
    ("Lake Victoria is shared by Kenya, Uganda and Tanzania.",
     [("Lake Victoria", {L, LA}), ("Kenya", {COUNTRY}), ("Uganda", {COUNTRY}), ("Tanzania", {COUNTRY})]),
    ("Lake Baikal in Siberia holds a fifth of the world's fresh water.", [("Lake Baikal", {L}), ("Siberia", set())]),
    ("Much of East Africa's trade once crossed Lake Tanganyika.",
     [("East Africa", set()), ("Lake Tanganyika", {L, LA})]),
    ("Cairo is the capital of Egypt and its largest city.", [("Cairo", {C, CAP, CA}), ("Egypt", {COUNTRY})]),
    ("Nairobi hosts the headquarters of the UN Environment Programme.",
     [("Nairobi", {C, CAP, CA}), ("UN Environment Programme", set())]),
    ("Tokyo has been Japan's capital since 1868.", [("Tokyo", {C, CAP}), ("Japan", {COUNTRY})]),
    ("Osaka is famous for its street food.", [("Osaka", {C})]),
    ("Mumbai is the financial centre of India.", [("Mumbai", {C}), ("India", {COUNTRY})]),
    ("Kraków was the royal seat of Poland for centuries.", [("Kraków", {C}), ("Poland", {COUNTRY})]),
    ("Berlin became the seat of government again in 1999.", [("Berlin", {C, CAP, CG})]),
    ("Munich hosts the Oktoberfest every autumn.", [("Munich", {C, CG}), ("Oktoberfest", set())]),
    ("Frankfurt is home to the European Central Bank.", [("Frankfurt", {C, CG}), ("European Central Bank", set())]),
    ("Lima was founded by Francisco Pizarro in 1535.", [("Lima", {C, CAP}), ("Francisco Pizarro", set())]),
    ("Canberra was built as a compromise between Sydney and Melbourne.",
     [("Canberra", {C, CAP}), ("Sydney", {C}), ("Melbourne", {C})]),
    ("Toronto is larger than Ottawa, the capital of Canada.",
     [("Toronto", {C}), ("Ottawa", {C, CAP}), ("Canada", {COUNTRY})]),
    ("Barcelona and Madrid have a long football rivalry.", [("Barcelona", {C}), ("Madrid", {C, CAP})]),
    ("Lagos was Nigeria's capital until Abuja replaced it.",
     [("Lagos", {C, CA}), ("Nigeria", {COUNTRY}), ("Abuja", {C, CAP, CA})]),
    ("Alexandria was founded by Alexander the Great.", [("Alexandria", {C, CA}), ("Alexander the Great", set())]),
    ("Angela Merkel led the Christian Democratic Union for eighteen years.",
     [("Angela Merkel", {POL}), ("Christian Democratic Union", {PARTY})]),
    ("Angela Merkel visited a Siemens plant in Munich.",
     [("Angela Merkel", {POL}), ("Siemens", {CO}), ("Munich", {C, CG})]),
    ("Tony Blair took the Labour Party back to power in 1997.", [("Tony Blair", {POL}), ("Labour Party", {PARTY})]),
    ("Volkswagen and BMW reported record sales.", [("Volkswagen", {CO}), ("BMW", {CO})]),
    ("Nelson Mandela led the African National Congress to victory.",
     [("Nelson Mandela", {POL}), ("African National Congress", {PARTY})]),
    ("Emmanuel Macron founded La République En Marche in 2016.",
     [("Emmanuel Macron", {POL}), ("La République En Marche", {PARTY})]),
    ("Shinzo Abe met the chief executive of Toyota.", [("Shinzo Abe", {POL}), ("Toyota", {CO})]),
    ("The Liberal Democratic Party has governed Japan for most of the post-war era.",
     [("Liberal Democratic Party", {PARTY}), ("Japan", {COUNTRY})]),
    ("Apple and Microsoft compete in the software market.", [("Apple", {CO}), ("Microsoft", {CO})]),
    ("Barack Obama spoke at a Democratic Party fundraiser hosted by Google.",
     [("Barack Obama", {POL}), ("Democratic Party", {PARTY}), ("Google", {CO})]),
    ("Jacinda Ardern resigned as leader of the Labour Party in 2023.",
     [("Jacinda Ardern", {POL}), ("Labour Party", {PARTY})]),
    ("Siemens opened a new factory near Nairobi.", [("Siemens", {CO}), ("Nairobi", {C, CAP, CA})]),
    ("The All Blacks beat the Springboks in Johannesburg.",
     [("All Blacks", {TEAM}), ("Springboks", {TEAM}), ("Johannesburg", {C, CA})]),
    ("Manchester United signed a sponsorship deal with Adidas.", [("Manchester United", {TEAM}), ("Adidas", {CO})]),
    ("The Loire runs past the castles of the Loire Valley.", [("Loire", {R, RE}), ("Loire Valley", set())]),
]

# compositional descriptions: (description, the type it narrows, the context word(s) it narrows it by)
COMPOSITIONAL = [
    ("river in Africa", "river", "Africa"),
    ("river in Europe", "river", "Europe"),
    ("lake in Africa", "lake", "Africa"),
    ("city in Africa", "city", "Africa"),
    ("city in Germany", "city", "Germany"),
    ("capital city", "city", "capital"),
]
# description expansion written by hand (what a user, or a language model, could add)
PARAPHRASES = {
    "river in Africa": ["river in Africa", "African river", "river of Africa", "river in an African country"],
    "river in Europe": ["river in Europe", "European river", "river of Europe", "river in a European country"],
    "lake in Africa": ["lake in Africa", "African lake", "lake of Africa", "lake in an African country"],
    "city in Africa": ["city in Africa", "African city", "city of Africa", "city in an African country"],
    "city in Germany": ["city in Germany", "German city", "city of Germany", "town in Germany"],
    "capital city": ["capital city", "capital", "capital of a country", "national capital"],
}


def records() -> list[dict]:
    """The sentences as ``load_records`` input: ``id``, ``text`` and the given ``mentions``."""
    out = []
    for number, (text, mentions) in enumerate(SENTENCES):
        spans = []
        for surface, _ in mentions:
            start = text.index(surface)
            spans.append({"start": start, "end": start + len(surface)})
        out.append({"id": f"h{number:02d}", "text": text, "mentions": sorted(spans, key=lambda s: s["start"])})
    return out


def relevant(description: str) -> set[str]:
    """The documents holding a mention tagged with ``description``."""
    return {f"h{number:02d}" for number, (_, mentions) in enumerate(SENTENCES)
            if any(description in tags for _, tags in mentions)}

# the same for Few-NERD's multi-word descriptions (dev folds and test sample), written before any was measured
FEWNERD_PARAPHRASES = {
    "broadcast program": ["broadcast program", "television program", "radio program", "TV show"],
    "astronomical object": ["astronomical object", "planet", "star", "celestial body"],
    "educational institution": ["educational institution", "university", "school", "college"],
    "work of art": ["work of art", "painting", "sculpture", "artwork"],
    "body of water": ["body of water", "river", "lake", "sea"],
    "educational degree": ["educational degree", "academic degree", "bachelor's degree", "diploma"],
    "government agency": ["government agency", "government department", "ministry", "public agency"],
    "living thing": ["living thing", "animal", "plant", "species"],
    "medical term": ["medical term", "medical condition", "medical procedure", "drug"],
    "musical work": ["musical work", "song", "album", "symphony"],
    "political party": ["political party", "party", "political movement", "political organization"],
    "sports event": ["sports event", "tournament", "championship", "sports competition"],
    "written work": ["written work", "book", "novel", "poem"],
    "sports team": ["sports team", "football club", "team", "club"],
    "sports league": ["sports league", "league", "football league", "sports competition"],
    "sports facility": ["sports facility", "stadium", "arena", "sports ground"],
    "biological entity": ["biological entity", "gene", "protein", "species"],
}
